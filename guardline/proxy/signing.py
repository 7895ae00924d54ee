"""Signed request ids: what a feedback post needs to be attributed on any replica.

Every proxied call gets a token that carries its labels and an HMAC over them, so
``POST /v1/feedback`` can be attributed to the right model, route and application by any
replica that shares the secret, with no shared store.

Token format (only ``[A-Za-z0-9._~-]``, so it is safe in any header, URL or log)::

    <id>~<payload>~<mac>

``id``
    The plain request id (``[A-Za-z0-9._:-]{1,128}``) with each ``:`` written as ``~``
    (plain ids never hold ``~``), so logs stay greppable by id. The payload and MAC are
    the last two ``~`` fields; everything before them is the id.
``payload``
    Unpadded base64url of a compact binary record, version 1::

        u8 version (1) | u32 issued (unix seconds, big-endian) | field x 5

    The fields are provider, route, model, app and upstream. Each is one byte ``n``
    followed by data: ``n <= 128`` is a UTF-8 string of ``n`` bytes, ``0xFF`` is None,
    ``0xC0 + i`` is ``_WELL_KNOWN[i]`` (providers and routes in one byte). The table is
    append-only within a version. Strings are cut to ``_CAPS`` bytes (at a character
    boundary); metric labels are bounded far below that anyway.
``mac``
    Unpadded base64url of HMAC-SHA256(secret, ``<id>~<payload>`` as sent), truncated to
    16 bytes. It covers the text, so any edit to id or payload is a forgery.

An id is expired when older than ``max_age`` or issued more than five minutes in the
future (clock skew between replicas). Old secrets passed as ``previous`` still verify,
so a secret can be rotated without refusing feedback for calls served before.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import re
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from guardline.errors import MalformedRequestError, PermissionDeniedError
from guardline.settings import FeedbackSettings, env_secret

log = logging.getLogger("guardline.proxy")

VERSION = 1
MAC_BYTES = 16
CLOCK_SKEW = 300.0
"""Seconds an id may be issued in the future (replicas' clocks differ)."""
MAX_ID_CHARS = 128
_MIN_SECRET_BYTES = 16
# Byte caps of provider, route, model, app and upstream (model names run long).
_CAP_PROVIDER, _CAP_ROUTE, _CAP_MODEL, _CAP_APP, _CAP_UPSTREAM = _CAPS = (16, 16, 96, 64, 32)
_WELL_KNOWN = (
    "openai",
    "anthropic",
    "chat.completions",
    "completions",
    "embeddings",
    "responses",
    "models",
    "messages",
    "passthrough",
)
_CODE = {value: bytes([0xC0 + i]) for i, value in enumerate(_WELL_KNOWN)}
_NONE = b"\xff"
_HEAD = struct.Struct(">BI")
_MAC_CHARS = len(base64.urlsafe_b64encode(bytes(MAC_BYTES)).rstrip(b"="))
_PAYLOAD_MAX = _HEAD.size + sum(1 + cap for cap in _CAPS)
MAX_TOKEN_CHARS = MAX_ID_CHARS + 2 + -(-_PAYLOAD_MAX * 4 // 3) + _MAC_CHARS
"""The longest token :meth:`RequestSigner.sign` can produce."""
_ID_PART = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_B64_PART = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Attribution:
    """What a signed request id carries: the labels feedback is attributed to."""

    request_id: str
    """The plain id: Guardline's own, fresh for every call (random hex). Ids issued by
    earlier versions may be a client's ``x-request-id``."""
    issued: int
    """Unix seconds."""
    provider: str
    """``openai`` or ``anthropic``."""
    route: str
    """An ``Endpoint`` value, e.g. ``chat.completions``."""
    model: str | None
    """The requested model as sent (labels are normalised later)."""
    app: str | None
    upstream: str | None


class RequestSigner:
    """Signs and verifies request ids with HMAC-SHA256 (see the module docstring)."""

    __slots__ = ("_clock", "_keys", "ephemeral", "max_age")

    def __init__(
        self,
        secret: bytes,
        *,
        max_age: float,
        previous: Sequence[bytes] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret or any(not key for key in previous):
            raise ValueError("request-id signing secrets must not be empty")
        self._keys = (secret, *previous)  # signs with the first, verifies with any
        self.max_age = max_age
        self._clock = clock
        self.ephemeral = False
        """True when the secret is random for this process (feedback then only works on
        the replica that served the call); the caller warns about it."""

    @property
    def clock(self) -> Callable[[], float]:
        """The Unix time ids are issued and checked against."""
        return self._clock

    @classmethod
    def from_settings(cls, settings: FeedbackSettings) -> RequestSigner:
        """The secret from the env var ``settings.secret_env``, else a random one."""
        value = env_secret(settings.secret_env)
        if value is None:
            signer = cls(os.urandom(32), max_age=settings.max_age)
            signer.ephemeral = True
            return signer
        secret = value.encode()
        if len(secret) < _MIN_SECRET_BYTES:
            log.warning(
                "the feedback secret in %s is shorter than %d bytes: request ids are only as "
                "hard to forge as it is to guess; use e.g. `openssl rand -hex 32`",
                settings.secret_env,
                _MIN_SECRET_BYTES,
            )
        return cls(secret, max_age=settings.max_age)

    def issue(
        self,
        request_id: str,
        *,
        provider: str,
        route: str,
        model: str | None,
        app: str | None,
        upstream: str | None,
    ) -> str:
        """Sign an attribution issued now."""
        return self.sign(
            Attribution(request_id, int(self._clock()), provider, route, model, app, upstream)
        )

    def sign(self, a: Attribution) -> str:
        """The token for ``a``. ``a.request_id`` must be a valid plain id."""
        payload = b"".join(
            (
                _HEAD.pack(VERSION, a.issued),
                _field(a.provider, _CAP_PROVIDER),
                _field(a.route, _CAP_ROUTE),
                _field(a.model, _CAP_MODEL),
                _field(a.app, _CAP_APP),
                _field(a.upstream, _CAP_UPSTREAM),
            )
        )
        signed = f"{a.request_id.replace(':', '~')}~{_b64(payload)}"
        return f"{signed}~{self._mac(self._keys[0], signed.encode())}"

    def verify(self, token: str) -> Attribution:
        """The attribution a token carries.

        Raises MalformedRequestError (400) for something that is not a signed id, and
        PermissionDeniedError (403) for a wrong signature or an expired id.
        """
        parts = _split(token)
        if parts is None:
            raise MalformedRequestError(
                "'request_id' is not a Guardline request id; send the value of the "
                "x-guardline-request-id response header unchanged.",
                code="request_id_invalid",
            )
        prefix, payload_text, mac = parts
        try:
            payload = base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4))
        except (binascii.Error, ValueError):
            raise MalformedRequestError(
                "'request_id' is not a Guardline request id (its payload is not base64url).",
                code="request_id_invalid",
            ) from None
        signed = token[: -len(mac) - 1].encode()
        # Every key is tried, so the time taken does not tell which one matched.
        valid = False
        for key in self._keys:
            valid |= hmac.compare_digest(self._mac(key, signed), mac)
        if not valid:
            raise PermissionDeniedError(
                "'request_id' has an invalid signature: it was altered, or was issued by a "
                "Guardline with a different feedback secret.",
                code="request_id_forged",
            )
        attribution = _decode(prefix.replace("~", ":"), payload)
        now = self._clock()
        if now - attribution.issued > self.max_age or attribution.issued - now > CLOCK_SKEW:
            raise PermissionDeniedError(
                "'request_id' has expired: feedback is accepted for "
                f"{self.max_age:g} seconds after the call.",
                code="request_id_expired",
            )
        return attribution

    @staticmethod
    def plain_id(token: str) -> str:
        """The request id inside a token, unverified (for logs and joins); ``token``
        itself when it is not shaped like a signed id."""
        parts = _split(token)
        return token if parts is None else parts[0].replace("~", ":")

    @staticmethod
    def _mac(key: bytes, signed: bytes) -> str:
        return _b64(hmac.digest(key, signed, "sha256")[:MAC_BYTES])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _field(value: str | None, cap: int) -> bytes:
    if value is None:
        return _NONE
    code = _CODE.get(value)
    if code is not None:
        return code
    data = value.encode("utf-8", "replace")
    if len(data) > cap:
        # Cut at a character boundary: a partial UTF-8 sequence at the end is dropped.
        data = data[:cap].decode("utf-8", "ignore").encode()
    return bytes([len(data)]) + data


def _split(token: str) -> tuple[str, str, str] | None:
    """(id part, payload, mac) of something shaped like a token, else None."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
        return None
    parts = token.rsplit("~", 2)
    if len(parts) != 3:
        return None
    prefix, payload, mac = parts
    if (
        len(mac) != _MAC_CHARS
        or not _ID_PART.fullmatch(prefix)
        or not _B64_PART.fullmatch(payload)
        or not _B64_PART.fullmatch(mac)
    ):
        return None
    return prefix, payload, mac


def _decode(request_id: str, payload: bytes) -> Attribution:
    """Parse a payload whose signature was valid."""
    try:
        version, issued = _HEAD.unpack_from(payload)
        if version != VERSION:
            raise ValueError(f"version {version}")
        at = _HEAD.size
        fields: list[str | None] = []
        for _ in range(5):
            n = payload[at]
            at += 1
            if n == 0xFF:
                fields.append(None)
            elif n >= 0xC0:
                fields.append(_WELL_KNOWN[n - 0xC0])
            elif n <= 128 and at + n <= len(payload):
                fields.append(payload[at : at + n].decode())
                at += n
            else:
                raise ValueError("field length")
        if at != len(payload):
            raise ValueError("trailing bytes")
    except (struct.error, IndexError, ValueError):
        # Signed by us yet unreadable: a newer Guardline issued it.
        raise MalformedRequestError(
            "'request_id' has a format this Guardline does not read (was it issued by a "
            "newer version?).",
            code="request_id_invalid",
        ) from None
    provider, route, model, app, upstream = fields
    if provider is None or route is None:
        raise MalformedRequestError(
            "'request_id' carries no provider or route.", code="request_id_invalid"
        )
    return Attribution(request_id, issued, provider, route, model, app, upstream)
