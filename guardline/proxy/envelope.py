"""What reaches the vendor besides the body: query parameters and the client's headers.

Guard mode scans them with the body, as more texts of the same call, and forwards them
rewritten where the policy redacts. Not scanned: credentials (they are never read as
text, so no detector, log or finding ever sees a key), the headers that frame the
message, which Guardline sets or checks itself, trace context and the SDKs' own
descriptions of themselves and their API versions, and any value shaped like a token (no
spaces, no ``@``, fewer than seven digits): what the SDKs send is scanned for nothing.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from guardline.proxy.adapters import TextRef
from guardline.proxy.transport import Header

_UNSCANNED = frozenset(
    {
        b"authorization",
        b"proxy-authorization",
        b"x-api-key",
        b"x-guardline-key",
        b"cookie",
        b"host",
        b"content-length",
        b"content-type",
        b"content-encoding",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"accept",
        b"accept-encoding",
        b"traceparent",
        b"tracestate",
        b"user-agent",
        b"anthropic-version",
        b"anthropic-beta",
        b"openai-beta",
    }
)
_SDK = b"x-stainless-"  # the OpenAI and Anthropic SDKs' platform headers
_TOKEN = re.compile(r"[A-Za-z0-9_.:/+\-=,;*~]{0,256}")


class Envelope:
    """The query parameters and scannable header values of one request, as texts."""

    __slots__ = ("_headers", "_query", "_raw_query")

    def __init__(self, headers: list[Header], query: bytes) -> None:
        self._raw_query = query
        self._query: list[list[str]] = [
            [k, v] for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        ]
        # One [value] per scanned header, in order (a list, so a TextRef can rewrite it).
        self._headers: list[list[str]] = [
            [value.decode("latin-1")] for name, value in headers if _scanned(name, value)
        ]

    def texts(self) -> list[TextRef]:
        out = [TextRef(pair, i) for pair in self._query for i in (0, 1) if pair[i]]
        return out + [TextRef(value, 0) for value in self._headers if value[0]]

    def query(self) -> bytes:
        """The query string to forward: the client's bytes unless a value was rewritten."""
        encoded = urlencode([(k, v) for k, v in self._query]).encode()
        original = urlencode(parse_qsl(self._raw_query.decode("latin-1"), keep_blank_values=True))
        return self._raw_query if encoded == original.encode() else encoded

    def headers(self, headers: list[Header]) -> list[Header]:
        """``headers`` with scanned values as they are now (rewritten or not)."""
        values = iter(self._headers)
        out = []
        for name, value in headers:
            if _scanned(name, value):
                out.append((name, next(values)[0].encode("latin-1", "replace")))
            else:
                out.append((name, value))
        return out


def _scanned(name: bytes, value: bytes) -> bool:
    if name in _UNSCANNED or name.startswith(_SDK):
        return False
    text = value.decode("latin-1")
    return _TOKEN.fullmatch(text) is None or sum(c.isdigit() for c in text) >= 7
