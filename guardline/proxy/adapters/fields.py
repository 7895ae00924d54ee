"""Every string a body carries, as text to scan, except a short declared list of non-text
fields.

Guard mode scans what is *not* declared, so a field Guardline has never heard of is text
by default. A declaration is a key name and the shape its values must have: an id, an
enum value, a model name, base64 data. A value that does not have its declared shape is
scanned like any other text, so a declaration can skip ids and enums but can never hide
an email address or a sentence. Object keys are strings too: a key that is not an
identifier (``{"call taro@example.jp": 1}`` in metadata) is scanned, and rewritten by
renaming the key.

The declarations are checked against the vendors' own type definitions in the installed
``openai`` and ``anthropic`` SDKs by ``tests/proxy/test_coverage.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from guardline.proxy.adapters.base import Text, TextRef
from guardline.settings import Provider

_ENUM = re.compile(r"[A-Za-z0-9_.:/+\-]{1,64}")
_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,256}")
# A model name: a Vertex-style "@version" suffix is allowed, an email address is not.
_MODEL = re.compile(r"(?=.{1,256}$)[A-Za-z0-9_.:/+\-]+(?:@[A-Za-z0-9_:\-]+)?", re.DOTALL)
_BASE64 = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")
_DATA_URL = re.compile(
    r"data:(?P<media>[A-Za-z0-9.+\-]+/[A-Za-z0-9.+\-]+)(?:;[A-Za-z0-9=.+\-]+)*;base64,"
    r"[A-Za-z0-9+/_\-]*={0,2}"
)
# An identifier-like key: what schemas and SDKs use. Anything else (spaces, "@", a long
# run of digits such as a phone number) is a key that carries text.
_KEY = re.compile(r"(?!.*\d{5})[A-Za-z0-9_.$\-]{1,64}")


@dataclass(frozen=True, slots=True)
class NonText:
    """A declared non-text field: values of ``key`` with this shape are not scanned."""

    kind: str
    """``id``, ``enum``, ``model``, ``base64``, ``url`` (only ``data:`` URLs of binary
    media are non-text) or ``random`` (padding)."""
    check: Callable[[str, Mapping[str, Any]], bool]
    """(value, the object holding it) -> the value has the declared shape."""
    contextual: bool = False
    """The check reads the holder too (so its answer for a value is not remembered)."""
    memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    """Answers for values seen (ids, models and enums repeat in every event)."""


def _shape(pattern: re.Pattern[str]) -> Callable[[str, Mapping[str, Any]], bool]:
    return lambda value, _holder: pattern.fullmatch(value) is not None


def _binary_url(value: str, _holder: Mapping[str, Any]) -> bool:
    match = _DATA_URL.fullmatch(value)
    return match is not None and not match.group("media").lower().startswith("text/")


def _base64(value: str, holder: Mapping[str, Any]) -> bool:
    # A text document's source (``{"type": "text", "data": ...}``) is text whatever it
    # looks like; padded base64 is a multiple of four characters long.
    if holder.get("type") == "text" or holder.get("media_type", "").startswith("text/"):
        return False
    return (len(value) % 4 == 0 and _BASE64.fullmatch(value) is not None) or _binary_url(
        value, holder
    )


ENUM = NonText("enum", _shape(_ENUM))
ID = NonText("id", _shape(_ID))
MODEL = NonText("model", _shape(_MODEL))
BASE64 = NonText("base64", _base64, contextual=True)
URL = NonText("url", _binary_url)
RANDOM = NonText("random", _shape(re.compile(r"[A-Za-z0-9+/=_\-]{1,512}")))

_COMMON: dict[str, NonText] = {
    "id": ID,
    "type": ENUM,
    "role": ENUM,
    "model": MODEL,
    "service_tier": ENUM,
    "media_type": ENUM,
    "file_id": ID,
    "data": BASE64,
    "url": URL,
}

DECLARED: dict[Provider, dict[str, NonText]] = {
    "openai": {
        **_COMMON,
        "object": ENUM,
        "finish_reason": ENUM,
        "status": ENUM,
        "file_ids": ID,
        "system_fingerprint": ID,
        "call_id": ID,
        "tool_call_id": ID,
        "item_id": ID,
        "previous_response_id": ID,
        "conversation": ID,
        "vector_store_ids": ID,
        "detail": ENUM,
        "format": ENUM,
        "modalities": ENUM,
        "include": ENUM,
        "reasoning_effort": ENUM,
        "effort": ENUM,
        "verbosity": ENUM,
        "truncation": ENUM,
        "tool_choice": ENUM,
        "encoding_format": ENUM,
        "prompt_cache_retention": ENUM,
        "file_data": BASE64,
        "encrypted_content": BASE64,
        "partial_image_b64": BASE64,
        "result": BASE64,
        "image_url": URL,
        "obfuscation": RANDOM,
    },
    "anthropic": {
        **_COMMON,
        "stop_reason": ENUM,
        "tool_use_id": ID,
        "custom_id": ID,
        "container": ID,
        "ttl": ENUM,
        "processing_status": ENUM,
        "signature": BASE64,
    },
}
"""Per provider (both directions): key name -> declared kind."""


def declared(provider: Provider, key: str, value: str, holder: Mapping[str, Any]) -> bool:
    """Whether ``holder[key] == value`` is a declared non-text field with its shape."""
    return _skipped(DECLARED[provider].get(key), value, holder)


class KeyRef:
    """An object key that carries text; setting it renames the key in place, keeping the
    object's order (applied after value rewrites, which address entries by key)."""

    __slots__ = ("holder", "key", "signed")

    def __init__(self, holder: dict[str, Any], key: str) -> None:
        self.holder = holder
        self.key = key
        self.signed = False

    def get(self) -> str:
        return self.key

    def set(self, value: str) -> None:
        if value == self.key or self.key not in self.holder:
            return
        items = list(self.holder.items())
        self.holder.clear()
        for key, item in items:
            self.holder[value if key == self.key else key] = item
        self.key = value


def signed_thinking(key: str, holder: Mapping[str, Any]) -> bool:
    """Anthropic's thinking text: signed by the vendor and sent back verbatim, so it
    cannot be rewritten (a rewritten block fails the vendor's signature check)."""
    return key == "thinking" and holder.get("type") in ("thinking", "thinking_delta")


def texts(
    value: Any, provider: Provider, skip: frozenset[tuple[int, str | int]] = frozenset()
) -> list[Text]:
    """Every string leaf and text-carrying key inside ``value``, except declared
    non-text fields with their declared shape and the ``(id(holder), key)`` pairs in
    ``skip`` (texts the caller already has). Keys come last (renaming them must follow
    the value rewrites). Runs on every stream event in guard mode: one pass without
    recursion (bodies may nest deeply), shapes of keys and declared values remembered."""
    declared = DECLARED[provider]
    out: list[Text] = []
    keys: list[Text] = []
    known_keys = _KEYS
    stack: list[tuple[Any, str | None]] = [(value, None)]
    push = stack.append
    while stack:
        node, name = stack.pop()
        if type(node) is dict:
            for key, item in node.items():
                kind = type(item)
                rule = declared.get(key)
                if rule is None and known_keys.get(key) is not True and not _is_key(key):
                    keys.append(KeyRef(node, key))  # (declared keys are identifiers)
                if kind is str:
                    if not item:
                        continue
                    if rule is not None:
                        # inline of _skipped: this loop runs for every event of a stream
                        if rule.contextual:
                            if rule.check(item, node):
                                continue
                        else:
                            ok = rule.memo.get(item)
                            if ok is None:
                                ok = _skipped(rule, item, node)
                            if ok:
                                continue
                    if skip and (id(node), key) in skip:
                        continue
                    signed = key == "thinking" and signed_thinking(key, node)
                    out.append(TextRef(node, key, signed=signed))
                elif (kind is dict or kind is list) and item:
                    push((item, key))
        elif type(node) is list:
            rule = declared.get(name) if name is not None else None
            for index, item in enumerate(node):
                kind = type(item)
                if kind is str:
                    if not item or _skipped(rule, item, _EMPTY):
                        continue
                    if skip and (id(node), index) in skip:
                        continue
                    out.append(TextRef(node, index))
                elif (kind is dict or kind is list) and item:
                    push((item, name))
    return out + keys


_EMPTY: Mapping[str, Any] = {}
_MEMORY = 8192
"""Shapes remembered, per kind (keys and declared values repeat in every event)."""
_KEYS: dict[str, bool] = {}


def _is_key(key: Any) -> bool:
    """An identifier-shaped key (not text). Only JSON's own keys, strings, are read."""
    if type(key) is not str:
        return True
    known = _KEY.fullmatch(key) is not None
    if len(_KEYS) >= _MEMORY:
        _KEYS.clear()
    _KEYS[key] = known
    return known


def _skipped(rule: NonText | None, value: str, holder: Mapping[str, Any]) -> bool:
    """Whether ``value`` is a declared non-text value with its declared shape."""
    if rule is None:
        return False
    if rule.contextual:
        return rule.check(value, holder)
    known = rule.memo.get(value)
    if known is None:
        known = rule.check(value, holder)
        if len(rule.memo) >= _MEMORY:
            rule.memo.clear()
        rule.memo[value] = known
    return known


def _walk(value: Any) -> Iterator[tuple[Any, Any, str | None, Any]]:
    """(holder, key, name, item) for every entry of every object and list, depth first,
    without recursion (bodies may nest deeply). ``name`` is the entry's key, or for a
    list entry the key that holds the list (declarations cover list items too)."""
    stack: list[tuple[Any, str | None]] = [(value, None)]
    while stack:
        node, name = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                yield node, key, key, item
                if isinstance(item, dict | list) and item:
                    stack.append((item, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                yield node, index, name, item
                if isinstance(item, dict | list) and item:
                    stack.append((item, name))


def logprob_scopes(value: Any) -> list[dict[str, Any]]:
    """The objects inside ``value`` that carry token log-probabilities (a chat or
    completions choice, a Responses text part or delta event): their tokens spell out
    the text beside them, so when that text is rewritten they are dropped."""
    return [
        node
        for node, key, _, item in _walk(value)
        if key == "logprobs" and isinstance(node, dict) and isinstance(item, dict | list) and item
    ]


def drop_logprobs(scope: dict[str, Any]) -> None:
    """Remove a scope's log-probabilities, keeping the field's type (a list where the
    wire format has a list)."""
    scope["logprobs"] = [] if isinstance(scope.get("logprobs"), list) else None


class TokensRef:
    """The tokens of one scope's log-probabilities read as one text (a value can be
    spelled across tokens). Tokens cannot be rewritten one by one to match a redaction,
    so setting this drops them."""

    __slots__ = ("scope", "signed")

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.signed = False

    def get(self) -> str:
        value = self.scope.get("logprobs")
        entries: list[Any] = []
        if isinstance(value, list):
            entries = value
        elif isinstance(value, dict):
            for name in ("content", "refusal"):
                found = value.get(name)
                entries += found if isinstance(found, list) else []
            tokens = value.get("tokens")  # completions: a list of strings
            if isinstance(tokens, list):
                return "".join(t for t in tokens if isinstance(t, str))
        return "".join(
            e["token"] for e in entries if isinstance(e, dict) and isinstance(e.get("token"), str)
        )

    def set(self, value: str) -> None:
        drop_logprobs(self.scope)


def holders(value: Any) -> set[int]:
    """Ids of every object and list inside ``value`` (itself included)."""
    out = {id(value)}
    for _, _, _, item in _walk(value):
        if isinstance(item, dict | list):
            out.add(id(item))
    return out
