"""The normalised view of a text that detectors scan, with the map back to the original.

Values hide from pattern detectors behind encodings that the reader (a person, or the
client's JSON parser) undoes: ``taro\\u0040example.com`` in tool arguments, full-width
digits, zero-width spaces inside a number, NBSP between its groups. Detectors therefore
scan a *view* of each text, and every finding is mapped back to the smallest span of the
original that covers every original character behind it (so redacting it removes the
whole ``\\u0040`` escape and any zero-width characters inside the value).

The view, in order:

1. *Unescaping*, repeated while something decodes (at most ``ROUNDS`` times, so
   double-escaped text is seen too): JSON string escapes (``\\uXXXX`` with surrogate
   pairs, ``\\n \\t \\" \\\\ \\/ \\b \\f \\r``; tool arguments and JSON-mode content are JSON
   the client will parse), HTML character references (``&#64;``, ``&#x40;``,
   ``&commat;``; a rendered answer shows them as the character), and percent-encoded
   UTF-8 that decodes to a printable character or whitespace (``%40``, ``%20``: a
   link's query string is decoded by whoever follows it; control characters and
   invalid UTF-8 stay encoded).
2. *Per character*, or per cluster (a base character and what combines with it, e.g.
   ``e`` + U+0301 or half-width ``ｶ`` + ``ﾞ``) so offsets stay precise: default-ignorable
   code points and format characters removed (zero-width spaces and joiners, soft
   hyphen, word joiner, BOM, bidi controls, variation selectors, tags, CGJ, Hangul
   fillers); NFKC (full-width digits and at signs, ligatures, circled and mathematical
   letters); spaces (NBSP, thin, ideographic ...) to ``" "``, line and paragraph
   separators to ``"\\n"``, dashes and the minus sign to ``"-"``, ideographic full stops
   to ``"."`` (as IDNA reads them in domain names).
3. A *virtual space* between a letter of a script written without spaces (CJK, kana,
   Hangul, Thai, Lao, Khmer, Myanmar) and an ASCII letter or digit, either order, so
   entity boundaries work in ``メールはtaro@example.jp``. It maps to a zero-width
   position in the original.

Text that is pure ASCII without ``\\``, ``%`` or ``&`` is its own view: that check is all
it costs. Normalising a window of a text gives the same view as normalising the whole
text and slicing, except within a few characters of the window's edges.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

ROUNDS = 4
"""Unescaping rounds at most: an ``@`` escaped four times over (eight backslashes before
``u0040``) is still seen; what needs more rounds stays as it is."""

IGNORABLE = (
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160"
    "\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
"""A regex class body: Unicode's default-ignorable code points and every format (Cf)
character; removed from the view."""
_IGNORABLE = re.compile(f"[{IGNORABLE}]")

DASHES = (
    "\u058a\u05be\u1400\u1806\u2010-\u2015\u2043\u2212\u2e17\u2e1a\u2e3a\u2e3b\u2e40"
    "\u2e5d\ufe31\ufe32\ufe58\ufe63\uff0d\U00010ead"
)
"""Dash punctuation (without the wave dashes), hyphen bullet and minus sign: ``-``."""
_DASH = re.compile(f"[{DASHES}]")
_FULL_STOPS = "\u3002\uff61\ufe12"  # ideographic full stop and its half-width, vertical forms

UNSPACED = (
    "\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u19e0-\u19ff"
    "\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3040-\u30fa"
    "\u30fc-\u30ff\u3100-\u312f\u3131-\u3163\u3165-\u318f\u31a0-\u31bf\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff"
    "\U0001b000-\U0001b2ff\U00020000-\U0003ffff"
)
"""A regex class body: letters (and their marks) of scripts written without spaces
between words."""
_TRANSITION = re.compile(f"(?<=[{UNSPACED}])(?=[A-Za-z0-9])|(?<=[A-Za-z0-9])(?=[{UNSPACED}])")

# Characters with canonical combining class 0 that still compose with the character
# before them (NFC_Quick_Check=Maybe); Hangul vowels and trailing consonants besides.
_COMPOSING = frozenset(
    "\u09be\u09d7\u0b3e\u0b56\u0b57\u0bbe\u0bd7\u0cc2\u0cd5\u0cd6\u0d3e\u0d57\u0dcf"
    "\u0ddf\u0fb5\u0fb7\u102e\u1b35\U00011127\U0001133e\U00011357\U000114b0\U000114ba"
    "\U000114bd\U000115af\U00011930"
)

_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # surrogate pair
    r"|\\u([0-9a-fA-F]{4})"
    r"|\\([\"\\/bfnrt])"
    r"|&(?:#(?:[xX][0-9a-fA-F]{1,6}|[0-9]{1,7});?|[A-Za-z][A-Za-z0-9]{1,31};)"
    r"|(?:%[0-9a-fA-F]{2})+"
)
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def is_plain(text: str) -> bool:
    """Text that is its own view: pure ASCII, nothing that could be an escape."""
    return text.isascii() and "\\" not in text and "%" not in text and "&" not in text


@functools.lru_cache(maxsize=1 << 16)
def fold(char: str) -> str:
    """The view of one character standing alone: NFKC, then ignorables removed and
    spaces, separators, dashes and ideographic full stops folded."""
    out = []
    for c in unicodedata.normalize("NFKC", char):
        if _IGNORABLE.match(c):
            continue
        category = unicodedata.category(c)
        if category == "Zs":
            out.append(" ")
        elif category in ("Zl", "Zp"):
            out.append("\n")
        elif c in _FULL_STOPS:
            out.append(".")
        elif _DASH.match(c):
            out.append("-")
        else:
            out.append(c)
    return "".join(out)


@functools.lru_cache(maxsize=1 << 16)
def joins(char: str) -> bool:
    """Whether NFKC may combine ``char`` with the character before it (a combining mark,
    a half-width voiced sound mark, a Hangul vowel, ...)."""
    first = unicodedata.normalize("NFKD", char)[0]
    if unicodedata.combining(first) or first in _COMPOSING:
        return True
    code = ord(first)
    return 0x1161 <= code <= 0x1175 or 0x11A8 <= code <= 0x11C2


@functools.cache
def _one_to_one() -> dict[int, str]:
    """str.translate table for characters whose view is one ASCII character and which
    never combine with a neighbour: full-width forms, spaces, dashes, ``。``, letterlike
    and mathematical letters. Translating keeps offsets one to one."""
    table = {}
    blocks = [
        (0x00A0, 0x0100),
        (0x1680, 0x1681),
        (0x2000, 0x2C00),
        (0x3000, 0x3040),
        (0xFE10, 0xFE70),
        (0xFF00, 0xFFF0),
        (0x1D400, 0x1D800),
        (0x1F100, 0x1F200),
    ]
    for low, high in blocks:
        for code in range(low, high):
            c = chr(code)
            view = fold(c)
            if (
                len(view) == 1
                and view.isascii()
                and view != c
                and not unicodedata.combining(c)
                and not joins(c)
            ):
                table[code] = view
    for dash in "\u058a\u05be\u1400\u1806\u2e17\u2e1a\u2e3a\u2e3b\u2e40\u2e5d\U00010ead":
        table[ord(dash)] = "-"
    return table


@dataclass(frozen=True, slots=True)
class View:
    """``text`` is the view of ``original[origin:stop]``; its character ``i`` came from
    ``original[starts[i]:ends[i]]`` (an empty span for a virtual space). Both maps are
    non-decreasing."""

    text: str
    starts: Sequence[int]
    ends: Sequence[int]
    origin: int
    stop: int

    @classmethod
    def of(cls, text: str, start: int = 0, end: int | None = None) -> View:
        """The view of ``text[start:end]``, offsets into ``text``."""
        stop = len(text) if end is None else end
        window = text[start:stop]
        starts: Sequence[int] = range(start, stop)
        ends: Sequence[int] = range(start + 1, stop + 1)
        if is_plain(window):
            return cls(window, starts, ends, start, stop)
        for _ in range(ROUNDS):
            decoded = _unescape(window, starts, ends)
            if decoded is None:
                break
            window, starts, ends = decoded
        if not window.isascii():
            window, starts, ends = _fold(window, starts, ends)
            window, starts, ends = _space(window, starts, ends)
        return cls(window, starts, ends, start, stop)

    @property
    def identity(self) -> bool:
        return isinstance(self.starts, range) and self.stop - self.origin == len(self.text)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind ``text[start:end]``: the smallest one covering every
        original character that produced it."""
        if start >= end:
            position = self.position(start)
            return position, position
        return self.starts[start], self.ends[end - 1]

    def position(self, index: int) -> int:
        """The original position of a position between characters of the view."""
        return self.starts[index] if index < len(self.text) else self.stop

    def index(self, position: int) -> int:
        """The first character of the view that comes from ``original[position:]``."""
        return bisect_left(self.starts, position)


_Maps = tuple[str, Sequence[int], Sequence[int]]


def _unescape(text: str, starts: Sequence[int], ends: Sequence[int]) -> _Maps | None:
    """One round of decoding; None when nothing decodes."""
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    for match in _ESCAPE.finditer(text):
        a, b = match.span()
        pieces = _decode(match)
        if pieces is None:
            continue
        out.append(text[last:a])
        new_starts += starts[last:a]
        new_ends += ends[last:a]
        for value, p, q in pieces:  # p, q: the escape's characters that made value
            out.append(value)
            new_starts += [starts[a + p]] * len(value)
            new_ends += [ends[a + q - 1]] * len(value)
        last = b
    if not out:
        return None
    out.append(text[last:])
    new_starts += starts[last:]
    new_ends += ends[last:]
    return "".join(out), new_starts, new_ends


def _decode(match: re.Match[str]) -> list[tuple[str, int, int]] | None:
    """What an escape decodes to, as (value, first, end) offsets within the match; None
    when it does not decode."""
    token = match.group()
    length = len(token)
    high, low, unit, simple = match.groups()
    if high is not None:
        code = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        return [(chr(code), 0, length)]
    if unit is not None:
        code = int(unit, 16)
        return [("\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code), 0, length)]
    if simple is not None:
        return [(_SIMPLE[simple], 0, length)]
    if token[0] == "&":
        value = html.unescape(token)
        return None if value == token else [(value, 0, length)]
    return _percent(token)


def _percent(token: str) -> list[tuple[str, int, int]] | None:
    """Percent-encoded UTF-8, character by character; bytes that do not make a
    printable character or whitespace stay as they are."""
    raw = bytes(int(token[i + 1 : i + 3], 16) for i in range(0, len(token), 3))
    pieces = []
    i = 0
    decoded = False
    while i < len(raw):
        lead = raw[i]
        size = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4
        try:
            char = raw[i : i + size].decode("utf-8")
        except UnicodeDecodeError:
            char = ""
        if len(char) == 1 and (char.isprintable() or char.isspace()):
            pieces.append((char, 3 * i, 3 * (i + size)))
            decoded = True
            i += size
        else:
            pieces.append((token[3 * i : 3 * i + 3], 3 * i, 3 * i + 3))
            i += 1
    if not decoded:
        return None
    # an undecoded %XX maps character by character
    out = []
    for value, p, q in pieces:
        if len(value) == 3 and value[0] == "%" and q - p == 3:
            out += [(value[k], p + k, p + k + 1) for k in range(3)]
        else:
            out.append((value, p, q))
    return out


def _fold(text: str, starts: Sequence[int], ends: Sequence[int]) -> _Maps:
    """Step 2 over the non-ASCII runs; ASCII between them is its own view."""
    table = _one_to_one()
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    changed = False
    for match in _NON_ASCII.finditer(text):
        a, b = match.span()
        run = text[a:b]
        translated = run.translate(table)
        if (
            _IGNORABLE.search(translated) is None
            and unicodedata.is_normalized("NFKC", translated)
            and not joins(run[0])
        ):  # one to one: the offsets stay
            changed = changed or translated != run
            out.append(text[last:a])
            out.append(translated)
            new_starts += starts[last:b]
            new_ends += ends[last:b]
            last = b
            continue
        changed = True
        lead = next((c for c in run if not _IGNORABLE.match(c)), "")
        if a > last and lead and joins(lead):
            a -= 1  # the ASCII character before combines with the run's first
        out.append(text[last:a])
        new_starts += starts[last:a]
        new_ends += ends[last:a]
        _clusters(text, a, b, starts, ends, out, new_starts, new_ends)
        last = b
    if not changed:
        return text, starts, ends
    out.append(text[last:])
    new_starts += starts[last:]
    new_ends += ends[last:]
    return "".join(out), new_starts, new_ends


def _clusters(  # noqa: PLR0917 - the fold's running state, kept flat for speed
    text: str,
    a: int,
    b: int,
    starts: Sequence[int],
    ends: Sequence[int],
    out: list[str],
    new_starts: list[int],
    new_ends: list[int],
) -> None:
    """Step 2 cluster by cluster for ``text[a:b]``. Ignorables go first, so what they
    separated can combine; whitespace never takes the marks after it (it composes with
    nothing), so a sentence boundary after it stays one in the view."""
    kept = [k for k in range(a, b) if not _IGNORABLE.match(text[k])]
    i = 0
    while i < len(kept):
        k = kept[i]
        j = i + 1
        if not text[k].isspace():
            while j < len(kept) and joins(text[kept[j]]):
                j += 1
        if j == i + 1:
            value = fold(text[k])
        else:
            chars = "".join(text[kept[x]] for x in range(i, j))
            normal = unicodedata.normalize("NFKC", chars)
            if normal == "".join(unicodedata.normalize("NFKC", c) for c in chars):
                # nothing combined: character by character, as when there is no cluster
                for x in range(i, j):
                    value = fold(text[kept[x]])
                    out.append(value)
                    new_starts += [starts[kept[x]]] * len(value)
                    new_ends += [ends[kept[x]]] * len(value)
                i = j
                continue
            value = "".join(fold(c) for c in normal)
        out.append(value)
        new_starts += [starts[k]] * len(value)
        new_ends += [ends[kept[j - 1]]] * len(value)
        i = j


def _space(text: str, starts: Sequence[int], ends: Sequence[int]) -> _Maps:
    """Step 3: virtual spaces, each at the original position of the character after it
    (inside one cluster's expansion: that cluster's span, so both maps stay monotonic)."""
    points = [m.start() for m in _TRANSITION.finditer(text)]
    if not points:
        return text, starts, ends
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    last = 0
    for p in points:
        out.append(text[last:p])
        new_starts += starts[last:p]
        new_ends += ends[last:p]
        out.append(" ")
        new_starts.append(starts[p])
        new_ends.append(max(starts[p], ends[p - 1]))
        last = p
    out.append(text[last:])
    new_starts += starts[last:]
    new_ends += ends[last:]
    return "".join(out), new_starts, new_ends
