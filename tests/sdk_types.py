"""Where a JSON string can sit in the vendors' own request and response types.

The OpenAI and Anthropic SDKs describe every request body as TypedDicts and every response
as pydantic models. This module walks those definitions (pydantic fields by their wire
alias, TypedDict keys, unions with their variants kept apart, lists, free-form dicts,
recursion bounded) and lists each string position with its kind; ``documents`` then writes
a few JSON documents that together put a unique canary at every one of them, for tests
that check that no canary crosses the proxy.

Paths: ``messages[]<ChatCompletionUserMessageParam>.content[]<ChatCompletionContentPartTextParam>.text``
- ``.name`` a field by its wire name, ``[]`` any list item, ``{}`` the value under any key
  of a free-form dict and ``{key}`` that key itself, ``<Class>`` the variant of a union of
  two or more object types. ``Field.wire`` is the path without the variant markers.

Kinds: ``str`` (declared text, or text among literal suggestions such as a model name),
``literal`` (only the listed values are valid), ``free`` (``object``/``Any``: any JSON,
so a string too) and ``key`` (a free-form dict's key). Positions that cannot hold a JSON
string, or that the walk did not enter, are notes (``Note``): ``binary`` (files, bytes),
``truncated`` (a recursive type at its bound), ``not_body`` (a parameter the SDK sends
outside the JSON body, as a header: read from the resource method's own source) and
``unknown``.

Documents come in three phases: 1 plants the ``str``/``free``/``key`` positions (the
literals keep valid values, so a document has the type's shape and a response parses);
2 plants the literals that select no union variant, and the pydantic ``datetime`` fields;
3 plants the discriminators (the literal that tells a union's variants apart).

    from tests.sdk_types import ENTRY_POINTS, email_canaries
    entry = ENTRY_POINTS["openai.chat.request"]
    for doc in entry.documents(email_canaries()):  # c0001.leak@example.com, ...
        post(entry.endpoint, doc.body)             # doc.canaries: canary -> Field

Run ``python -m tests.sdk_types`` for the counts per entry point.
"""

from __future__ import annotations

import ast
import builtins
import datetime
import enum
import inspect
import io
import itertools
import os
import re
import sys
import textwrap
import types
import typing
from collections import abc
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, ForwardRef, Literal, TypeAlias

import orjson
import pydantic
import typing_extensions

Kind: TypeAlias = Literal["str", "literal", "free", "key"]
NoteKind: TypeAlias = Literal["binary", "truncated", "not_body", "unknown"]
Phase: TypeAlias = Literal[1, 2, 3]
PHASES: tuple[Phase, ...] = (1, 2, 3)

FILLER = "filler"
"""The value of a string position a document does not plant but must fill."""
_DATETIME = "2025-01-01T00:00:00Z"

_DISCRIMINATOR_NAMES = ("type", "role", "object", "event")
_HEADER_ALIAS = re.compile(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)+")  # anthropic-beta, Idempotency-Key
_MAX_ITEMS = 10_000


@dataclass(frozen=True, slots=True)
class Field:
    """A position where a JSON string can sit."""

    path: str
    """Unique within the type: the wire path with union variant markers."""
    wire: str
    """The wire path: ``path`` without the ``<Variant>`` markers."""
    kind: Kind
    values: tuple[str, ...] = ()
    """The allowed values of a ``literal``; a ``str``'s known suggestions (model names)."""
    discriminator: bool = False
    """A literal that selects its object's variant in a union."""
    format: str | None = None
    """The SDK's ``PropertyInfo(format=...)`` (``base64``, ``iso8601``), or ``datetime``."""
    owner: str | None = None
    """The class that declares the field (``module.Class``)."""
    attribute: str | None = None
    """The field's Python name in ``owner`` (``schema_`` for the wire's ``schema``)."""

    @property
    def phase(self) -> Phase:
        """The document phase that plants it: 1 text that keeps the type valid, 2 literals
        and dates, 3 discriminators."""
        if self.kind == "literal":
            return 3 if self.discriminator else 2
        return 2 if self.format == "datetime" else 1


@dataclass(frozen=True, slots=True)
class Note:
    """A position that holds no JSON string, or that the walk did not enter."""

    path: str
    wire: str
    kind: NoteKind
    detail: str


@dataclass(frozen=True, slots=True)
class Document:
    body: dict[str, Any]
    canaries: dict[str, Field]
    """Each canary this document plants, and where."""
    phase: Phase

    def placed(self) -> dict[str, tuple[str, Kind]]:
        """canary -> (path, kind)."""
        return {canary: (f.path, f.kind) for canary, f in self.canaries.items()}


# --- the type tree ------------------------------------------------------------------------


@dataclass(eq=False)
class _Node:
    path: str
    wire: str
    positions: frozenset[str] = field(default=frozenset(), init=False)
    """The paths of every Field in this subtree."""


@dataclass(eq=False)
class _Leaf(_Node):
    field: Field = field(kw_only=True)

    def __post_init__(self) -> None:
        self.positions = frozenset({self.field.path})


@dataclass(eq=False)
class _Scalar(_Node):
    value: Any = field(kw_only=True)


@dataclass(eq=False)
class _Opaque(_Node):
    note: Note = field(kw_only=True)


@dataclass(eq=False)
class _List(_Node):
    item: _Node = field(kw_only=True)

    def __post_init__(self) -> None:
        self.positions = self.item.positions


@dataclass(eq=False)
class _Dict(_Node):
    key: Field | None = field(kw_only=True)
    value: _Node = field(kw_only=True)

    def __post_init__(self) -> None:
        keys = {self.key.path} if self.key else set()
        self.positions = self.value.positions | keys


@dataclass(eq=False)
class _Member:
    name: str
    required: bool
    discriminator: bool
    node: _Node


@dataclass(eq=False)
class _Obj(_Node):
    cls: type = field(kw_only=True)
    members: list[_Member] = field(kw_only=True)

    def __post_init__(self) -> None:
        self.positions = frozenset().union(*(m.node.positions for m in self.members))


@dataclass(eq=False)
class _Union(_Node):
    variants: list[_Node] = field(kw_only=True)

    def __post_init__(self) -> None:
        self.positions = frozenset().union(*(v.positions for v in self.variants))


@dataclass(frozen=True, slots=True)
class _Context:
    """What the field being walked says about the type at hand."""

    owner: str | None = None
    attribute: str | None = None
    format: str | None = None
    discriminator: bool = False


@dataclass(slots=True)
class Survey:
    """Every string position of a type, the notes, and the tree ``documents`` walks."""

    tp: Any
    fields: list[Field]
    notes: list[Note]
    root: _Node
    max_repeat: int

    def by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.fields:
            counts[f.kind] = counts.get(f.kind, 0) + 1
        return counts


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_LISTS = frozenset(
    {
        list,
        tuple,
        set,
        frozenset,
        abc.Sequence,
        abc.MutableSequence,
        abc.Iterable,
        abc.Iterator,
        abc.Collection,
        abc.Set,
        abc.MutableSet,
        abc.AsyncIterable,
        abc.AsyncIterator,
    }
)
_DICTS = frozenset({dict, abc.Mapping, abc.MutableMapping})
_DATES = (datetime.datetime, datetime.date, datetime.time)
_BINARY = (bytes, bytearray, memoryview, io.IOBase, os.PathLike)
_WRAPPERS = frozenset(
    {
        typing.Required,
        typing.NotRequired,
        typing_extensions.Required,
        typing_extensions.NotRequired,
        typing_extensions.ReadOnly,
        typing.ClassVar,
        typing.Final,
    }
)


def _union_of(types_: Iterable[Any]) -> Any:
    """``Union[...]`` of types known only at run time (one type stays itself)."""
    return typing.Union.__getitem__(tuple(types_))


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _is_object_type(tp: Any) -> bool:
    return _is_model(tp) or typing_extensions.is_typeddict(tp)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _resolve(ref: Any, module: str | None) -> Any:
    """A string or ForwardRef annotation, evaluated in ``module``'s namespace."""
    text = ref.__forward_arg__ if isinstance(ref, ForwardRef) else ref
    namespace = dict(vars(sys.modules[module])) if module and module in sys.modules else {}
    namespace.setdefault("typing", typing)
    return eval(text, namespace)  # the SDKs' own annotations


def _unwrap(tp: Any, module: str | None = None) -> tuple[Any, list[Any], bool | None]:
    """``tp`` without Annotated, Required/NotRequired and forward references: the bare type,
    the Annotated metadata, and True/False when Required/NotRequired said so."""
    metadata: list[Any] = []
    required: bool | None = None
    while True:
        if isinstance(tp, str | ForwardRef):
            tp = _resolve(tp, module)
            continue
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            metadata.extend(tp.__metadata__)
            tp = tp.__origin__
            continue
        if origin in _WRAPPERS:
            if origin in (typing.Required, typing_extensions.Required):
                required = True
            elif origin in (typing.NotRequired, typing_extensions.NotRequired):
                required = False
            tp = typing.get_args(tp)[0]
            continue
        alias_value = getattr(tp, "__value__", None)  # a TypeAliasType
        if alias_value is not None and type(tp).__name__ == "TypeAliasType":
            tp = alias_value
            continue
        return tp, metadata, required


def _meta_alias(metadata: Iterable[Any]) -> str | None:
    for item in metadata:
        alias = getattr(item, "alias", None)
        if type(item).__name__ == "PropertyInfo" and isinstance(alias, str):
            return alias
    return None


def _meta_format(metadata: Iterable[Any]) -> str | None:
    for item in metadata:
        fmt = getattr(item, "format", None)
        if type(item).__name__ == "PropertyInfo" and isinstance(fmt, str):
            return fmt
    return None


def _meta_discriminator(metadata: Iterable[Any]) -> str | None:
    """The field named by PropertyInfo(discriminator=), UnionDiscriminator or pydantic's."""
    for item in metadata:
        for attribute in ("discriminator", "field_name"):
            value = getattr(item, attribute, None)
            if isinstance(value, str):
                return value
            if isinstance(value, pydantic.Discriminator) and isinstance(value.discriminator, str):
                return value.discriminator
        if isinstance(item, pydantic.Discriminator) and isinstance(item.discriminator, str):
            return item.discriminator
    return None


@dataclass(frozen=True, slots=True)
class _Declared:
    attribute: str
    wire: str
    required: bool
    annotation: Any
    owner: type

    @property
    def module(self) -> str:
        """Where the annotation's names resolve."""
        return self.owner.__module__


class _Walker:
    def __init__(self, max_repeat: int, body_keys: frozenset[str] | None) -> None:
        self.max_repeat = max_repeat
        self.body_keys = body_keys
        self.fields: list[Field] = []
        self.notes: list[Note] = []
        self._members: dict[type, list[_Declared]] = {}

    # Fields of an object type, by wire name.

    def members(self, cls: type) -> list[_Declared]:
        if cls not in self._members:
            if _is_model(cls):
                self._members[cls] = self._model_members(cls)
            else:
                self._members[cls] = self._typeddict_members(cls)
        return self._members[cls]

    def _model_members(self, cls: type) -> list[_Declared]:
        model = typing.cast("type[pydantic.BaseModel]", cls)
        out = []
        for name, info in model.model_fields.items():
            annotation: Any = info.annotation
            extra = list(info.metadata)
            if isinstance(info.discriminator, str):
                extra.append(pydantic.Discriminator(info.discriminator))
            if extra:
                annotation = typing.Annotated[annotation, *extra]
            wire = info.serialization_alias or info.alias or name
            owner = _declarer(cls, name)
            out.append(_Declared(name, wire, info.is_required(), annotation, owner))
        return out

    def _typeddict_members(self, cls: type) -> list[_Declared]:
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except NameError:  # an annotation only importable under TYPE_CHECKING
            hints = dict(cls.__annotations__)
        out = []
        required_keys: frozenset[str] = getattr(cls, "__required_keys__", frozenset())
        for name, annotation in hints.items():
            owner = _declarer(cls, name)
            _, metadata, said = _unwrap(annotation, owner.__module__)
            required = said if said is not None else name in required_keys
            wire = _meta_alias(metadata) or name
            out.append(_Declared(name, wire, required, annotation, owner))
        return out

    # The tree.

    def field(self, **kwargs: Any) -> Field:
        f = Field(**kwargs)
        self.fields.append(f)
        return f

    def note(self, path: str, wire: str, kind: NoteKind, detail: str) -> _Opaque:
        n = Note(path, wire, kind, detail)
        self.notes.append(n)
        return _Opaque(path, wire, note=n)

    def leaf(
        self, path: str, wire: str, kind: Kind, ctx: _Context, values: Iterable[str] = ()
    ) -> _Leaf:
        f = self.field(
            path=path,
            wire=wire,
            kind=kind,
            values=tuple(values),
            discriminator=ctx.discriminator and kind == "literal",
            format=ctx.format,
            owner=ctx.owner,
            attribute=ctx.attribute,
        )
        return _Leaf(path, wire, field=f)

    def node(
        self,
        tp: Any,
        path: str,
        wire: str,
        stack: tuple[type, ...],
        ctx: _Context,
        module: str | None,
    ) -> _Node:
        tp, metadata, _ = _unwrap(tp, module)
        fmt = _meta_format(metadata)
        if fmt:
            ctx = _Context(ctx.owner, ctx.attribute, fmt, ctx.discriminator)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is typing.Union or origin is types.UnionType:
            return self.union(tp, metadata, path, wire, stack, ctx, module)
        if origin is Literal:
            return self.literal(args, path, wire, ctx)
        item_ctx = _Context(ctx.owner, ctx.attribute, ctx.format)
        if origin in _LISTS:
            if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
                if any(self._binary(a, module) for a in args):
                    return self.note(path, wire, "binary", repr(tp))
                item: Any = _union_of(a for a in args if a is not Ellipsis)
            else:
                item = args[0] if args else Any
            child = self.node(item, path + "[]", wire + "[]", stack, item_ctx, module)
            return _List(path, wire, item=child)
        if origin in _DICTS:
            key_type = _unwrap(args[0], module)[0] if args else str
            key = None
            if key_type is str or typing.get_origin(key_type) is Literal:
                key = self.field(
                    path=path + "{key}",
                    wire=wire + "{key}",
                    kind="key",
                    owner=ctx.owner,
                    attribute=ctx.attribute,
                )
            value_type = args[1] if len(args) > 1 else Any
            value = self.node(value_type, path + "{}", wire + "{}", stack, item_ctx, module)
            return _Dict(path, wire, key=key, value=value)
        if origin is not None:
            if origin is typing.IO or (isinstance(origin, type) and issubclass(origin, _BINARY)):
                return self.note(path, wire, "binary", repr(tp))
            if origin is type:
                return self.note(path, wire, "unknown", repr(tp))
            tp = origin  # a generic class: walk it as the class
        if tp is Any or tp is builtins.object or isinstance(tp, typing.TypeVar):
            return self.leaf(path, wire, "free", ctx)
        if tp is str:
            return self.leaf(path, wire, "str", ctx)
        if tp in _DATES:
            dated = _Context(ctx.owner, ctx.attribute, ctx.format or "datetime")
            return self.leaf(path, wire, "str", dated)
        if tp is type(None) or tp is None:
            return _Scalar(path, wire, value=None)
        if tp is bool:
            return _Scalar(path, wire, value=False)
        if tp is int:
            return _Scalar(path, wire, value=0)
        if tp is float:
            return _Scalar(path, wire, value=0.0)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self.literal(tuple(m.value for m in tp), path, wire, ctx)
        if _is_object_type(tp):
            return self.obj(tp, path, wire, stack, None)
        if self._binary(tp, module):
            return self.note(path, wire, "binary", repr(tp))
        return self.note(path, wire, "unknown", repr(tp))

    def _binary(self, tp: Any, module: str | None) -> bool:
        tp = _unwrap(tp, module)[0]
        origin = typing.get_origin(tp) or tp
        if origin is typing.IO or (isinstance(origin, type) and issubclass(origin, _BINARY)):
            return True
        if origin is typing.Union or origin is types.UnionType:
            return all(self._binary(a, module) for a in typing.get_args(tp))
        if origin is tuple:  # (filename, file, content type): a file, not JSON
            return any(self._binary(a, module) for a in typing.get_args(tp) if a is not Ellipsis)
        return False

    def literal(self, values: tuple[Any, ...], path: str, wire: str, ctx: _Context) -> _Node:
        texts = [v for v in values if isinstance(v, str)]
        others = [v for v in values if not isinstance(v, str)]
        if not texts:
            return _Scalar(path, wire, value=others[0] if others else None)
        return self.leaf(path, wire, "literal", ctx, texts)

    def union(
        self,
        tp: Any,
        metadata: list[Any],
        path: str,
        wire: str,
        stack: tuple[type, ...],
        ctx: _Context,
        module: str | None,
    ) -> _Node:
        discriminator = _meta_discriminator(metadata)
        variants: list[Any] = []
        pending = list(typing.get_args(tp))
        while pending:  # flatten nested unions and aliases
            variant = pending.pop(0)
            bare, inner, _ = _unwrap(variant, module)
            if (
                typing.get_origin(bare) is typing.Union
                or typing.get_origin(bare) is types.UnionType
            ):
                discriminator = discriminator or _meta_discriminator(inner)
                pending[:0] = typing.get_args(bare)
            elif isinstance(bare, type) and bare.__name__ in ("NotGiven", "Omit"):
                continue
            else:
                variants.append(variant if inner else bare)
        strings: list[str] = []
        has_str = has_free = has_date = False
        scalars: list[Any] = []
        lists: list[Any] = []
        dicts: list[tuple[Any, Any]] = []
        classes: list[type] = []
        rest: list[Any] = []
        for variant in variants:
            bare = _unwrap(variant, module)[0]
            origin = typing.get_origin(bare)
            if origin is Literal:
                strings += [v for v in typing.get_args(bare) if isinstance(v, str)]
                scalars += [v for v in typing.get_args(bare) if not isinstance(v, str)]
            elif isinstance(bare, type) and issubclass(bare, enum.Enum):
                strings += [m.value for m in bare if isinstance(m.value, str)]
            elif bare is str:
                has_str = True
            elif bare in _DATES:
                has_date = True
            elif bare is Any or bare is builtins.object:
                has_free = True
            elif origin in _LISTS and not (origin is tuple and self._binary(bare, module)):
                args = typing.get_args(bare)
                lists.append(args[0] if args else Any)
            elif origin in _DICTS:
                args = typing.get_args(bare)
                dicts.append((args[0], args[1]) if len(args) == 2 else (str, Any))
            elif _is_object_type(bare):
                if bare not in classes:
                    classes.append(bare)
            elif bare is type(None) or bare in (bool, int, float):
                scalars.append({type(None): None, bool: False, int: 0, float: 0.0}[bare])
            else:
                rest.append(variant)
        nodes: list[_Node] = []
        if has_date and not has_str:
            ctx = _Context(ctx.owner, ctx.attribute, ctx.format or "datetime", ctx.discriminator)
        if has_str or has_date or strings or has_free:
            kind: Kind = "free" if has_free else "literal" if strings else "str"
            if has_str or has_date:
                kind = "str"
            nodes.append(self.leaf(path, wire, kind, ctx, dict.fromkeys(strings)))
        if lists:
            nodes.append(self.node(list[_union_of(lists)], path, wire, stack, ctx, module))  # type: ignore[misc]
        if dicts:
            merged = _union_of(v for _, v in dicts)
            nodes.append(self.node(dict[str, merged], path, wire, stack, ctx, module))  # type: ignore[valid-type]
        if len(classes) == 1:
            nodes.append(self.obj(classes[0], path, wire, stack, None))
        elif classes:
            discriminator = discriminator or self._guess_discriminator(classes)
            taken: set[str] = set()
            for cls in classes:
                label = cls.__name__
                for n in itertools.count(2):
                    if label not in taken:
                        break
                    label = f"{cls.__name__}#{n}"
                taken.add(label)
                nodes.append(self.obj(cls, f"{path}<{label}>", wire, stack, discriminator))
        nodes += [self.node(v, path, wire, stack, ctx, module) for v in rest]
        nodes += [_Scalar(path, wire, value=v) for v in dict.fromkeys(scalars)]
        if not nodes:
            return _Scalar(path, wire, value=None)
        if len(nodes) == 1:
            return nodes[0]
        return _Union(path, wire, variants=nodes)

    def _guess_discriminator(self, classes: list[type]) -> str | None:
        """The field that is a Literal in every variant (type, role, ...), if any."""
        literal_fields: list[set[str]] = []
        for cls in classes:
            names = set()
            for m in self.members(cls):
                bare = _unwrap(m.annotation, m.module)[0]
                if typing.get_origin(bare) is Literal:
                    names.add(m.attribute)
            literal_fields.append(names)
        common = set.intersection(*literal_fields)
        for name in _DISCRIMINATOR_NAMES:
            if name in common:
                return name
        return min(common) if common else None

    def obj(
        self, cls: type, path: str, wire: str, stack: tuple[type, ...], discriminator: str | None
    ) -> _Node:
        if stack.count(cls) >= self.max_repeat:
            return self.note(
                path, wire, "truncated", f"{_name(cls)} (max_repeat={self.max_repeat})"
            )
        root = not stack
        stack = (*stack, cls)
        members = []
        for m in self.members(cls):
            outside = root and self.body_keys is not None and m.wire not in self.body_keys
            if outside or (m.wire != m.attribute and _HEADER_ALIAS.fullmatch(m.wire)):
                why = "not in the SDK's request body" if outside else "a header alias"
                detail = f"{_name(m.owner)}.{m.attribute}: {why}"
                self.note(_join(path, m.wire), _join(wire, m.wire), "not_body", detail)
                continue
            is_discriminator = discriminator is not None and discriminator in (m.attribute, m.wire)
            ctx = _Context(_name(m.owner), m.attribute, None, is_discriminator)
            child = self.node(
                m.annotation, _join(path, m.wire), _join(wire, m.wire), stack, ctx, m.module
            )
            members.append(_Member(m.wire, m.required, is_discriminator, child))
        return _Obj(path, wire, cls=cls, members=members)


def _declarer(cls: type, name: str) -> type:
    """The class whose annotation of ``name`` ``cls`` has: the nearest class of a model's MRO
    that annotates it, or the TypedDict base that first declared it (a TypedDict's
    ``__annotations__`` holds its bases' keys too)."""
    if _is_model(cls):
        for candidate in cls.__mro__:
            if name in inspect.get_annotations(candidate):
                return candidate
        return cls
    for base in getattr(cls, "__orig_bases__", ()):  # TypedDict bases are not in the MRO
        if typing_extensions.is_typeddict(base) and name in base.__annotations__:
            return _declarer(base, name)
    return cls


_SURVEYS: dict[tuple[Any, int, frozenset[str] | None], Survey] = {}


def survey(tp: Any, *, max_repeat: int = 1, body_keys: Iterable[str] | None = None) -> Survey:
    """Walk ``tp``: every string position, the notes, and the tree. ``max_repeat``: how many
    times one class may be expanded along one path (recursive types). ``body_keys``: the
    top-level keys that go into the JSON body (others become ``not_body`` notes)."""
    keys = None if body_keys is None else frozenset(body_keys)
    key = (tp, max_repeat, keys)
    if key not in _SURVEYS:
        walker = _Walker(max_repeat, keys)
        root = walker.node(tp, "", "", (), _Context(), getattr(tp, "__module__", None))
        paths = [f.path for f in walker.fields]
        duplicates = (
            {p for p in paths if paths.count(p) > 1} if len(set(paths)) != len(paths) else set()
        )
        if duplicates:
            raise AssertionError(f"positions with the same path: {sorted(duplicates)[:5]}")
        _SURVEYS[key] = Survey(tp, walker.fields, walker.notes, root, max_repeat)
    return _SURVEYS[key]


def string_fields(
    tp: Any, *, max_repeat: int = 1, body_keys: Iterable[str] | None = None
) -> list[Field]:
    """Every position of ``tp`` where a JSON string can sit (see the module docstring)."""
    return list(survey(tp, max_repeat=max_repeat, body_keys=body_keys).fields)


# --- documents ----------------------------------------------------------------------------


class _Builder:
    def __init__(self, canaries: Mapping[str, str], fill_lists: bool) -> None:
        self.canaries = canaries
        self.fill_lists = fill_lists
        self._fillers: dict[int, Any] = {}

    def build(self, node: _Node, avail: set[str] | frozenset[str]) -> tuple[Any, dict[str, Field]]:
        if node.positions.isdisjoint(avail):
            return self.filler(node), {}
        if isinstance(node, _Leaf):
            return self.canaries[node.field.path], {node.field.path: node.field}
        if isinstance(node, _List):
            items: list[Any] = []
            planted: dict[str, Field] = {}
            left = set(node.positions & avail)
            while left and len(items) < _MAX_ITEMS:
                value, got = self.build(node.item, left)
                if not got:
                    break
                items.append(value)
                planted |= got
                left -= got.keys()
            return items, planted
        if isinstance(node, _Dict):
            return self._dict(node, avail)
        if isinstance(node, _Obj):
            out: dict[str, Any] = {}
            planted = {}
            for m in node.members:
                if m.node.positions.isdisjoint(avail):
                    if m.required or m.discriminator:
                        out[m.name] = self.filler(m.node)
                    continue
                value, got = self.build(m.node, avail)
                if got or m.required or m.discriminator:
                    out[m.name] = value
                planted |= got
            return out, planted
        if isinstance(node, _Union):
            best: tuple[Any, dict[str, Field]] | None = None
            for variant in node.variants:
                if variant.positions.isdisjoint(avail):
                    continue
                value, got = self.build(variant, avail)
                if best is None or len(got) > len(best[1]):
                    best = value, got
            assert best is not None
            return best
        return self.filler(node), {}

    def _dict(self, node: _Dict, avail: set[str] | frozenset[str]) -> tuple[Any, dict[str, Field]]:
        out: dict[str, Any] = {}
        planted: dict[str, Field] = {}
        left = set(node.positions & avail)
        for n in range(_MAX_ITEMS):
            use_key = node.key is not None and node.key.path in left
            if not use_key and node.value.positions.isdisjoint(left):
                break
            value, got = self.build(node.value, left)
            if not use_key and not got:
                break
            key = f"k{n}"
            if use_key and node.key is not None:
                key = self.canaries[node.key.path]
                planted[node.key.path] = node.key
                left.discard(node.key.path)
            out[key] = value
            planted |= got
            left -= got.keys()
        return out, planted

    def filler(self, node: _Node) -> Any:
        cached = self._fillers.get(id(node), self)
        if cached is not self:
            return cached
        value: Any
        if isinstance(node, _Leaf):
            f = node.field
            if f.values:
                value = f.values[0]
            elif f.kind == "free":
                value = {}
            else:
                value = _DATETIME if f.format == "datetime" else FILLER
        elif isinstance(node, _Scalar):
            value = node.value
        elif isinstance(node, _List):
            value = [self.filler(node.item)] if self.fill_lists else []
        elif isinstance(node, _Dict):
            value = {}
        elif isinstance(node, _Obj):
            value = {
                m.name: self.filler(m.node) for m in node.members if m.required or m.discriminator
            }
        elif isinstance(node, _Union):
            value = self.filler(min(node.variants, key=_filler_rank))
        else:  # _Opaque
            value = {} if isinstance(node, _Opaque) and node.note.kind == "truncated" else None
        self._fillers[id(node)] = value
        return value


def _filler_rank(node: _Node) -> int:
    if isinstance(node, _Leaf):
        return {"literal": 0, "str": 1, "key": 1, "free": 6}[node.field.kind]
    if isinstance(node, _Scalar):
        return 2 if node.value is not None else 7
    if isinstance(node, _List):
        return 3
    if isinstance(node, _Dict):
        return 4
    if isinstance(node, _Obj):
        return 5
    return 8


def email_canaries(prefix: str = "c") -> Callable[[str], str]:
    """A canary function: ``c0001.leak@example.com``, ``c0002.leak@example.com``, ..."""
    counter = itertools.count(1)
    return lambda _path: f"{prefix}{next(counter):04d}.leak@example.com"


def documents(
    tp: Any,
    canary: Callable[[str], str] | None = None,
    *,
    phases: Iterable[Phase] = PHASES,
    kinds: Iterable[Kind] = ("str", "literal", "free", "key"),
    max_repeat: int = 1,
    fill_lists: bool = False,
) -> list[Document]:
    """JSON documents that together plant ``canary(path)`` once at every string position of
    ``tp`` (a type, an ``Entry`` or a ``survey``) of the given kinds, greedily merged: list items carry
    one union variant each, independent fields are planted side by side. Required fields
    that are not planted get ``FILLER``, a literal's first value, 0, false, [] or {}
    (``fill_lists``: a list of one such item instead of [], e.g. for non-empty messages)."""
    if isinstance(tp, Entry):
        sv = tp.survey(max_repeat=max_repeat)
    elif isinstance(tp, Survey):
        sv = tp
    else:
        sv = survey(tp, max_repeat=max_repeat)
    canary = canary or email_canaries()
    wanted_kinds = set(kinds)
    wanted = [f for f in sv.fields if f.kind in wanted_kinds]
    canaries = {f.path: canary(f.path) for f in wanted}
    seen: dict[str, str] = {}
    for path, value in canaries.items():
        if value in seen or value == FILLER:
            raise ValueError(f"canary {value!r} is not unique ({seen.get(value)}, {path})")
        seen[value] = path
    builder = _Builder(canaries, fill_lists)
    out: list[Document] = []
    for phase in phases:
        left = {f.path for f in wanted if f.phase == phase}
        while left:
            body, planted = builder.build(sv.root, frozenset(left))
            if not planted or not isinstance(body, dict):
                raise AssertionError(f"cannot plant {sorted(left)[:5]} in {sv.tp!r}")
            out.append(Document(body, {canaries[p]: f for p, f in planted.items()}, phase))
            left -= planted.keys()
    return out


# --- checking documents against the SDK ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Roundtrip:
    """How a document fared through the SDK's own parsing."""

    method: Literal["validate", "construct", "failed"]
    lost: tuple[str, ...]
    """Canaries missing from the parsed object's dump."""
    exact: bool = False
    """The dump (by alias, set fields only) is the document itself."""
    error: str | None = None


_ADAPTERS: dict[Any, pydantic.TypeAdapter[Any]] = {}


def roundtrip(tp: Any, document: Document, *, validate: bool | None = None) -> Roundtrip:
    """Parse ``document`` as ``tp`` (``model_validate``, else the SDK's lenient
    ``construct_type``) and dump it back by alias: which canaries did not survive. Only for
    response types (pydantic models or unions of them). ``validate`` defaults to phase 1
    only: the other phases plant literals, invalid by design, and go to construct directly."""
    adapter = _ADAPTERS.get(tp)
    if adapter is None:
        adapter = _ADAPTERS[tp] = pydantic.TypeAdapter(tp)
    error = None
    method: Literal["validate", "construct", "failed"] = "validate"
    parsed: Any = None
    if validate is None:
        validate = document.phase == 1
    if validate:
        try:
            parsed = adapter.validate_python(document.body)
        except pydantic.ValidationError as exc:
            error = f"{exc.error_count()} validation errors, first: {exc.errors()[0]['loc']}"
            validate = False
    if not validate:
        method = "construct"
        try:
            construct = sys.modules[f"{_vendor(tp)}._models"].construct_type
            parsed = construct(value=document.body, type_=tp)
        except Exception as exc:  # reported, not raised
            detail = f"{error}; construct: {exc!r}" if error else f"construct: {exc!r}"
            return Roundtrip("failed", tuple(document.canaries), error=detail)
    options: dict[str, Any] = {"mode": "json", "by_alias": True, "warnings": False}
    if isinstance(parsed, pydantic.BaseModel):
        dumped = parsed.model_dump(**options)
        exact = parsed.model_dump(exclude_unset=True, **options) == document.body
    else:
        dumped = adapter.dump_python(parsed, **options)
        exact = adapter.dump_python(parsed, exclude_unset=True, **options) == document.body
    text = orjson.dumps(dumped).decode()
    lost = tuple(c for c in document.canaries if c not in text)
    return Roundtrip(method, lost, exact, error)


def sse(entry: Entry, body: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying ``body`` as ``entry``'s stream would: ``data:`` only
    for OpenAI's chat and completions, ``event: <type>`` first for Responses and Anthropic."""
    data = b"data: " + orjson.dumps(body) + b"\n\n"
    kind = body.get("type")
    if entry.name.startswith(("openai.chat.", "openai.completions.")) or not isinstance(kind, str):
        return data
    return b"event: " + kind.encode() + b"\n" + data


def _vendor(tp: Any) -> str:
    for candidate in (tp, *typing.get_args(_unwrap(tp)[0])):
        module = getattr(candidate, "__module__", "") or ""
        if module.startswith(("openai", "anthropic")):
            return module.split(".")[0]
    return "openai"


# --- the entry points ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    vendor: Literal["openai", "anthropic"]
    side: Literal["request", "response", "stream", "error"]
    """``stream``: one SSE event's data; ``error``: an error body (also a stream's error)."""
    endpoint: str | None
    tp: Any
    source: str
    """Where the type is defined."""
    method: str | None = None
    """The SDK's resource method that sends this request type."""
    body_keys: frozenset[str] | None = None
    """The top-level keys ``method`` puts in the JSON body (read from its source)."""

    def survey(self, *, max_repeat: int = 1) -> Survey:
        return survey(self.tp, max_repeat=max_repeat, body_keys=self.body_keys)

    def documents(
        self, canary: Callable[[str], str] | None = None, **options: Any
    ) -> list[Document]:
        return documents(self.survey(max_repeat=options.pop("max_repeat", 1)), canary, **options)


def sdk_body_keys(method: Callable[..., Any]) -> frozenset[str] | None:
    """The keys of the JSON body an SDK resource method posts: the dict literal given as
    ``body=`` to ``self._post`` (directly or through ``maybe_transform``), else the first dict
    literal with a ``model`` key. None when the source says nothing clear."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    literals: list[ast.Dict] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            literals.append(node)
        if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "_post"):
            continue
        for keyword in node.keywords:
            body = keyword.value
            if isinstance(body, ast.Call) and body.args:
                body = body.args[0]
            if keyword.arg == "body" and isinstance(body, ast.Dict):
                return _dict_keys(body)
    for literal in literals:
        keys = _dict_keys(literal)
        if keys and "model" in keys:
            return keys
    return None


def _dict_keys(node: ast.Dict) -> frozenset[str] | None:
    keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
    if len(keys) != len(node.keys) or not all(isinstance(k, str) for k in keys):
        return None
    return frozenset(typing.cast("list[str]", keys))


def _openai_error_body() -> Any:
    import openai
    from openai.types.shared import ErrorObject

    class OpenAIErrorBody(openai.BaseModel):
        """``{"error": {...}}``: the SDK types the object, not its envelope."""

        error: ErrorObject

    return OpenAIErrorBody


def _entries(beta: bool) -> dict[str, Entry]:
    # Imported here so that a test importing this module for its helpers pays nothing.
    import anthropic.resources.beta.messages.batches as beta_batches
    import anthropic.resources.beta.messages.messages as beta_messages
    import anthropic.types as a
    import anthropic.types.beta as ab
    import openai.resources.chat.completions.completions as chat
    import openai.types as o
    import openai.types.chat as oc
    import openai.types.responses as orr
    from anthropic.resources.messages import batches, messages
    from anthropic.types import message_count_tokens_params as count_params
    from anthropic.types import message_create_params
    from anthropic.types.beta import message_count_tokens_params as beta_count_params
    from anthropic.types.beta import message_create_params as beta_create_params
    from anthropic.types.beta.messages import batch_create_params as beta_batch_params
    from anthropic.types.messages import MessageBatch, batch_create_params
    from openai.resources import completions, embeddings
    from openai.resources.responses import responses
    from openai.types import completion_create_params, embedding_create_params
    from openai.types.chat import completion_create_params as chat_params
    from openai.types.responses import response_create_params

    # (name, endpoint, resource method, {side: type})
    spec: list[tuple[str, str | None, Callable[..., Any] | None, dict[str, Any]]]
    if beta:
        spec = [
            (
                "anthropic.beta.messages",
                "/v1/messages?beta=true",
                beta_messages.Messages.create,
                {
                    "request": beta_create_params.MessageCreateParamsBase,
                    "response": ab.BetaMessage,
                    "stream": ab.BetaRawMessageStreamEvent,
                },
            ),
            (
                "anthropic.beta.count_tokens",
                "/v1/messages/count_tokens?beta=true",
                beta_messages.Messages.count_tokens,
                {
                    "request": beta_count_params.MessageCountTokensParams,
                    "response": ab.BetaMessageTokensCount,
                },
            ),
            (
                "anthropic.beta.batches",
                "/v1/messages/batches?beta=true",
                beta_batches.Batches.create,
                {"request": beta_batch_params.BatchCreateParams},
            ),
        ]
    else:
        spec = [
            (
                "openai.chat",
                "/v1/chat/completions",
                chat.Completions.create,
                {
                    "request": chat_params.CompletionCreateParamsBase,
                    "response": oc.ChatCompletion,
                    "stream": oc.ChatCompletionChunk,
                },
            ),
            (
                "openai.completions",
                "/v1/completions",
                completions.Completions.create,
                {
                    "request": completion_create_params.CompletionCreateParamsBase,
                    "response": o.Completion,
                    "stream": o.Completion,
                },
            ),
            (
                "openai.embeddings",
                "/v1/embeddings",
                embeddings.Embeddings.create,
                {
                    "request": embedding_create_params.EmbeddingCreateParams,
                    "response": o.CreateEmbeddingResponse,
                },
            ),
            (
                "openai.responses",
                "/v1/responses",
                responses.Responses.create,
                {
                    "request": response_create_params.ResponseCreateParamsBase,
                    "response": orr.Response,
                    "stream": orr.ResponseStreamEvent,
                },
            ),
            ("openai", None, None, {"error": _openai_error_body()}),
            (
                "anthropic.messages",
                "/v1/messages",
                messages.Messages.create,
                {
                    "request": message_create_params.MessageCreateParamsBase,
                    "response": a.Message,
                    "stream": a.RawMessageStreamEvent,
                },
            ),
            (
                "anthropic.count_tokens",
                "/v1/messages/count_tokens",
                messages.Messages.count_tokens,
                {
                    "request": count_params.MessageCountTokensParams,
                    "response": a.MessageTokensCount,
                },
            ),
            (
                "anthropic.batches",
                "/v1/messages/batches",
                batches.Batches.create,
                {"request": batch_create_params.BatchCreateParams, "response": MessageBatch},
            ),
            ("anthropic", None, None, {"error": a.ErrorResponse}),
        ]
    out = {}
    for name, endpoint, method, sides in spec:
        vendor = typing.cast("Literal['openai', 'anthropic']", name.split(".")[0])
        for side, tp in sides.items():
            key = f"{name}.{side}"
            sender = method if side == "request" else None
            out[key] = Entry(
                name=key,
                vendor=vendor,
                side=typing.cast("Literal['request', 'response', 'stream', 'error']", side),
                endpoint=endpoint,
                tp=tp,
                source=_source(tp),
                method=f"{sender.__module__}.{sender.__qualname__}" if sender else None,
                body_keys=sdk_body_keys(sender) if sender else None,
            )
    return out


def _source(tp: Any) -> str:
    if isinstance(tp, type):
        return _name(tp)
    bare = _unwrap(tp)[0]
    args = typing.get_args(bare)
    return f"Union of {len(args)} ({args[0].__module__.rsplit('.', 1)[0]})" if args else repr(tp)


class _Lazy(Mapping[str, Entry]):
    """Entry points, built on first use."""

    _cache: ClassVar[dict[bool, dict[str, Entry]]] = {}

    def __init__(self, beta: bool) -> None:
        self.beta = beta

    def _get(self) -> dict[str, Entry]:
        if self.beta not in self._cache:
            self._cache[self.beta] = _entries(self.beta)
        return self._cache[self.beta]

    def __getitem__(self, key: str) -> Entry:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


ENTRY_POINTS: Mapping[str, Entry] = _Lazy(beta=False)
"""``openai.chat.request``, ``openai.chat.response``, ``openai.chat.stream``, ...,
``openai.error``, ``anthropic.messages.request``, ..., ``anthropic.error``."""
BETA_ENTRY_POINTS: Mapping[str, Entry] = _Lazy(beta=True)
"""Anthropic's beta messages, counting and batches (``?beta=true``)."""


def report(entries: Mapping[str, Entry] = ENTRY_POINTS, *, max_repeat: int = 1) -> list[str]:
    """One line per entry point: positions by kind, notes by kind, documents by phase."""
    lines = []
    for name, entry in entries.items():
        sv = entry.survey(max_repeat=max_repeat)
        docs = documents(sv)
        per_phase = {p: sum(d.phase == p for d in docs) for p in PHASES}
        notes: dict[str, int] = {}
        for n in sv.notes:
            notes[n.kind] = notes.get(n.kind, 0) + 1
        lines.append(
            f"{name:34} {len(sv.fields):6} positions {sv.by_kind()}  notes {notes}  "
            f"documents {len(docs)} {per_phase}  [{entry.source}]"
        )
    return lines


if __name__ == "__main__":
    for line in report(ENTRY_POINTS):
        print(line)
    print("beta:")
    for line in report(BETA_ENTRY_POINTS):
        print(line)
