"""The report's two charts as inline SVG, drawn with matplotlib's object API (no pyplot:
no global figure registry, no rcParams changes; each call owns its figures)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from io import StringIO
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from guardline.reeval.fields import label as _label
from guardline.reeval.fields import map_of as _map
from guardline.reeval.fields import num as _num
from guardline.reeval.fields import rate as _rate
from guardline.reeval.fields import shortened as _shortened
from guardline.reeval.fields import when as _when

# Fixed colours: readers learn them once, and the screenshot test counts their pixels.
WINDOW_COLOUR = "#d62728"
BASELINE_COLOUR = "#1f77b4"
ERROR_BAR_COLOUR = "#333333"
MAX_LABEL_CHARS = 40  # a longer tick label squeezes the bars to nothing

# matplotlib's SVG metadata carries a Dublin Core type URI; None drops each entry and, with
# all of them gone, the <metadata> element.
_SVG_METADATA: dict[str, Any] = {"Type": None, "Format": None, "Date": None, "Creator": None}

# Each chart's ids (glyphs, markers, clip paths) are renumbered under a prefix: two inline
# SVGs share one id space, matplotlib names identical glyphs identically in both, and its
# other ids are random per call (unless the global svg.hashsalt is set), which would make
# the same summary render differently each time.
_SVG_IDS = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')
# matplotlib repeats each text drawn as paths in a comment; it escapes them, but user text
# has no business in hidden corners of the page.
_SVG_COMMENTS = re.compile(r"<!--.*?-->\n?", re.DOTALL)


def rates_figure(rows: Sequence[Any]) -> Figure:
    figure = Figure(figsize=(9, 1.3 + 0.45 * len(rows)), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    # The window's bar sits above the baseline's (the axis is inverted below).
    for offset, side, colour in (
        (-0.2, "window", WINDOW_COLOUR),
        (0.2, "baseline", BASELINE_COLOUR),
    ):
        rates = [_rate(r, side) or 0.0 for r in rows]
        axes.barh(
            [p + offset for p in positions],
            rates,
            height=0.38,
            xerr=_error_bars(rows, side, rates),
            color=colour,
            ecolor=ERROR_BAR_COLOUR,
            capsize=3,
            label=side,
        )
    # Category names come from the summary: never let matplotlib read "$...$" as mathtext.
    labels = [_shortened(_label(r), MAX_LABEL_CHARS) for r in rows]
    axes.set_yticks(positions, labels, parse_math=False)
    axes.invert_yaxis()  # largest difference on top
    axes.xaxis.set_major_formatter(PercentFormatter(xmax=1))
    axes.set_xlim(left=0)
    axes.grid(axis="x", color="#e5e5e5")
    axes.set_axisbelow(True)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, frameon=False)
    return figure


def _error_bars(rows: Sequence[Any], side: str, rates: Sequence[float]) -> list[list[float]]:
    """Distances from each rate down to its interval's low and up to its high (matplotlib
    wants distances, never negative)."""
    below, above = [], []
    for row, rate in zip(rows, rates, strict=True):
        part = _map(_map(row).get(side))
        low, high = _num(part.get("low")), _num(part.get("high"))
        below.append(max(rate - low, 0.0) if low is not None else 0.0)
        above.append(max(high - rate, 0.0) if high is not None else 0.0)
    return [below, above]


def timeline_figure(buckets: Sequence[Mapping[str, Any]]) -> Figure:
    figure = Figure(figsize=(9, 2.8), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(buckets)))
    baseline = [_num(b.get("baseline")) or 0.0 for b in buckets]
    window = [_num(b.get("window")) or 0.0 for b in buckets]
    # Buckets are evenly spaced positions, not times: a baseline a day earlier would
    # otherwise squeeze both periods into slivers at the ends of the axis.
    axes.bar(positions, baseline, width=0.9, color=BASELINE_COLOUR, label="baseline")
    axes.bar(positions, window, width=0.9, bottom=baseline, color=WINDOW_COLOUR, label="window")
    first_window = next((i for i, n in enumerate(window) if n > 0), None)
    if first_window:  # a boundary only when some baseline bucket precedes the window
        axes.axvline(first_window - 0.5, color=ERROR_BAR_COLOUR, linestyle=":", linewidth=1)
    step = max(1, math.ceil(len(buckets) / 8))
    ticks = positions[::step]
    labels = [_when(buckets[i].get("start"), short=True, escape=False) for i in ticks]
    axes.set_xticks(ticks, labels, parse_math=False)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("samples")
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=2, frameon=False)
    return figure


def svg(figure: Figure, prefix: str) -> str:
    """``figure`` as an ``<svg>`` element to inline: no XML prolog or DOCTYPE (the DOCTYPE
    names a DTD URL), no metadata, no comments, ids prefixed. Text is drawn as paths
    (matplotlib's default, and rcParams are global, so not ours to change per call): the
    chart looks the same whatever fonts the reader has."""
    out = StringIO()
    figure.savefig(out, format="svg", metadata=_SVG_METADATA)
    svg = out.getvalue()
    svg = _SVG_COMMENTS.sub("", svg[svg.index("<svg") :])
    names: dict[str, str] = {}

    def renumbered(match: re.Match[str]) -> str:
        name = names.setdefault(match.group(2), f"{prefix}-{len(names) + 1}")
        return match.group(1) + name

    return _SVG_IDS.sub(renumbered, svg)
