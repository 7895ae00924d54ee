"""Which provider and endpoint a call is: decided by its canonical path, never by headers.

A client must not be able to make a scanned call look like something else. So the path
alone names the provider (``/v1/messages...`` is Anthropic's, ``/v1/chat/completions`` and
the other OpenAI endpoints OpenAI's); headers only choose between the two where both
vendors serve the same path (``/v1/models``, ``/v1/files``, anything unknown), and a header
that names the other vendor on an owned path is a conflict (400). Only canonical spellings
are proxied: a path an upstream might read as a scanned endpoint although the proxy did
not (``;params``, trailing dots or slashes, other letter case, percent-encoding, dot
segments, backslashes) is answered 404 before anything is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from guardline.errors import MalformedRequestError, RouteNotFoundError
from guardline.exchange import Endpoint
from guardline.proxy.transport import Header
from guardline.settings import Provider

SCANNED: dict[tuple[str, str], tuple[Provider, Endpoint]] = {
    ("POST", "/v1/chat/completions"): ("openai", Endpoint.CHAT_COMPLETIONS),
    ("POST", "/v1/completions"): ("openai", Endpoint.COMPLETIONS),
    ("POST", "/v1/embeddings"): ("openai", Endpoint.EMBEDDINGS),
    ("POST", "/v1/responses"): ("openai", Endpoint.RESPONSES),
    ("POST", "/v1/messages"): ("anthropic", Endpoint.MESSAGES),
}
"""The endpoints with a known wire format (their streams are guarded channel by channel)."""

_OWNED: tuple[tuple[str, Provider], ...] = (
    ("/v1/messages", "anthropic"),
    ("/v1/complete", "anthropic"),
    ("/v1/chat", "openai"),
    ("/v1/completions", "openai"),
    ("/v1/embeddings", "openai"),
    ("/v1/responses", "openai"),
    ("/v1/conversations", "openai"),
    ("/v1/audio", "openai"),
    ("/v1/images", "openai"),
    ("/v1/moderations", "openai"),
    ("/v1/realtime", "openai"),
    ("/v1/assistants", "openai"),
    ("/v1/threads", "openai"),
    ("/v1/vector_stores", "openai"),
    ("/v1/fine_tuning", "openai"),
    ("/v1/batches", "openai"),
    ("/v1/uploads", "openai"),
)
"""Path prefixes (whole segments) that only one vendor serves."""

_ANTHROPIC_SIGNALS = frozenset({b"anthropic-version", b"anthropic-beta"})
_OPENAI_SIGNALS = frozenset({b"openai-organization", b"openai-project", b"openai-beta"})
# Bytes no canonical path holds: parameters, escapes, backslashes, controls, spaces and
# anything beyond ASCII (servers differ in how they decode and match those).
_FORBIDDEN = frozenset(b";%\\ \t#") | frozenset(range(0x20)) | frozenset(range(0x7F, 0x100))


@dataclass(frozen=True, slots=True)
class Call:
    provider: Provider
    endpoint: Endpoint


def owner(path: str) -> Provider | None:
    """The vendor that alone serves ``path``, if one does."""
    for prefix, provider in _OWNED:
        if path == prefix or path.startswith(prefix + "/"):
            return provider
    return None


def provider_for(path: str, headers: list[Header]) -> Provider:
    """The provider whose format a call's answers take: the path's owner, else Anthropic
    for a call carrying ``anthropic-version`` (the Anthropic SDK always sends it), else
    OpenAI."""
    owned = owner(path)
    if owned is not None:
        return owned
    return "anthropic" if any(name == b"anthropic-version" for name, _ in headers) else "openai"


def classify(method: str, path: str, raw_path: bytes, headers: list[Header]) -> Call:
    """The call's provider and endpoint. Raises RouteNotFoundError (404) for a
    non-canonical path and MalformedRequestError (400) when a header names the other
    vendor on a path one vendor owns."""
    check_canonical(raw_path, path)
    provider = provider_for(path, headers)
    owned = owner(path)
    if owned is not None:
        signals = _OPENAI_SIGNALS if owned == "anthropic" else _ANTHROPIC_SIGNALS
        conflict = next((name for name, _ in headers if name in signals), None)
        if conflict is not None:
            raise MalformedRequestError(
                f"The {conflict.decode()} header belongs to the other vendor's API, but "
                f"{path} is {'Anthropic' if owned == 'anthropic' else 'OpenAI'}'s endpoint; "
                "Guardline will not guess which one you meant.",
                code="conflicting_provider",
            )
    scanned = SCANNED.get((method, path))
    if scanned is not None:
        return Call(*scanned)
    if method == "GET" and (path == "/v1/models" or path.startswith("/v1/models/")):
        return Call(provider, Endpoint.MODELS)
    return Call(provider, Endpoint.PASSTHROUGH)


def check_canonical(raw_path: bytes, path: str) -> None:
    """404 unless ``raw_path`` is spelled canonically: ASCII, no parameters, escapes or
    backslashes, no empty, dot or dot-terminated segments, and a known endpoint's prefix
    in its exact letter case."""
    if not raw_path.startswith(b"/") or any(byte in _FORBIDDEN for byte in raw_path):
        raise _not_found(path)
    segments = raw_path.split(b"/")[1:]
    if any(not s or s.endswith(b".") for s in segments):
        raise _not_found(path)
    lowered = raw_path.lower()
    for known in _KNOWN_PREFIXES:
        if (lowered == known or lowered.startswith(known + b"/")) and not raw_path.startswith(
            known
        ):
            raise _not_found(path)


_KNOWN_PREFIXES = tuple(
    sorted(
        {p.encode() for _, p in SCANNED}
        | {p.encode() for p, _ in _OWNED}
        | {b"/v1/models", b"/v1/files", b"/v1"}
    )
)


def _not_found(path: str) -> RouteNotFoundError:
    return RouteNotFoundError(f"Invalid URL path {path[:200]!r}.", code="route_not_found")
