"""Values hidden by encodings are still found: the Scanner's detectors read the
normalised view, and the findings map back to the original text, so redacting them
leaves nothing a reader (or the client's JSON parser) could turn back into the value.

Property: random PII values, obfuscated character by character (JSON escapes, once or
twice, HTML references, percent-encoding, full-width forms, invisible characters,
other spaces, dashes and dots between groups), in random English or Japanese text (the
value glued to the Japanese, no spaces) are found whole by ``Scanner.scan`` with the
default detectors, and the redacted text gives none of them back after JSON-unescaping,
HTML-unescaping, percent-decoding, NFKC and removing default-ignorable characters.
Scanning it window by window at its sentence boundaries finds the same as scanning it
whole (the stream guard relies on that).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardline.detectors.base import Finding
from guardline.detectors.engine import Scanner
from guardline.detectors.redaction import Redactor
from guardline.detectors.sentences import boundaries
from guardline.simulator.text import WORDS
from tests.proxy.test_guard import planted
from tests.servers import default_detectors


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(default_detectors())


def scan(scanner: Scanner, text: str, start: int = 0, end: int | None = None) -> list[Finding]:
    names = list(scanner.detectors)
    return asyncio.run(scanner.scan(text, names, "response", start, end)).findings


# What a reader undoes, written here independently of guardline's view.

_JSON_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[\"\\/bfnrt]"
)
_DEFAULT_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def recover(text: str) -> str:
    for _ in range(4):
        text = _JSON_ESCAPE.sub(lambda m: json.loads(f'"{m.group()}"'), text)
        text = urllib.parse.unquote(html.unescape(text))
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        c for c in text if unicodedata.category(c) != "Cf" and not _DEFAULT_IGNORABLE.match(c)
    )


def alnum(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


# Obfuscations, one character at a time.


def _json(c: str) -> str:
    return f"\\u{ord(c):04x}"


def _json_upper(c: str) -> str:
    return f"\\u{ord(c):04X}"


def _json_twice(c: str) -> str:
    return f"\\\\u{ord(c):04x}"


def _html_decimal(c: str) -> str:
    return f"&#{ord(c)};"


def _html_hex(c: str) -> str:
    return f"&#x{ord(c):x};"


def _percent(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode())


def _full_width(c: str) -> str:
    return chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c


def _full_width_escaped(c: str) -> str:
    return _json(_full_width(c))


NAMED = {"@": "&commat;", ".": "&period;", "-": "&hyphen;", "+": "&plus;", "(": "&lpar;"}


def _html_named(c: str) -> str:
    return NAMED.get(c, c)


ENCODINGS = [
    _json,
    _json_upper,
    _json_twice,
    _html_decimal,
    _html_hex,
    _html_named,
    _percent,
    _full_width,
    _full_width_escaped,
]
INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200c",
    "\u200d",
    "\u2060",  # word joiner
    "\ufeff",
    "\u00ad",  # soft hyphen
    "\u200e",  # bidi marks and controls
    "\u202a",
    "\ufe0f",  # variation selector
    "\U000e0020",  # tag space
    "\u034f",  # combining grapheme joiner
    "\\u200b",  # an escaped zero-width space
]
SPACES = [" ", "\u00a0", "\u202f", "\u2009", "\u2007", "\u3000", "&nbsp;", "\\u00a0", "%20"]
DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2212", "\uff0d", "\\u2013"]
DOTS = [".", "\uff0e", "\u3002", "\uff61", "&#46;", "%2E", "\\u002e"]
CARD_SEPARATORS = [*SPACES, ".", "/", "\uff0e", "\u3002", "-", "\u2013", "\u2212", ""]


@st.composite
def obfuscated(draw: Any, kind: str, value: str) -> str:
    """``value`` written so a pattern on the raw text would miss it."""
    separator = draw(st.sampled_from(CARD_SEPARATORS)) if kind == "card" else None
    space = draw(st.sampled_from(SPACES))
    dash = draw(st.sampled_from(DASHES))
    dot = draw(st.sampled_from(DOTS))
    rate = draw(st.sampled_from([0.0, 0.2, 0.5, 1.0]))
    out = []
    for i, c in enumerate(value):
        if c == " ":
            out.append(separator if separator is not None else space)
        elif c == "-":
            out.append(dash)
        elif c == "." and kind in ("email", "ip"):
            out.append(dot)
        elif draw(st.floats(0, 1)) < rate:
            out.append(draw(st.sampled_from(ENCODINGS))(c))
        else:
            out.append(c)
        if i < len(value) - 1 and draw(st.floats(0, 1)) < rate / 2:
            out.append(draw(st.sampled_from(INVISIBLE)))
    return "".join(out)


JAPANESE = [
    "今日はいい天気ですね。",
    "ご連絡ありがとうございます。",
    "詳細は以下の通りです。",
    "確認をお願いします！",
    "よろしいですか？",
    "明日の会議は十時からです。",
]
JAPANESE_LEAD = {
    "email": "メールは",
    "card": "カード番号は",
    "iban": "口座は",
    "ip": "サーバーは",
    "phone": "電話",
}


@dataclass
class Planted:
    kind: str
    value: str
    start: int
    end: int


@st.composite
def documents(draw: Any) -> tuple[str, list[Planted]]:
    japanese = draw(st.booleans())
    text = ""
    values = []
    for _ in range(draw(st.integers(1, 4))):
        if japanese:
            text += draw(st.sampled_from(JAPANESE))
        else:
            words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
            text += " ".join(words).capitalize() + draw(st.sampled_from([". ", "! ", "\n"]))
        if draw(st.booleans()):
            kind = draw(st.sampled_from(["email", "card", "iban", "ip", "phone"]))
            value = planted(kind, draw(st.integers(0, 10_000)))
            encoded = draw(obfuscated(kind, value))
            if japanese:
                text += JAPANESE_LEAD[kind]
            else:
                text += "Please call " if kind == "phone" else "It is "
            values.append(Planted(kind, value, len(text), len(text) + len(encoded)))
            text += encoded + ("です。" if japanese else ". ")
    return text, values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_obfuscated_values_are_found_and_redacted_whole(
    scanner: Scanner, case: tuple[str, list[Planted]]
) -> None:
    text, values = case
    found = [f for f in scan(scanner, text) if f.detector == "pii"]
    for value in values:
        assert any(f.start <= value.start and value.end <= f.end for f in found), (
            value,
            text[value.start : value.end],
            [(f.category, text[f.start : f.end]) for f in found],
        )
    redacted = recover(Redactor({}).apply(text, found))
    for value in values:
        assert alnum(value.value) not in alnum(redacted), (value, redacted)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_window_by_window_at_sentence_boundaries_equals_the_whole_text(
    scanner: Scanner, case: tuple[str, list[Planted]]
) -> None:
    text, _ = case
    cuts = [0, *boundaries(text), len(text)]
    windows = []
    for a, b in itertools.pairwise(cuts):
        if b > a:
            windows += scan(scanner, text, a, b)
    key = lambda f: (f.detector, f.category, f.start, f.end, round(f.score, 6))  # noqa: E731
    assert sorted(map(key, windows)) == sorted(map(key, scan(scanner, text)))


# Plain unit cases of the same, each encoding on its own.

CASES = [
    ('{"to": "taro\\u0040example.com"}', "taro\\u0040example.com"),
    ('{"to": "taro\\\\u0040example.com"}', "taro\\\\u0040example.com"),
    ("mail ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ now", "ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
    ("mail taro&#64;example.com now", "taro&#64;example.com"),
    ("mail taro&#x40;example.com now", "taro&#x40;example.com"),
    ("mail taro%40example.com now", "taro%40example.com"),
    ("mail ta\u200bro@exa\u00admple.com now", "ta\u200bro@exa\u00admple.com"),
    ("メールはtaro@example.jpまで。", "taro@example.jp"),
    ("card 4111.1111.1111.1111 ok", "4111.1111.1111.1111"),
    ("card 4111\u00a01111\u00a01111\u00a01111 ok", "4111\u00a01111\u00a01111\u00a01111"),
    ("card ４１１１ １１１１ １１１１ １１１１ ok", "４１１１ １１１１ １１１１ １１１１"),
    ("card 4111\u200b1111\u200b1111\u200b1111 ok", "4111\u200b1111\u200b1111\u200b1111"),
    ("pay?card=4111%201111%201111%201111&x=1", "4111%201111%201111%201111"),
    ("カード番号は4111111111111111です。", "4111111111111111"),
    ("call +1 (415) 555\u20130137 now", "+1 (415) 555\u20130137"),
    ("電話090-1234-5678", "090-1234-5678"),
    ("server ２０３．０．１１３．４２ down", "２０３．０．１１３．４２"),
]


@pytest.mark.parametrize(("text", "value"), CASES)
def test_each_encoding(scanner: Scanner, text: str, value: str) -> None:
    spans = [text[f.start : f.end] for f in scan(scanner, text) if f.detector == "pii"]
    assert value in spans


def test_without_the_view_the_values_were_missed() -> None:
    """The detector alone, on the raw text, misses most of them: the view is what finds
    them."""
    pii = default_detectors()["pii"]
    missed = [
        text
        for text, value in CASES
        if value not in [text[f.start : f.end] for f in pii.detect(text)]
    ]
    assert len(missed) >= 10
