"""The normalised view detectors scan, and its map back to the original text."""

from __future__ import annotations

import asyncio
import itertools
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardline.detectors import normalization
from guardline.detectors.base import FakeDetector, Finding
from guardline.detectors.engine import Scanner
from guardline.detectors.normalization import View, fold, is_plain, joins


def pairs(view: View) -> list[tuple[int, int]]:
    return list(zip(view.starts, view.ends, strict=True))


def origins(text: str, view: View) -> list[str]:
    """What each character of the view came from."""
    return [text[s:e] for s, e in pairs(view)]


# Each case: the text, its view, and what each character of the view came from.
CASES = [
    ("taro\\u0040example.jp", "taro@example.jp", None),
    ("a\\u00e9b", "aéb", ["a", "\\u00e9", "b"]),
    ("x\\ud83d\\ude00y", "x😀y", ["x", "\\ud83d\\ude00", "y"]),
    ("\\ud800z", "\ufffdz", ["\\ud800", "z"]),  # a lone surrogate is no character
    ('q\\"r\\\\s\\/t', 'q"r\\s/t', ["q", '\\"', "r", "\\\\", "s", "\\/", "t"]),
    ("1\\n2\\t3\\r4\\b5\\f6", "1\n2\t3\r4\b5\f6", None),
    ("a\\\\u0040b", "a@b", ["a", "\\\\u0040", "b"]),  # escaped twice: decoded twice
    ("a\\\\\\\\u0040b", "a@b", ["a", "\\\\\\\\u0040", "b"]),  # three times over
    ("a" + "\\" * 8 + "u0040b", "a@b", None),  # four times over: the last round
    ("a" + "\\" * 16 + "u0040b", "a" + "\\" + "u0040b", None),  # five: one escape left
    ("abc\\u00", "abc\\u00", None),  # a partial escape at the end stays as it is
    ("abc\\u00zz", "abc\\u00zz", None),
    ("x&#64;y&#x40;z&commat;w", "x@y@z@w", ["x", "&#64;", "y", "&#x40;", "z", "&commat;", "w"]),
    ("AT&T and R&D &nosuch;", "AT&T and R&D &nosuch;", None),
    ("a%40b%2Ec", "a@b.c", ["a", "%40", "b", "%2E", "c"]),
    ("%E2%82%AC5", "€5", ["%E2%82%AC", "5"]),
    ("50% off, 100%", "50% off, 100%", None),
    ("%FF%41", "%FFA", ["%", "F", "F", "%41"]),  # an invalid byte stays encoded
    ("a%20b%0Ac%00d", "a b\nc%00d", ["a", "%20", "b", "%0A", "c", "%", "0", "0", "d"]),
    ("%2540", "@", ["%2540"]),  # percent-encoded twice
    ("&#92;u0040", "@", ["&#92;u0040"]),  # an HTML reference making a JSON escape
    ("４１１１", "4111", ["４", "１", "１", "１"]),
    ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "taro@example.jp", None),
    ("ﬁle ①", "file 1", ["ﬁ", "ﬁ", "l", "e", " ", "①"]),
    ("4\u200b1\u200c1\u200d1\u2060", "4111", ["4", "1", "1", "1"]),  # ignorables removed
    ("so\u00adft \ufeffbom \u202eltr\u202c", "soft bom ltr", None),
    ("e\u0301", "é", ["e\u0301"]),  # a base and its combining mark: one cluster
    ("e\u200b\u0301", "é", ["e\u200b\u0301"]),  # what an ignorable separated combines
    ("ｶﾞｷﾞ", "ガギ", ["ｶﾞ", "ｷﾞ"]),  # half-width voiced sound marks
    ("\u1100\u1161", "가", ["\u1100\u1161"]),  # conjoining jamo compose
    ("a\u00a0b\u202fc\u2009d\u3000e", "a b c d e", None),
    ("a\u2028b\u2029c", "a\nb\nc", None),
    ("0\u20101\u20112\u20133\u20144\u22125\uff0d6", "0-1-2-3-4-5-6", None),
    ("終わり。次", "終わり.次", None),
    ("メールはtaro@example.jp", "メールは taro@example.jp", None),
    ("電話090-1234", "電話 090-1234", None),
    ("090です", "090 です", None),
    ("カードは４１１１です", "カードは 4111 です", None),
    ("한국어abc", "한국어 abc", None),
    ("อีเมลtaro", "อีเมล taro", None),
    ("㏠", "1 日", ["㏠", "㏠", "㏠"]),  # a virtual space inside one character's expansion
    ("plain ascii text.", "plain ascii text.", None),
]


@pytest.mark.parametrize(("text", "expected", "made_of"), CASES)
def test_view_and_where_each_character_came_from(
    text: str, expected: str, made_of: list[str] | None
) -> None:
    view = View.of(text)
    assert view.text == expected
    assert len(view.starts) == len(view.ends) == len(view.text)
    if made_of is not None:
        assert origins(text, view) == made_of
    _assert_monotonic(view)


def _assert_monotonic(view: View) -> None:
    for i in range(1, len(view.text)):
        assert view.starts[i - 1] <= view.starts[i]
        assert view.ends[i - 1] <= view.ends[i]
    for s, e in pairs(view):
        assert view.origin <= s <= e <= view.stop


def test_virtual_spaces_are_zero_width() -> None:
    text = "メールはtaro@example.jpです"
    view = View.of(text)
    spaces = [i for i, c in enumerate(view.text) if c == " "]
    assert [view.starts[i] == view.ends[i] for i in spaces] == [True, True]
    assert [view.starts[i] for i in spaces] == [text.index("t"), text.index("で")]
    at = view.text.index("taro")
    assert view.span(at, at + len("taro@example.jp")) == (4, 19)


def test_a_span_maps_to_the_smallest_original_span_covering_it() -> None:
    text = "mail \\u0074aro\u200b\\u0040ex&#97;mple%2Ejp\u200b now"
    view = View.of(text)
    assert view.text == "mail taro@example.jp now"
    start = view.text.index("taro")
    s, e = view.span(start, start + len("taro@example.jp"))
    assert text[s:e] == "\\u0074aro\u200b\\u0040ex&#97;mple%2Ejp"  # not the trailing ZWSP
    assert view.span(3, 3) == (3, 3)
    assert view.span(len(view.text), len(view.text)) == (len(text), len(text))


def test_offsets_of_a_window_are_offsets_of_the_text() -> None:
    text = "before \\u0040 x ｔａｒｏ after"
    view = View.of(text, 7, 20)
    assert view.text == "@ x taro"
    assert (view.origin, view.stop) == (7, 20)
    assert origins(text, view)[:3] == ["\\u0040", " ", "x"]
    assert view.index(7) == 0
    assert view.index(8) == 1  # inside the escape: the next character of the view
    assert view.index(20) == len(view.text)


@pytest.mark.parametrize(
    "text", ["", "plain ascii, with punctuation: (a) [b] {c} 'd' \"e\" ~ # $ * + = @ ^ _ `"]
)
def test_plain_text_is_its_own_view_at_no_cost(text: str) -> None:
    assert is_plain(text)
    view = View.of(text)
    assert view.text == text
    assert view.identity
    assert isinstance(view.starts, range)
    assert isinstance(view.ends, range)


def test_text_that_only_looks_escaped_is_its_own_view() -> None:
    for text in ["50% off & more", "C:\\path", "x\\u00"]:
        assert not is_plain(text)
        view = View.of(text)
        assert view.text == text
        assert view.identity


@pytest.mark.parametrize("c", ["\\", "%", "&", "é", "\u200b", "\u3000", "ａ"])
def test_the_fast_path_is_taken_only_for_plain_text(c: str) -> None:
    assert not is_plain(f"abc{c}def")


# Random texts, built from pieces whose view is known.

PIECES = [
    ("a", "a"),
    ("Z", "Z"),
    ("7", "7"),
    (" ", " "),
    (".", "."),
    ("-", "-"),
    ("@", "@"),
    ("\n", "\n"),
    ("%", "%"),
    ("&", "&"),
    ("\\u0040", "@"),
    ("\\u0041", "A"),
    ("\\\\u0033", "3"),
    ("\\n", "\n"),
    ('\\"', '"'),
    ("\\ud83d\\ude00", "😀"),
    ("&#64;", "@"),
    ("&#x2E;", "."),
    ("&amp;", "&"),
    ("%40", "@"),
    ("%2E", "."),
    ("%E3%81%82", "あ"),
    ("＠", "@"),
    ("４", "4"),
    ("ｚ", "z"),
    ("\u3000", " "),
    ("\u00a0", " "),
    ("\u2013", "-"),
    ("\u2212", "-"),
    ("。", "."),
    ("\u200b", ""),
    ("\u00ad", ""),
    ("\ufe0f", ""),
    ("\U000e0041", ""),
    ("e\u0301", "é"),
    ("ｶﾞ", "ガ"),
    ("日", "日"),
    ("ア", "ア"),
    ("한", "한"),
    ("é", "é"),
]


def _expected_view(pieces: list[tuple[str, str]]) -> str:
    """The view of the concatenated pieces, virtual spaces included."""
    out = "".join(v for _, v in pieces)
    return normalization._TRANSITION.sub(" ", out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_random_texts_have_the_view_of_their_pieces(pieces: list[tuple[str, str]]) -> None:
    for (a, _), (_, b) in itertools.pairwise(pieces):
        if a in "%&" and b[:1] not in ("", " ", ".", "-", "@", "\n"):
            return  # "%" + "\\u0033" + "a" is "%3a" after two rounds, a third decodes it
    text = "".join(p for p, _ in pieces)
    view = View.of(text)
    assert view.text == _expected_view(pieces)
    _assert_monotonic(view)
    # each piece's characters map into that piece
    bounds = []
    pos = 0
    for p, _ in pieces:
        bounds.append((pos, pos + len(p)))
        pos += len(p)
    for s, e in pairs(view):
        if s < e:
            assert any(a <= s and e <= b for a, b in bounds), (s, e)


TEXT_ALPHABET = st.sampled_from(
    [p for p, _ in PIECES] + ["\\", "u", "0", "4", "x", "#", ";", "\u0301", "ﾞ", "\\\\"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXT_ALPHABET, max_size=60), st.data())
def test_a_window_has_the_view_of_the_whole_text_away_from_its_edges(
    parts: list[str], data: st.DataObject
) -> None:
    text = "".join(parts)
    whole = View.of(text)
    _assert_monotonic(whole)
    lo = data.draw(st.integers(0, len(text)))
    hi = data.draw(st.integers(lo, len(text)))
    window = View.of(text, lo, hi)
    _assert_monotonic(window)
    edge = 32
    a, b = lo + edge, hi - edge

    def inner(view: View) -> list[tuple[str, int, int]]:
        return [
            (c, s, e)
            for c, s, e in zip(view.text, view.starts, view.ends, strict=True)
            if a <= s and e <= b
        ]

    assert inner(window) == inner(whole)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXT_ALPHABET, max_size=60))
def test_the_quick_path_for_a_run_equals_the_cluster_by_cluster_path(parts: list[str]) -> None:
    text = "".join(parts)
    fast = View.of(text)
    slow_parts: tuple[list[str], list[int], list[int]] = ([], [], [])
    normalization._clusters(
        text, 0, len(text), range(len(text)), range(1, len(text) + 1), *slow_parts
    )
    if "\\" in text or "%" in text or "&" in text:
        return  # the quick path is the fold of the unescaped text; compared above
    slow = normalization._space("".join(slow_parts[0]), slow_parts[1], slow_parts[2])
    assert fast.text == slow[0]
    assert list(fast.starts) == list(slow[1])
    assert list(fast.ends) == list(slow[2])


def test_joins_knows_what_combines_with_the_character_before() -> None:
    assert joins("\u0301")
    assert joins("\uff9e")  # half-width voiced sound mark: NFKC makes it U+3099
    assert joins("\u1161")  # a Hangul vowel after a leading consonant
    assert joins("\u0bbe")  # a Tamil vowel sign that composes
    assert not joins("a")
    assert not joins("日")
    assert not joins("\u200b")


def test_fold_of_single_characters() -> None:
    assert fold("＠") == "@"
    assert fold("\u200b") == ""
    assert fold("\u3000") == " "
    assert fold("\u2029") == "\n"
    assert fold("\u2015") == "-"
    assert fold("｡") == "."
    assert fold("〜") == "〜"  # wave dashes are not dashes
    assert fold("ﬃ") == "ffi"


def test_tables_agree_with_the_unicode_database() -> None:
    """The hand-written tables, checked against this Python's Unicode database."""
    ignorable = normalization._IGNORABLE
    composing = set()
    for code in range(0x110000):
        c = chr(code)
        category = unicodedata.category(c)
        if category == "Cf":
            assert ignorable.match(c), f"U+{code:04X} is a format character"
        if category == "Pd" and code not in (0x301C, 0x3030, 0x30A0):
            assert fold(c) == "-" or fold(c) == "", f"U+{code:04X} is a dash"
        if category == "Zs":
            assert fold(c) == " ", f"U+{code:04X} is a space"
        decomposition = unicodedata.decomposition(c)
        if decomposition and not decomposition.startswith("<"):
            parts = decomposition.split()
            if len(parts) == 2:
                second = chr(int(parts[1], 16))
                if unicodedata.combining(second) == 0:
                    composing.add(second)
    assert (
        composing
        - {chr(c) for c in range(0x1161, 0x1176)}
        - {chr(c) for c in range(0x11A8, 0x11C3)}
        <= normalization._COMPOSING
    )
    assert all(joins(c) for c in composing)
    for code in range(0x3400):  # fold is idempotent on what it produces
        for c in fold(chr(code)):
            assert fold(c) == c, f"U+{code:04X}"


def test_whitespace_never_composes_with_what_follows() -> None:
    """The view keeps whitespace out of the cluster of the marks after it; exact only
    because NFKC never combines a space with anything."""
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u3099", "\uff9e", "\u1161", "\u0bbe"]
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    for space in spaces:
        for mark in marks:
            whole = unicodedata.normalize("NFKC", space + mark)
            assert whole == unicodedata.normalize("NFKC", space) + unicodedata.normalize(
                "NFKC", mark
            )


# The Scanner: detectors read the view, findings come back as spans of the original.


def _scan(scanner: Scanner, text: str, start: int = 0, end: int | None = None) -> list[Finding]:
    return asyncio.run(scanner.scan(text, list(scanner.detectors), "response", start, end)).findings


def test_the_scanner_maps_findings_on_the_view_back_to_the_original() -> None:
    fake = FakeDetector(pattern=r"FLAG\d")
    text = "one ＦＬＡＧ1 two FLAG\\u0032 three FL\u200bAG3 four FLAG4"
    scan = Scanner({"fake": fake}).scan_sync(text, ["fake"])
    found = [text[f.start : f.end] for f in scan.findings]
    assert found == ["ＦＬＡＧ1", "FLAG\\u0032", "FL\u200bAG3", "FLAG4"]
    assert fake.seen == ["one FLAG1 two FLAG2 three FLAG3 four FLAG4"]


def test_a_window_of_the_view_with_its_left_context() -> None:
    fake = FakeDetector(pattern=r"FLAG\d", context_chars=6)
    scanner = Scanner({"fake": fake})
    text = "FLAG1 \\u0046LAG2 ＦＬＡＧ3 FLAG4"
    start = text.index("ＦＬＡＧ3")
    found = [text[f.start : f.end] for f in _scan(scanner, text, start)]
    assert found == ["ＦＬＡＧ3", "FLAG4"]  # FLAG2 is in the context: an earlier window's
    assert fake.calls == ["FLAG3 FLAG4"]
    assert fake.seen == ["FLAG2 FLAG3 FLAG4"]  # six characters of the view before the window


def test_the_context_is_counted_in_characters_of_the_view() -> None:
    """Escapes before the window shrink in the view: the detector still gets its
    ``context_chars`` of it, as when it scans the whole text."""
    fake = FakeDetector(pattern="NEVER", context_chars=10)
    text = "\\u0061" * 30 + ". Window here."
    start = text.index("Window")
    _scan(Scanner({"fake": fake}), text, start)
    assert fake.seen == ["aaaaaaaa. Window here."]


def test_plain_text_reaches_detectors_as_it_is() -> None:
    fake = FakeDetector(pattern=r"FLAG\d", context_chars=4)
    text = "Some FLAG1 text. More FLAG2 text. End."
    start, end = text.index("More"), text.index("End")
    found = _scan(Scanner({"fake": fake}), text, start, end)
    assert [text[f.start : f.end] for f in found] == ["FLAG2"]
    assert fake.seen == [text[start - 4 : end]]
