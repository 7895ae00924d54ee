"""Model-name normalisation: one canonical, bounded spelling per model, shared by metric
labels and price lookup.

Clients name the same model many ways (``openai/gpt-4o``, ``gpt-4o-2024-08-06``,
``us.anthropic.claude-3-5-sonnet-20241022-v2:0``, ``ft:gpt-4o-mini:org::id``); the
canonical form drops providers, snapshot dates, deployment suffixes and fine-tune ids so
a dashboard shows one series per model and a price table needs one key per model.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["MAX_LENGTH", "UNKNOWN", "model_label", "normalise_model"]

UNKNOWN = "unknown"
MAX_LENGTH = 64

# Longer inputs are normalised but not cached, so a client sending huge model strings
# cannot pin megabytes in the cache.
_CACHEABLE_LENGTH = 256

# Bedrock ids: an optional cross-region inference prefix, then the vendor.
_BEDROCK_PREFIX = re.compile(
    r"^(?:(?:us|eu|apac|ap|jp|au|ca|global|us-gov)\.)?"
    r"(?:anthropic|amazon|meta|cohere|ai21|mistral|deepseek|openai|qwen|writer|twelvelabs)\."
)
# Bedrock's version suffix, optionally with a context-window variant: -v1:0, -v2:0:200k.
_BEDROCK_VERSION = re.compile(r"-v\d+:\d+(?::[0-9a-z]+)*$")
# Legacy OpenAI fine-tunes: ``davinci-002:ft-org:name-2023-08-01-00-00-00``.
_LEGACY_FINE_TUNE = re.compile(r"^([^:]+):ft-")
_LATEST = re.compile(r"[-:]latest$")
# Plausible calendar dates only, so version numbers like ``-20b`` or ``-1106`` stay.
_DATE = re.compile(
    r"-(?:19|20)\d\d(?:-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))$"
)
_INVALID = re.compile(r"[^a-z0-9._:-]")


def normalise_model(name: str) -> str:
    """The canonical form of a model name: lowercase, at most 64 characters of
    ``[a-z0-9._:-]``, ``"unknown"`` when nothing is left.

    >>> normalise_model("openai/gpt-4o-2024-08-06")
    'gpt-4o'
    """
    if not isinstance(name, str):
        return UNKNOWN
    if len(name) > _CACHEABLE_LENGTH:
        return _normalise(name)
    return _cached(name)


def model_label(name: str | None) -> str:
    """``normalise_model`` for a model that may be missing (``None`` or empty)."""
    if not name:
        return UNKNOWN
    return normalise_model(name)


def _normalise(name: str) -> str:
    # One pass can expose a new prefix or suffix (a cut at 64 characters ending in a date,
    # anthropic.anthropic.x); repeat so every result normalises to itself, which price
    # keys and twice-normalised labels rely on. Each pass only shortens or substitutes
    # once, so this settles within a few passes; the bound is a guard, not a limit.
    s = _once(name)
    for _ in range(8):
        again = _once(s)
        if again == s:
            break
        s = again
    return s


def _once(name: str) -> str:
    s = name.strip().lower()
    # Routers and gateways prefix a provider or a path (openai/, bedrock/, accounts/x/models/).
    s = s.rpartition("/")[2].strip()
    if s.startswith("ft:"):
        # ft:<base>:<org>:<suffix>:<id>; the base is what the call runs on.
        s = s[3:].partition(":")[0]
    elif match := _LEGACY_FINE_TUNE.match(s):
        s = match.group(1)
    # Vertex AI pins versions with @: claude-sonnet-4-5@20250929.
    s = s.partition("@")[0]
    s = _strip_suffixes(_BEDROCK_PREFIX.sub("", s))
    if s.startswith("claude-"):
        # Anthropic ids never contain dots; routers write claude-3.5-sonnet for claude-3-5-sonnet.
        s = s.replace(".", "-")
    s = _INVALID.sub("_", s)[:MAX_LENGTH]
    return s or UNKNOWN


def _strip_suffixes(s: str) -> str:
    # Suffixes stack (gpt-4o-2024-08-06-latest, ...-20240620-v1:0); strip until stable.
    while True:
        stripped = _DATE.sub("", _LATEST.sub("", _BEDROCK_VERSION.sub("", s)))
        if stripped == s:
            return s
        s = stripped


# maxsize bounds memory; model names repeat, so the hit rate is near one in practice.
_cached = lru_cache(maxsize=4096)(_normalise)
