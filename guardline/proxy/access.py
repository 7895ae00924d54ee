"""Optional proxy access keys."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from pydantic import SecretStr

from guardline.errors import AuthenticationError
from guardline.proxy.transport import Header
from guardline.settings import AccessKeySettings

_GUARDLINE_KEY = b"x-guardline-key"


class AccessKeys:
    """Checks the proxy access key of a request, when keys are configured.

    The key may come in ``x-guardline-key`` (then the client's own vendor key still passes
    through), or as the client's API key (``Authorization: Bearer`` / ``x-api-key``), which
    is then consumed: it never reaches the upstream, which gets its injected key instead.
    """

    def __init__(self, keys: Sequence[SecretStr | AccessKeySettings]) -> None:
        # Digests, compared in constant time, so lookups do not leak key prefixes.
        self._digests: list[tuple[bytes, str | None]] = []
        for entry in keys:
            if isinstance(entry, AccessKeySettings):
                self._digests.append((_digest(entry.key.get_secret_value().encode()), entry.app))
            else:
                self._digests.append((_digest(entry.get_secret_value().encode()), None))

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, headers: Sequence[Header]) -> tuple[frozenset[bytes], str | None]:
        """Raise AuthenticationError, or return the header names the key consumed and the
        application the key belongs to (if it names one)."""
        if not self._digests:
            return frozenset(), None
        candidate, consumed = _find_key(headers)
        if candidate is not None:
            digest = _digest(candidate)
            matched = False
            app = None
            for known, known_app in self._digests:
                if hmac.compare_digest(digest, known):
                    matched, app = True, known_app
            if matched:
                return frozenset({consumed}), app
        raise AuthenticationError(
            "Missing or invalid Guardline access key. Send it as the API key or in the "
            "x-guardline-key header."
        )


def _find_key(headers: Sequence[Header]) -> tuple[bytes | None, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in (_GUARDLINE_KEY, b"authorization", b"x-api-key") and name not in found:
            found[name] = value
    if _GUARDLINE_KEY in found:
        return found[_GUARDLINE_KEY], _GUARDLINE_KEY
    auth = found.get(b"authorization")
    if auth is not None and auth[:7].lower() == b"bearer ":
        return auth[7:].strip(), b"authorization"
    if b"x-api-key" in found:
        return found[b"x-api-key"], b"x-api-key"
    return None, b""


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()
