"""Every string field of the vendors' own types is scanned in guard mode.

Generated from the type definitions of the installed ``openai`` and ``anthropic`` SDKs
(``tests/sdk_types.py``): for each scanned endpoint, a canary is planted in every string
position of the request parameter types (it must not reach the upstream: the simulator
records what it receives) and of the response, stream event and error types (it must not
reach the client), streamed and not.

Two canaries per position:
- an email address (``c0001.leak@example.com``), found by the default PII detector: none
  may pass, declared non-text fields included, since no id, enum or model name looks like
  an address;
- an identifier-shaped token (``GLCANARY0001``), found by a test detector: it passes
  exactly where ``guardline.proxy.adapters.fields`` declares a non-text field (and in
  object keys, which are identifiers), and is scanned everywhere else. Those fields are
  printed.

A field the SDKs add that carries text is scanned with no change to Guardline, and shows
up here if it is not. Declared non-text keys are checked against the SDK types too.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from guardline.detectors.base import FakeDetector
from guardline.proxy.adapters import fields
from guardline.proxy.adapters.channels import RESPONSES_TERMINAL
from guardline.proxy.sse import SSEDecoder
from guardline.simulator import Simulator
from tests.proxy.test_failclosed import can
from tests.sdk_types import ENTRY_POINTS, Document, Entry, Field, documents
from tests.servers import Running, default_detectors, proxy, proxy_settings, simulator

TOKEN = re.compile(r"GLCANARY\d{5}")
EMAIL = re.compile(r"c\d{5}\.leak@example\.com")
ENDPOINTS = ("openai.chat", "openai.completions", "openai.embeddings", "openai.responses")
ANTHROPIC = ("anthropic.messages", "anthropic.count_tokens", "anthropic.batches")
MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}
HEADERS = {"openai": {}, "anthropic": {"anthropic-version": "2023-06-01"}}
# Kinds of declaration an identifier-shaped token can satisfy (base64 needs 16+
# characters in fours, a URL must be a data: URL).
_TOKEN_SHAPED = frozenset({"enum", "id", "model", "random"})


def _emails() -> Callable[[str], str]:
    counter = itertools.count(1)
    # Spaced: texts a channel joins stay separate words, as real text would be.
    return lambda _path: f" c{next(counter):05d}.leak@example.com "


def _tokens() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda _path: f"GLCANARY{next(counter):05d}"


def _guard(name: str) -> dict[str, Any]:
    rule = {"mode": "guard", "action": "redact"}
    # Signed thinking is rewritten here so that every field is tested; by default a
    # finding there blocks the call (tests/proxy/test_failclosed.py).
    return {"request": {name: rule}, "response": {name: rule}, "signed_thinking": "redact"}


@pytest.fixture(scope="module")
def sim() -> Iterator[Running[Simulator]]:
    with simulator() as server:
        yield server


@pytest.fixture(scope="module")
def pii_gw(sim: Running[Simulator]) -> Iterator[Running[Any]]:
    with proxy(proxy_settings(sim.url, policy=_guard("pii")), default_detectors()) as server:
        yield server


@pytest.fixture(scope="module")
def token_gw(sim: Running[Simulator]) -> Iterator[Running[Any]]:
    detector = FakeDetector(pattern=TOKEN.pattern, category="CANARY", name="canary")
    with proxy(proxy_settings(sim.url, policy=_guard("canary")), {"canary": detector}) as server:
        yield server


# What a client or upstream got ------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _seen(pattern: re.Pattern[str], *values: Any) -> set[str]:
    """Canaries recoverable from decoded JSON values (NFKC, as a client might read them)."""
    found: set[str] = set()
    for value in values:
        for text in _strings(value):
            found.update(pattern.findall(unicodedata.normalize("NFKC", text)))
    return found


def _body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _events(raw: bytes) -> list[Any]:
    out: list[Any] = []
    for event in SSEDecoder().feed(raw + b"\n\n"):
        if event.data is not None and event.data != "[DONE]":
            out.append(_body(event.data.encode()))
        if event.event is not None:
            out.append(event.event)
    return out


# Sending each kind of document -----------------------------------------------------------


def _name(field: Field) -> str | None:
    """The key a declaration would name for this position (a list item's is its list's)."""
    segment = field.wire.rsplit(".", 1)[-1]
    while segment.endswith("[]"):
        segment = segment[:-2]
    return None if segment in ("{}", "{key}", "") else segment


def _request_doc(entry: Entry, doc: Document) -> tuple[dict[str, Any], set[str]]:
    """The document as a request body; the canaries it cannot carry (the model is
    validated at the door: an address there is a 400, by design)."""
    body = dict(doc.body)
    skipped = set()
    model = body.get("model")
    if isinstance(model, str) and EMAIL.search(model):
        skipped |= set(EMAIL.findall(model))
        body["model"] = MODEL[entry.vendor]
    body["stream"] = False
    return body, skipped


def _send_requests(
    gw: Running[Any],
    sim: Running[Simulator],
    entry: Entry,
    docs: list[Document],
    pattern: re.Pattern[str],
) -> tuple[set[str], set[str]]:
    leaked: set[str] = set()
    untested: set[str] = set()
    assert entry.endpoint is not None
    for doc in docs:
        body, skipped = _request_doc(entry, doc)
        untested |= skipped
        sim.app.recorder.clear()
        response = httpx.post(
            gw.url + entry.endpoint, json=body, headers=HEADERS[entry.vendor], timeout=30
        )
        records = list(sim.app.recorder.records)
        assert records, (
            f"{entry.name}: Guardline refused {response.status_code} {response.text[:300]}"
        )
        leaked |= _seen(pattern, *(r.body for r in records), *(r.query for r in records))
    return leaked, untested


def _call(gw: Running[Any], entry: Entry, stream: bool) -> httpx.Response:
    vendor = entry.vendor
    endpoint = entry.endpoint or ("/v1/chat/completions" if vendor == "openai" else "/v1/messages")
    body: dict[str, Any] = {"model": MODEL[vendor], "stream": stream}
    body.update({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})
    if endpoint in ("/v1/completions", "/v1/embeddings", "/v1/responses"):
        body = {"model": MODEL[vendor], "stream": stream, "input": "hi", "prompt": "hi"}
    return httpx.post(gw.url + endpoint, json=body, headers=HEADERS[vendor], timeout=60)


def _path(entry: Entry) -> str:
    return entry.endpoint or (
        "/v1/chat/completions" if entry.vendor == "openai" else "/v1/messages"
    )


def _send_bodies(
    gw: Running[Any],
    sim: Running[Simulator],
    entry: Entry,
    docs: list[Document],
    pattern: re.Pattern[str],
) -> set[str]:
    leaked: set[str] = set()
    status = 400 if entry.side == "error" else 200
    for doc in docs:
        can(sim, _path(entry), doc.body, status=status)
        response = _call(gw, entry, stream=False)
        assert response.status_code in (status, 502), response.text[:300]
        leaked |= _seen(pattern, _body(response.content), response.text)
    return leaked


def _terminal(entry: Entry, event: dict[str, Any]) -> bool:
    kind = event.get("type")
    return kind in RESPONSES_TERMINAL or kind in ("message_stop", "error")


def _end(entry: Entry) -> bytes:
    if entry.name.startswith("openai.responses"):
        return (
            b'data: {"type": "response.completed", "response": {"id": "resp_1", "output": []}}\n\n'
        )
    if entry.vendor == "anthropic":
        return b'data: {"type": "message_stop"}\n\n'
    return b"data: [DONE]\n\n"


def _send_streams(
    gw: Running[Any],
    sim: Running[Simulator],
    entry: Entry,
    docs: list[Document],
    pattern: re.Pattern[str],
) -> set[str]:
    """Every event document in one stream, then each terminal event in a stream of its own."""
    leaked: set[str] = set()
    events = [d.body for d in docs if not _terminal(entry, d.body)]
    streams = [[*events, None]] + [[d.body] for d in docs if _terminal(entry, d.body)]
    for stream in streams:
        chunks = [
            b"data: " + orjson.dumps(e) + b"\n\n" if e is not None else _end(entry) for e in stream
        ]
        can(sim, _path(entry), content_type="text/event-stream", chunks=chunks)
        response = _call(gw, entry, stream=True)
        assert response.status_code == 200, response.text[:300]
        leaked |= _seen(pattern, _events(response.content), response.text)
    return leaked


def _run(
    gw: Running[Any],
    sim: Running[Simulator],
    entry: Entry,
    canary: Callable[[str], str],
    pattern: re.Pattern[str],
) -> tuple[list[Document], set[str], set[str]]:
    docs = documents(entry.survey(), canary, fill_lists=entry.side == "request")
    untested: set[str] = set()
    if entry.side == "request":
        leaked, untested = _send_requests(gw, sim, entry, docs, pattern)
    elif entry.side == "stream":
        leaked = _send_streams(gw, sim, entry, docs, pattern)
    else:
        leaked = _send_bodies(gw, sim, entry, docs, pattern)
    return docs, leaked, untested


def _planted(docs: list[Document]) -> dict[str, Field]:
    return {c.strip(): f for d in docs for c, f in d.canaries.items()}


ENTRIES = [
    name
    for name in ENTRY_POINTS
    if (name.startswith(ENDPOINTS + ANTHROPIC) or name in ("openai.error", "anthropic.error"))
    and ENTRY_POINTS[name].survey().fields  # a token count has no string to plant
]


@pytest.mark.parametrize("name", ENTRIES)
def test_an_address_planted_in_any_string_field_never_passes(
    sim: Running[Simulator], pii_gw: Running[Any], name: str
) -> None:
    entry = ENTRY_POINTS[name]
    docs, leaked, untested = _run(pii_gw, sim, entry, _emails(), EMAIL)
    planted = _planted(docs)
    assert leaked <= set(planted)  # the check sees what was planted, nothing else
    assert not leaked, "leaked: " + ", ".join(sorted(planted[c].wire for c in leaked))
    for canary in untested:
        print(f"{name}: {planted[canary].wire} is validated at the door (400 invalid_model)")
    print(f"{name}: {len(planted)} positions in {len(docs)} documents, none passed")


@pytest.mark.parametrize("name", ENTRIES)
def test_only_declared_non_text_fields_let_an_identifier_through(
    sim: Running[Simulator], token_gw: Running[Any], name: str
) -> None:
    entry = ENTRY_POINTS[name]
    docs, leaked, _ = _run(token_gw, sim, entry, _tokens(), TOKEN)
    planted = _planted(docs)
    declared = fields.DECLARED[entry.vendor]

    def skippable(field: Field) -> bool:
        if field.kind == "key":
            return True  # an identifier-shaped object key is structure, not text
        rule = declared.get(_name(field) or "")
        return rule is not None and rule.kind in _TOKEN_SHAPED

    expected = {c for c, f in planted.items() if skippable(f)}
    scanned_anyway = expected - leaked  # declared, but met in a channel or other context
    assert leaked <= expected, "scanned nowhere: " + ", ".join(
        sorted(planted[c].wire for c in leaked - expected)
    )
    passed = Counter(f"{_name(planted[c]) or '{key}'} ({planted[c].kind})" for c in leaked)
    print(f"{name}: declared non-text, not scanned: {dict(sorted(passed.items()))}")
    if scanned_anyway:
        print(f"{name}: declared but scanned anyway: {len(scanned_anyway)}")


def test_declared_non_text_keys_are_the_sdks_ids_enums_and_models() -> None:
    """Each declaration names a key the SDK types have, and an enum declaration a key
    they type as a Literal somewhere: the list cannot drift into naming text fields."""
    seen: dict[str, dict[str, Counter[str]]] = {"openai": {}, "anthropic": {}}
    for entry in ENTRY_POINTS.values():
        for field in entry.survey().fields:
            name = _name(field)
            if name is not None:
                seen[entry.vendor].setdefault(name, Counter())[field.kind] += 1
    wrong = []
    for vendor, declared in fields.DECLARED.items():
        for key, rule in sorted(declared.items()):
            kinds = seen[vendor].get(key)
            print(f"{vendor:9} {key:24} {rule.kind:7} SDK positions: {dict(kinds or {})}")
            if not kinds:
                wrong.append(f"{vendor}: {key!r} is declared non-text but no SDK type has it")
            elif rule.kind == "enum" and not kinds["literal"]:
                wrong.append(f"{vendor}: {key!r} is declared an enum, never a Literal")
    assert not wrong, wrong


def test_a_field_no_sdk_knows_is_scanned(sim: Running[Simulator], pii_gw: Running[Any]) -> None:
    secret = "zz.unknown@example.com"
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"x_future_text": f"Mail {secret[:5]}"}}],
    }
    later = json.loads(json.dumps(chunk))
    later["choices"][0]["delta"]["x_future_text"] = f"{secret[5:]} now."
    later["x_top"] = {"note": secret}
    chunks = [b"data: " + orjson.dumps(e) + b"\n\n" for e in (chunk, later)]
    can(
        sim,
        "/v1/chat/completions",
        content_type="text/event-stream",
        chunks=[*chunks, b"data: [DONE]\n\n"],
    )
    response = _call(pii_gw, ENTRY_POINTS["openai.chat.stream"], stream=True)
    assert secret not in response.text
    text = "".join(
        e["choices"][0]["delta"].get("x_future_text", "")
        for e in _events(response.content)
        if isinstance(e, dict) and e.get("choices")
    )
    assert secret not in text
    assert secret[:5] not in text
    can(sim, "/v1/messages", {"type": "message", "content": [], "x_new": [{"deep": secret}]})
    response = _call(pii_gw, ENTRY_POINTS["anthropic.messages.response"], stream=False)
    assert secret not in response.text
