"""Sentence boundaries in every script: where they fall, that they never move as text
arrives, and that a boundary of a text is a boundary of its normalised view."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardline.detectors import sentences
from guardline.detectors.normalization import View, fold
from guardline.detectors.sentences import boundaries, last_boundary, split

_LOOKBACK = 8  # guardline/proxy/guard.py's


def parts(text: str) -> list[str]:
    return [text[a:b] for a, b in split(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One. ", "Two! ", "Three? ", "Four"]),
        ('He said "stop." Then left.', ['He said "stop." ', "Then left."]),
        ("Line one\nLine two", ["Line one\n", "Line two"]),
        (
            "Dr. Smith met J. Doe, e.g. at 5 p.m. today. Ok",
            ["Dr. Smith met J. Doe, e.g. at 5 p.m. today. ", "Ok"],
        ),
        ("Pi is 3.14 and example.com works.", ["Pi is 3.14 and example.com works."]),
        ("Wait... what?! Yes", ["Wait... ", "what?! ", "Yes"]),
        ("Wait\u2026 what", ["Wait\u2026 ", "what"]),
        # Japanese and Chinese: no whitespace after the terminator
        (
            "今日は晴れです。明日は雨でしょう！本当？はい。",
            ["今日は晴れです。", "明日は雨でしょう！", "本当？", "はい。"],
        ),
        ("彼は「行きます。」と言った。次", ["彼は「行きます。」", "と言った。", "次"]),
        ("括弧（注意。）の後。次", ["括弧（注意。）", "の後。", "次"]),
        ("你好。我很好！谢谢？好", ["你好。", "我很好！", "谢谢？", "好"]),
        ("半角｡次", ["半角｡", "次"]),
        ("全角．次", ["全角．", "次"]),
        ("です。2つ目", ["です。", "2つ目"]),
        ("Pythonです。Rubyも", ["Pythonです。", "Rubyも"]),
        ("Hello.世界", ["Hello.", "世界"]),
        ("終わり。 Next", ["終わり。 ", "Next"]),
        ("Korean. 한국어입니다. 네", ["Korean. ", "한국어입니다. ", "네"]),
        # numbers, addresses and values stay whole
        ("値は１．５倍です。", ["値は１．５倍です。"]),
        ("taro@example。com と", ["taro@example。com と"]),
        ("IP 203。0。113。42 です", ["IP 203。0。113。42 です"]),
        ("Python。Ruby", ["Python。Ruby"]),
        # other scripts
        ("यह एक वाक्य है। यह दूसरा है॥अगला", ["यह एक वाक्य है। ", "यह दूसरा है॥", "अगला"]),
        ("هل أنت بخير؟نعم", ["هل أنت بخير؟", "نعم"]),
        ("یہ جملہ ہے۔دوسرا", ["یہ جملہ ہے۔", "دوسرا"]),
        ("Բարեւ։Ինչպես", ["Բարեւ։", "Ինչպես"]),
        ("ሰላም።እንዴት", ["ሰላም።", "እንዴት"]),
        ("ជំរាបសួរ។បាទ", ["ជំរាបសួរ។", "បាទ"]),
        # invisible characters are read as nothing
        ("end.\u200b Next", ["end.\u200b ", "Next"]),
        ("終わり。\u200b」次", ["終わり。\u200b」", "次"]),
        ("Dr\u200b. Smith", ["Dr\u200b. Smith"]),
    ],
)
def test_split(text: str, expected: list[str]) -> None:
    assert parts(text) == expected


def test_a_japanese_answer_is_released_sentence_by_sentence() -> None:
    """The stream guard finds each boundary as soon as the next character arrives (it used
    to hold a Japanese answer until the 1,024-character limit)."""
    answer = "東京は日本の首都です。人口は約1400万人です。多くの観光客が訪れます。"
    text = ""
    searched = 0
    released = []
    for char in answer:
        text += char
        found = last_boundary(text, max(0, searched - _LOOKBACK))
        searched = len(text)
        if found is not None and (not released or found > released[-1]):
            released.append(found)
    assert [answer[a:b] for a, b in zip([0, *released], released, strict=False)] == [
        "東京は日本の首都です。",
        "人口は約1400万人です。",
    ]
    assert released == [11, 24]


def test_a_cjk_boundary_waits_for_the_next_character() -> None:
    assert list(boundaries("です。")) == []
    assert list(boundaries("です。」")) == []
    assert list(boundaries("です。」次")) == [4]
    assert list(boundaries("です。次", 0, 3)) == []  # the next character is past ``end``
    assert list(boundaries("です。次", 0, 4)) == [3]


def test_what_never_confirms_a_boundary() -> None:
    # a combining mark, an escape, invisible characters: no boundary before them
    assert list(boundaries("です。\u3099x")) == []
    assert list(boundaries("です。\\u300d次")) == []
    assert list(boundaries("です。&#12301;次")) == []
    assert list(boundaries("です。\u200b")) == []


# Random texts from the characters that matter to boundaries and to the view.
ALPHABET = st.sampled_from(
    [
        *"ab Z9.!?\n\"')」』）】。．！？｡、日本語かなカナ한국",
        *["Dr", "e.g", "J", "...", "%40", "&#46;", "\\u3002", "\\u0020", "\\n", "\\"],
        *["\u200b", "\u00a0", "\u3000", "\u2026", "\u0301", "\uff9e", "\u2028", "\u00b4"],
        *["।", "؟", "１", "Ｄｒ", "ｶ", "‼", "﹒", "︒"],
    ]
)
TEXTS = st.lists(ALPHABET, max_size=50).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXTS, st.data())
def test_boundaries_never_move_as_text_arrives(text: str, data: st.DataObject) -> None:
    whole = list(boundaries(text))
    cut = data.draw(st.integers(0, len(text)))
    prefix = list(boundaries(text[:cut]))
    assert set(prefix) <= set(whole)  # a boundary once seen stays
    assert [b for b in whole if b < cut] == [b for b in prefix if b < cut]
    assert list(boundaries(text, 0, cut)) == prefix  # ``end`` reads as the end of the text


@settings(max_examples=400, deadline=None)
@given(TEXTS, st.lists(st.integers(1, 9), max_size=30))
def test_the_stream_guard_search_with_its_lookback_finds_only_true_boundaries(
    text: str, sizes: list[int]
) -> None:
    """guard.py's ``boundary_after``: search from a few characters before the text not
    searched before. What it finds is always a boundary of the whole text."""
    whole = set(boundaries(text))
    pos = searched = cleared = 0
    for size in [*sizes, len(text)]:
        pos = min(len(text), pos + size)
        found = last_boundary(text[:pos], max(cleared, searched - _LOOKBACK))
        searched = pos
        if found is not None and found > cleared:
            assert found in whole
            cleared = found


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_a_boundary_of_a_text_is_a_boundary_of_its_view(text: str) -> None:
    """So a window cut at one is a window of the view, and the detectors' sentences in
    it are the sentences of the whole text's view."""
    view = View.of(text)
    in_view = {0, len(view.text), *boundaries(view.text)}
    for b in boundaries(text):
        assert view.index(b) in in_view, (b, view.text)


def _chars(body: str) -> set[str]:
    """The characters of a regex class body."""
    pattern = re.compile(f"[{body}]")
    return {chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and pattern.match(chr(c))}


def test_punctuation_classes_are_closed_under_the_view() -> None:
    periods = _chars(sentences.PERIODS)
    terminators = _chars(sentences.TERMINATORS)
    closers = _chars(sentences.CLOSERS)
    cjk = _chars(sentences.CJK)
    for c in periods:
        assert fold(c), hex(ord(c))
        assert set(fold(c)) <= set(".!?"), hex(ord(c))
    for c in terminators:
        assert fold(c) == c, hex(ord(c))
    for c in closers:
        assert len(fold(c)) == 1, hex(ord(c))
        assert fold(c) in closers, hex(ord(c))
    for c in cjk:  # what the boundary rule reads as CJK is CJK in the view
        assert fold(c)[:1] in cjk, hex(ord(c))
        assert fold(c)[-1:] in cjk, hex(ord(c))
    for code in range(0x110000):
        c = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        view = fold(c)
        if view and set(view) <= set(".!?"):
            assert c in periods, f"U+{code:04X} reads as {view!r}"
        if c.isspace():
            assert view.isspace(), f"U+{code:04X}"


ASCII = st.lists(
    st.sampled_from(
        [
            "a",
            "b",
            " ",
            "Z",
            "9",
            ".",
            "!",
            "?",
            "\n",
            '"',
            "'",
            ")",
            "]",
            "}",
            "\t",
            "\r",
            "Dr",
            "e.g",
            "J",
            "etc",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=2000, deadline=None)
@given(text=ASCII, data=st.data())
def test_the_ascii_fast_path_finds_the_same_boundaries(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    fast = list(sentences._ascii_boundaries(text, start, len(text)))
    assert fast == list(sentences._boundaries(text, start, len(text)))
