"""tests/sdk_types.py: the string positions of hand-written types, and of the SDKs' own."""

# The hand-written types are spelt as the SDKs spell theirs (typing.Union, List, Optional).
# ruff: noqa: UP006, UP007, UP035, UP045

from __future__ import annotations

import datetime
import enum
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

import orjson
import pydantic
import pytest
from anthropic._models import UnionDiscriminator
from openai._types import Base64FileInput, FileTypes, SequenceNotStr
from openai._utils import PropertyInfo
from typing_extensions import NotRequired, Required, TypedDict

from tests.sdk_types import (
    BETA_ENTRY_POINTS,
    ENTRY_POINTS,
    FILLER,
    Document,
    Entry,
    Field,
    documents,
    email_canaries,
    report,
    roundtrip,
    sdk_body_keys,
    sse,
    string_fields,
    survey,
)

# --- hand-written types -------------------------------------------------------------------


class Base(TypedDict, total=False):
    model: Required[str]
    user: str


class Params(Base):
    count: int
    stop: Union[str, SequenceNotStr[str], None]
    metadata: Optional[Dict[str, str]]
    extra: object
    mode: Literal["fast", "slow"]
    beta_flag: Annotated[str, PropertyInfo(alias="betaFlag")]
    header: Annotated[str, PropertyInfo(alias="x-header")]


class Text(TypedDict):
    type: Literal["text"]
    text: str


class Image(TypedDict):
    type: Literal["image"]
    url: str
    detail: NotRequired[Literal["low", "high"]]


class Message(TypedDict, total=False):
    role: Required[Literal["user", "assistant"]]
    content: Required[Union[str, Iterable[Union[Text, Image]]]]


class Chat(TypedDict):
    messages: Iterable[Message]
    tool_choice: Union[Literal["auto", "none"], Text, Image]


class Schema(pydantic.BaseModel):
    name: str
    schema_: Optional[Dict[str, object]] = pydantic.Field(alias="schema", default=None)
    created: Optional[datetime.datetime] = None
    count: int = 0


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class A(pydantic.BaseModel):
    kind: Literal["a"]
    a: str
    color: Color = Color.RED


class B(pydantic.BaseModel):
    kind: Literal["b"]
    b: Optional[str] = None
    score: float


Tagged = Annotated[Union[A, B], PropertyInfo(discriminator="kind")]


class Holder(pydantic.BaseModel):
    one: Tagged
    many: List[Annotated[Union[A, B], UnionDiscriminator("kind")]]
    mapping: Mapping[str, Sequence[str]]
    either: A | B | None = None


class Tree(TypedDict):
    name: str
    children: List[Tree]


class Node(pydantic.BaseModel):
    label: str
    next: Optional[Node] = None
    items: List[Node] = []


class Upload(TypedDict, total=False):
    file: Required[FileTypes]
    data: Annotated[Union[str, Base64FileInput], PropertyInfo(format="base64")]
    when: Annotated[Union[str, datetime.datetime], PropertyInfo(format="iso8601")]


def _paths(tp: Any, **options: Any) -> dict[str, Field]:
    return {f.path: f for f in string_fields(tp, **options)}


def _values_at(body: Any, wire: str) -> list[Any]:
    """Everything at a wire path: ``[]`` each item, ``{}`` each value, ``{key}`` each key."""
    current = [body]
    for token in re.findall(r"\[\]|\{key\}|\{\}|[^.\[\]{}]+", wire):
        found: list[Any] = []
        for value in current:
            if token == "[]" and isinstance(value, list):
                found += value
            elif token == "{}" and isinstance(value, dict):
                found += value.values()
            elif token == "{key}" and isinstance(value, dict):
                found += value.keys()
            elif isinstance(value, dict) and token in value:
                found.append(value[token])
        current = found
    return current


_CANARY = re.compile(r"c\d{4,}\.leak@example\.com")


def _check(tp: Any, docs: list[Document], fields: list[Field]) -> None:
    """Every position planted exactly once, where its wire path says, and nowhere else."""
    planted = [f.path for d in docs for f in d.canaries.values()]
    assert sorted(planted) == sorted(f.path for f in fields)
    seen = Counter(_CANARY.findall(" ".join(orjson.dumps(d.body).decode() for d in docs)))
    assert set(seen.values()) <= {1}
    for doc in docs:
        for canary, f in doc.canaries.items():
            assert seen[canary] == 1, (canary, f.path)
            assert canary in _values_at(doc.body, f.wire), (canary, f.path, tp)
            assert f.phase == doc.phase


def test_typeddict_keys_requiredness_aliases_and_kinds() -> None:
    sv = survey(Params)
    fields = {f.path: f for f in sv.fields}
    assert {p: f.kind for p, f in fields.items()} == {
        "model": "str",
        "user": "str",
        "stop": "str",
        "stop[]": "str",
        "metadata{key}": "key",
        "metadata{}": "str",
        "extra": "free",
        "mode": "literal",
        "betaFlag": "str",
    }
    assert fields["mode"].values == ("fast", "slow")
    assert (fields["betaFlag"].attribute, fields["betaFlag"].owner) == (
        "beta_flag",
        f"{__name__}.Params",
    )
    assert fields["model"].owner == f"{__name__}.Base"
    assert [(n.path, n.kind) for n in sv.notes] == [("x-header", "not_body")]
    docs = documents(Params, email_canaries())
    _check(Params, docs, sv.fields)
    assert docs[0].body["model"] == "c0001.leak@example.com"
    # Phase 2 plants only ``mode``: the rest is what is required, filled. Params is total,
    # Base is not: ``user`` is optional, ``model`` is Required.
    (literals,) = [d for d in docs if d.phase == 2]
    assert literals.body == {
        "model": FILLER,
        "count": 0,
        "stop": FILLER,
        "metadata": {},
        "extra": {},
        "mode": "c0008.leak@example.com",
        "betaFlag": FILLER,
    }


def test_body_keys_turn_top_level_fields_into_notes() -> None:
    sv = survey(Params, body_keys={"model", "stop"})
    assert {f.path for f in sv.fields} == {"model", "stop", "stop[]"}
    assert {n.path for n in sv.notes if n.kind == "not_body"} >= {"user", "metadata", "mode"}


def test_union_variants_are_kept_apart_and_discriminators_found() -> None:
    fields = _paths(Chat)
    assert set(fields) == {
        "messages[].role",
        "messages[].content",
        "messages[].content[]<Text>.type",
        "messages[].content[]<Text>.text",
        "messages[].content[]<Image>.type",
        "messages[].content[]<Image>.url",
        "messages[].content[]<Image>.detail",
        "tool_choice",
        "tool_choice<Text>.type",
        "tool_choice<Text>.text",
        "tool_choice<Image>.type",
        "tool_choice<Image>.url",
        "tool_choice<Image>.detail",
    }
    assert fields["messages[].content[]<Image>.url"].wire == "messages[].content[].url"
    discriminators = {p for p, f in fields.items() if f.discriminator}
    assert discriminators == {
        "messages[].content[]<Text>.type",
        "messages[].content[]<Image>.type",
        "tool_choice<Text>.type",
        "tool_choice<Image>.type",
    }
    assert not fields["messages[].role"].discriminator  # no union of objects around it
    assert fields["tool_choice"].kind == "literal"


def test_documents_put_list_variants_side_by_side_and_unions_apart() -> None:
    docs = documents(Chat, email_canaries())
    _check(Chat, docs, string_fields(Chat))
    first = docs[0]
    assert first.phase == 1
    # Two messages: one whose content is a list holding both variants, each with its
    # discriminator, one whose content is the string form.
    listed, plain = first.body["messages"]
    assert [part["type"] for part in listed["content"]] == ["text", "image"]
    assert listed["role"] == plain["role"] == "user"  # literals stay valid in phase 1
    assert isinstance(plain["content"], str)
    # tool_choice holds one variant per document: the other needs a second one.
    assert first.body["tool_choice"]["type"] == "text"
    assert [d.phase for d in docs].count(1) == 2
    assert docs[1].body == {"messages": [], "tool_choice": docs[1].body["tool_choice"]}
    assert docs[1].body["tool_choice"]["type"] == "image"
    # Phase 2 plants the literals but keeps the discriminators that shape the variants.
    phase2 = [d for d in docs if d.phase == 2]
    for doc in phase2:
        for part in (p for m in doc.body["messages"] for p in m["content"]):
            assert part["type"] in ("text", "image")
    planted = {f.path for d in phase2 for f in d.canaries.values()}
    assert "messages[].content[]<Image>.detail" in planted
    assert "messages[].role" in planted
    # Phase 3 plants the discriminators themselves.
    phase3 = {f.path for d in docs if d.phase == 3 for f in d.canaries.values()}
    assert phase3 == {p for p, f in _paths(Chat).items() if f.discriminator}


def test_pydantic_aliases_defaults_dates_and_free_dicts() -> None:
    fields = _paths(Schema)
    assert set(fields) == {"name", "schema{key}", "schema{}", "created"}
    assert fields["schema{}"].kind == "free"
    assert fields["schema{key}"].attribute == "schema_"
    assert (fields["created"].kind, fields["created"].format, fields["created"].phase) == (
        "str",
        "datetime",
        2,
    )
    docs = documents(Schema, email_canaries())
    _check(Schema, docs, string_fields(Schema))
    first = docs[0]
    assert set(first.body) == {"name", "schema"}
    assert roundtrip(Schema, first) == roundtrip(Schema, first)
    result = roundtrip(Schema, first)
    assert (result.method, result.lost, result.exact) == ("validate", (), True)
    dated = docs[1]
    assert dated.phase == 2
    assert roundtrip(Schema, dated).method == "construct"  # a canary is no date
    forced = roundtrip(Schema, dated, validate=True)
    assert forced.method == "construct"
    assert forced.error is not None
    assert "created" in forced.error
    assert forced.lost == ()


def test_discriminated_unions_enums_and_pep604() -> None:
    fields = _paths(Holder)
    assert fields["one<A>.kind"].discriminator
    assert fields["many[]<B>.kind"].discriminator
    assert fields["either<A>.kind"].discriminator  # guessed: a Literal in every variant
    assert fields["one<A>.color"].values == ("red", "blue")
    assert fields["mapping{}[]"].kind == "str"
    docs = documents(Holder, email_canaries())
    _check(Holder, docs, string_fields(Holder))
    first = docs[0]
    assert [item["kind"] for item in first.body["many"]] == ["a", "b"]
    assert first.body["many"][1]["score"] == 0.0  # required: a plausible value
    for doc in (d for d in docs if d.phase == 1):
        result = roundtrip(Holder, doc)
        assert (result.method, result.lost, result.exact) == ("validate", (), True)


def test_recursion_is_bounded_and_reported() -> None:
    once = survey(Tree)
    assert [f.path for f in once.fields] == ["name"]
    assert [(n.path, n.kind) for n in once.notes] == [("children[]", "truncated")]
    twice = survey(Tree, max_repeat=2)
    assert [f.path for f in twice.fields] == ["name", "children[].name"]
    assert [n.path for n in twice.notes] == ["children[].children[]"]
    models = survey(Node, max_repeat=2)
    assert [f.path for f in models.fields] == ["label", "next.label", "items[].label"]
    assert {n.path for n in models.notes} == {
        "next.next",
        "next.items[]",
        "items[].next",
        "items[].items[]",
    }
    docs = documents(models, email_canaries())
    _check(Node, docs, models.fields)
    assert roundtrip(Node, docs[0]).exact


def test_files_and_binary_are_noted_not_planted() -> None:
    sv = survey(Upload)
    assert {f.path: f.format for f in sv.fields} == {"data": "base64", "when": "iso8601"}
    assert {(n.path, n.kind) for n in sv.notes} == {("file", "binary"), ("data", "binary")}
    (doc,) = documents(sv, email_canaries())
    assert doc.body["file"] is None  # required, but no JSON can stand for a file


def test_options_kinds_phases_fill_lists_and_unique_canaries() -> None:
    only_text = documents(Chat, kinds=("str",))
    assert {f.kind for d in only_text for f in d.canaries.values()} == {"str"}
    assert {d.phase for d in documents(Chat, phases=(3,))} == {3}
    filled = documents(Chat, phases=(3,), fill_lists=True)
    assert all(d.body["messages"] for d in filled)
    with pytest.raises(ValueError, match="not unique"):
        documents(Chat, lambda _path: "same@example.com")
    with pytest.raises(ValueError, match="not unique"):
        documents(Chat, lambda _path: FILLER)


# --- the SDKs' own types ------------------------------------------------------------------

ALL_ENTRIES: dict[str, Entry] = {**ENTRY_POINTS, **BETA_ENTRY_POINTS}


def test_entry_points_exist_in_the_installed_sdks() -> None:
    assert set(ENTRY_POINTS) == {
        "openai.chat.request",
        "openai.chat.response",
        "openai.chat.stream",
        "openai.completions.request",
        "openai.completions.response",
        "openai.completions.stream",
        "openai.embeddings.request",
        "openai.embeddings.response",
        "openai.responses.request",
        "openai.responses.response",
        "openai.responses.stream",
        "openai.error",
        "anthropic.messages.request",
        "anthropic.messages.response",
        "anthropic.messages.stream",
        "anthropic.count_tokens.request",
        "anthropic.count_tokens.response",
        "anthropic.batches.request",
        "anthropic.batches.response",
        "anthropic.error",
    }
    for entry in ALL_ENTRIES.values():
        print(f"{entry.name:38} {entry.endpoint or '-':40} {entry.source}")
        assert (entry.side == "request") == (entry.body_keys is not None)


def test_body_keys_are_read_from_the_sdk_methods() -> None:
    import anthropic.resources.messages.messages as messages  # noqa: PLR0402

    keys = sdk_body_keys(messages.Messages.create)
    assert keys is not None
    assert {"model", "messages", "max_tokens", "stream"} <= keys
    assert "workspace_id" not in keys  # sent as the anthropic-workspace-id header
    embeddings = ENTRY_POINTS["openai.embeddings.request"].body_keys
    assert embeddings == {"model", "input", "dimensions", "encoding_format", "user"}
    notes = ENTRY_POINTS["anthropic.messages.request"].survey().notes
    assert {n.path for n in notes if n.kind == "not_body"} == {"user_profile_id", "workspace_id"}


@pytest.mark.parametrize("name", sorted(ALL_ENTRIES))
def test_sdk_documents_cover_every_position_once(name: str) -> None:
    entry = ALL_ENTRIES[name]
    sv = entry.survey()
    docs = entry.documents(email_canaries())
    _check(entry.tp, docs, sv.fields)
    phases = {p: sum(d.phase == p for d in docs) for p in (1, 2, 3)}
    print(f"{name}: {len(sv.fields)} positions {sv.by_kind()}, documents {phases}")
    assert not [n for n in sv.notes if n.kind in ("truncated", "unknown")]
    if entry.side == "request":
        return
    failures = []
    for doc in docs:
        result = roundtrip(entry.tp, doc)
        valid = doc.phase == 1  # phases 2 and 3 plant literals: invalid by design
        if result.lost or (valid and (result.method != "validate" or not result.exact)):
            failures.append((doc.phase, result))
    for failure in failures:
        print("  roundtrip:", failure)
    assert not failures


def test_sse_framing() -> None:
    chunk = sse(ENTRY_POINTS["openai.chat.stream"], {"id": "x", "type": "ignored"})
    assert chunk == b'data: {"id":"x","type":"ignored"}\n\n'
    event = sse(ENTRY_POINTS["anthropic.messages.stream"], {"type": "message_stop"})
    assert event == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_report_prints_counts() -> None:
    lines = report(ENTRY_POINTS) + report(BETA_ENTRY_POINTS)
    print("\n".join(lines))
    assert len(lines) == len(ALL_ENTRIES)
