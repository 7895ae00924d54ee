"""Sentence boundaries, shared by the stream guard and the sentence-level detectors so
that scanning a stream window by window and scanning the whole text see the same units.

A boundary falls right after sentence-ending punctuation (plus closing quotes or
brackets) and the one whitespace character that follows it, or right after a newline.
Once seen, a boundary never moves as more text arrives. Common abbreviations and
initials ("Dr. ", "e.g. ", "J. ") are not boundaries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_BOUNDARY = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s|\n")
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
_WORD_BEFORE = re.compile(r"([\w.]+)[.!?\u2026]*$")


def boundaries(text: str, start: int = 0, end: int | None = None) -> Iterator[int]:
    """Boundary positions in ``text[start:end]`` (each the end of a sentence)."""
    for match in _BOUNDARY.finditer(text, start, len(text) if end is None else end):
        if match.group() != "\n" and _is_abbreviation(text, match.start()):
            continue
        yield match.end()


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


def _is_abbreviation(text: str, punct: int) -> bool:
    if text[punct] != ".":
        return False
    found = _WORD_BEFORE.search(text, max(0, punct - 12), punct)
    if found is None:
        return False
    word = found.group(1).lower().rstrip(".")
    if len(word) == 1 and word.isalpha():
        return True  # an initial: "J. Smith"
    return word in _ABBREVIATIONS
