"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from guardline.proxy.transport import Header

# Never forwarded upstream: hop-by-hop (RFC 9110 7.6.1), framing the proxy redoes, the
# Host the client aimed at (the upstream's own host is sent), and Guardline's own key.
_DROP_UPSTREAM = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
        b"accept-encoding",
        b"x-guardline-key",
    }
)
# Never forwarded to the client: hop-by-hop and framing (the server redoes framing).
_DROP_DOWNSTREAM = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
_IDENTITY = (b"accept-encoding", b"identity")
REQUEST_ID = b"x-guardline-request-id"
_CLIENT_REQUEST_ID = b"x-request-id"
_REQUEST_ID_OK = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def upstream_headers(
    client: Sequence[Header],
    *,
    drop: frozenset[bytes] = frozenset(),
    auth: Header | None = None,
    added: Sequence[Header] = (),
) -> list[Header]:
    """Client headers minus hop-by-hop ones, ``drop`` and (when injecting) client keys."""
    skip = _DROP_UPSTREAM | drop | _connection_tokens(client)
    if auth is not None:
        skip = skip | {b"authorization", b"x-api-key"}
    out = [(k, v) for k, v in client if k not in skip]
    out.append(_IDENTITY)  # the proxy reads bodies; compression would only cost CPU here
    out.extend(added)
    if auth is not None:
        out.append(auth)
    return out


def client_headers(
    upstream: Sequence[Header], request_id: str, content_length: int | None = None
) -> list[Header]:
    out = [(k, v) for k, v in upstream if k not in _DROP_DOWNSTREAM]
    out.append((REQUEST_ID, request_id.encode()))
    if content_length is not None:
        out.append((b"content-length", str(content_length).encode()))
    return out


def new_request_id() -> str:
    """Guardline's own id for a call: 32 random hex digits, fresh for every exchange (so
    no two calls share one, whatever their clients send)."""
    return os.urandom(16).hex()


def client_request_id(headers: Sequence[Header]) -> str | None:
    """The client's ``x-request-id`` when it is a sane token (``[A-Za-z0-9._:-]{1,128}``),
    else None. A correlation field only (logs, spans, sample records): it is never
    Guardline's id, and it is forwarded upstream unchanged either way."""
    for name, value in headers:
        if name == _CLIENT_REQUEST_ID and _REQUEST_ID_OK.fullmatch(value):
            return value.decode()
    return None


def _connection_tokens(headers: Sequence[Header]) -> frozenset[bytes]:
    # Headers a client names in Connection are hop-by-hop too (RFC 9110 7.6.1).
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)
