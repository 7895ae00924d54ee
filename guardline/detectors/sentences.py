"""Sentence boundaries, shared by the stream guard and the sentence-level detectors so
that scanning a stream window by window and scanning the whole text see the same units.

A boundary falls after sentence-ending punctuation and the closing quotes or brackets
after it:

- followed by whitespace: right after that one whitespace character ("Done. Next");
- in scripts written without spaces: right before the next character, once it has
  arrived (``終わり。次`` splits before ``次``). The terminators of those scripts
  (Devanagari danda, Arabic question mark and full stop, Armenian and Ethiopic full
  stops, ...) always end a sentence so; ``. ! ?`` in any of their forms (``。``, the
  full-width, half-width and small forms) do when a CJK, kana or Hangul character is
  on either side, so full-width ``1.5`` and ``example。com`` stay whole.

and right after a newline, always. Otherwise common abbreviations and initials ("Dr. ",
"e.g. ", "J. ") are not boundaries. Once seen, a boundary never moves as more text
arrives: everything that decides it comes before it, or is the one character after it.

The rules read every character as the detectors' view (normalization.py) reads it:
full-width and small forms as what they fold to, invisible characters as nothing, an
escape as no character that could confirm a boundary. So a boundary of a text is a
boundary of its view too, and a window cut at one is a window of the view.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from guardline.detectors.normalization import IGNORABLE, View, fold, is_plain, joins

PERIODS = (
    "!.?\u2024-\u2026\u203c\u2047-\u2049\u3002\ufe12\ufe15\ufe16\ufe19\ufe30\ufe52\ufe56"
    "\ufe57\uff01\uff0e\uff1f\uff61"
)
"""``. ! ?`` and every character whose view is made of them (``…``, ``。``, full-width)."""
TERMINATORS = (
    "\u0589\u061f\u06d4\u0700-\u0702\u0964\u0965\u0df4\u104b\u1362\u1367\u1368\u166e"
    "\u17d4\u17d5\u1803\u1809\u1944\u1945\ua4ff\ua60e\ua60f\ua6f3\ua6f7\ua92f\ua9c8"
    "\ua9c9\uaa5d-\uaa5f\uaaf0\uaaf1\uabeb"
)
"""Sentence terminators of scripts written without a space after them."""
CLOSERS = (
    "\"')\\]}\u00bb\u2019\u201d\u203a\u207e\u208e\u232a\u2986\u3009\u300b\u300d\u300f"
    "\u3011\u3015\u3017\u3019\u301b\u301e\u301f\ufe18\ufe36\ufe38\ufe3a\ufe3c\ufe3e"
    "\ufe40\ufe42\ufe44\ufe48\ufe5a\ufe5c\ufe5e\uff02\uff07\uff09\uff3d\uff5d\uff60\uff63"
)
"""Closing quotes and brackets, kept in the sentence they close."""
CJK = (
    "\u1100-\u115e\u1161-\u11ff\u2e80-\u2fdf\u3001\u3003-\u303f\u3040-\u309a\u309d-\u30ff\u3100-\u312f"
    "\u3131-\u3163\u3165-\u318f\u3190-\u31bf\u31c0-\u31e3\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\uff62\uff64-\uff9d"
    "\uffa1-\uffdc\U0001b000-\U0001b16f\U00020000-\U0003ffff"
)
"""CJK, kana and Hangul characters (and CJK punctuation) whose view is one of them."""

_NEWLINES = "\n\u2028\u2029"
_BOUNDARY = re.compile(
    # The lookahead first: the regex engine then skips to candidates quickly.
    rf"(?=[{PERIODS}{TERMINATORS}{_NEWLINES}])"
    rf"(?:[{PERIODS}{TERMINATORS}][{PERIODS}{TERMINATORS}{IGNORABLE}]*[{CLOSERS}{IGNORABLE}]*"
    rf"(?:\s|(?=[^{PERIODS}{TERMINATORS}{CLOSERS}{IGNORABLE}\s\\%&]))|[{_NEWLINES}])"
)
_TERMINATOR = re.compile(f"[{TERMINATORS}]")
_STOPS = re.compile(f"[{PERIODS}{TERMINATORS}]")
_CJK = re.compile(f"[{CJK}]")
_NOT_NEXT = re.compile(rf"[{PERIODS}{TERMINATORS}{CLOSERS}\s]")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "inc",
        "ltd",
        "co",
        "corp",
        "dept",
        "univ",
        "no",
        "fig",
        "approx",
        "est",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "u.s",
        "u.k",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?]*$")


def boundaries(text: str, start: int = 0, end: int | None = None) -> Iterator[int]:
    """Boundary positions in ``text[start:end]`` (each the end of a sentence)."""
    stop = len(text) if end is None else end
    if (text if start == 0 and stop == len(text) else text[start:stop]).isascii():
        return _ascii_boundaries(text, start, stop)
    return _boundaries(text, start, stop)


# ASCII has no unspaced terminators, no CJK neighbours and nothing to fold: a boundary is
# punctuation and closers then whitespace, or a newline. The same answers as _boundaries,
# about three times faster (the stream guard asks on every event).
_ASCII_BOUNDARY = re.compile(r"[.!?]+[\"')\]}]*\s|\n")


def _ascii_boundaries(text: str, start: int, stop: int) -> Iterator[int]:
    for match in _ASCII_BOUNDARY.finditer(text, start, stop):
        at, end = match.span()
        run = text[at:end]
        if run[-1] != "\n" and "!" not in run and "?" not in run and _is_abbreviation(text, at):
            continue
        yield end


def _boundaries(text: str, start: int, stop: int) -> Iterator[int]:
    for match in _BOUNDARY.finditer(text, start, stop):
        at, stop = match.span()
        first = text[at]
        if first in _NEWLINES or text[stop - 1] in _NEWLINES:  # a newline always ends one
            yield stop
            continue
        if not text[stop - 1].isspace() and not _confirmed(text, at, stop):
            continue
        dots = (first == "." or not first.isascii()) and _dots(text, at, stop)
        if dots and _is_abbreviation(text, at):
            continue
        yield stop


def last_boundary(text: str, start: int = 0) -> int | None:
    """The last boundary after ``start``, or None when there is none."""
    last = None
    for last in boundaries(text, start):  # noqa: B007 - we want the final value
        pass
    return last


def split(text: str, start: int = 0) -> list[tuple[int, int]]:
    """(start, end) of every sentence from ``start``, the last one possibly unfinished."""
    spans = []
    begin = start
    for end in boundaries(text, start):
        spans.append((begin, end))
        begin = end
    if begin < len(text):
        spans.append((begin, len(text)))
    return spans


def _dots(text: str, at: int, stop: int) -> bool:
    """The punctuation of a boundary is full stops only (``.``, ``…``, ``。``, ...), as
    after an abbreviation."""
    found = text[at:stop]
    if found.isascii():
        return "!" not in found and "?" not in found
    return all(c == "." or not fold(c).strip(".") for c in _STOPS.findall(found))


def _confirmed(text: str, run: int, end: int) -> bool:
    """Punctuation at ``text[run:end]`` with no whitespace after it: a boundary before
    the character at ``end``? Both neighbours are read as the view reads them."""
    after = text[end]
    before = text[run - 1] if run else ""
    unspaced = _TERMINATOR.search(text, run, end) is not None
    if not unspaced and after.isascii() and before.isascii():
        return False  # the common case: "3.14", "example.com"
    view = fold(after)
    if not view or _NOT_NEXT.match(view) or joins(view[0]):
        return False  # what follows reads as punctuation, space, or a combining mark
    if unspaced:
        return True
    return _CJK.match(view) is not None or _CJK.match(fold(before)[-1:]) is not None


def _is_abbreviation(text: str, punct: int) -> bool:
    before = text[max(0, punct - 12) : punct]
    if not is_plain(before):  # read it as the view does
        if _CJK.match(fold(before[-1])[-1:]):
            return False  # a CJK word: never an abbreviation or an initial
        before = View.of(text, max(0, punct - 24), punct).text[-12:]
    found = _WORD_BEFORE.search(before)
    if found is None:
        return False
    word = found.group(1).lower().rstrip(".")
    if len(word) == 1 and word.isalpha() and _CJK.match(word) is None:
        return True  # an initial: "J. Smith"
    return word in _ABBREVIATIONS
