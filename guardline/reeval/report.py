"""The re-evaluation report: one self-contained HTML page and the summary beside it.

``render_html`` turns a job's summary (schema 1) into a page a person reads in a minute:
headline and verdict first, then the two charts, then the detail. The page loads nothing:
CSS is inline, charts are inline SVG drawn by matplotlib's object API (no pyplot, so no
global figure registry and no rcParams changes; each call owns its figures), and a
Content-Security-Policy forbids scripts and every fetch, in case an escaping bug ever lets
markup through. Every string from the summary is escaped: samples are user content, and a
report that runs what a user typed would be an attack on whoever reads it.

``write_report`` writes ``report.html`` and ``summary.json``, each atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from guardline.reeval.charts import (
    rates_figure,
    svg,
    timeline_figure,
)
from guardline.reeval.fields import difference as _difference
from guardline.reeval.fields import e as _e
from guardline.reeval.fields import label as _label
from guardline.reeval.fields import list_of as _list
from guardline.reeval.fields import map_of as _map
from guardline.reeval.fields import num as _num
from guardline.reeval.fields import rate as _rate
from guardline.reeval.fields import signed_difference as _signed_difference
from guardline.reeval.fields import when as _when

MAX_CHART_CATEGORIES = 15  # more bars than this stop being readable at a glance
MAX_EXAMPLES = 10
EXAMPLE_CHARS = 500
REPORT_NAME = "report.html"
SUMMARY_NAME = "summary.json"

# No scripts, no fetches of any kind; inline styles only (inline SVG is part of the
# document, so it needs no img-src).
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_EN_DASH = "\N{EN DASH}"  # between the ends of an interval

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;
padding:1.5rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{font-size:1.15rem;margin:2rem 0 .5rem;
border-bottom:1px solid #ddd;padding-bottom:.2rem}
.trigger,.muted{color:#555}.verdict-up{color:#8b0000}.verdict-down{color:#004d00}
.numbers{display:flex;flex-wrap:wrap;gap:.75rem;margin:1rem 0}
.numbers div{border:1px solid #ddd;border-radius:6px;padding:.5rem .9rem;min-width:9rem}
.numbers b{display:block;font-size:1.3rem}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}figcaption{color:#555}
table{border-collapse:collapse;margin:.5rem 0}th,td{border-bottom:1px solid #e5e5e5;
padding:.25rem .6rem;text-align:left;vertical-align:top}td.n{text-align:right;
font-variant-numeric:tabular-nums}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f6f6;padding:.5rem;margin:.2rem 0;
border-radius:4px}
.example{border:1px solid #e5e5e5;border-radius:6px;padding:.5rem .8rem;margin:.6rem 0}
.errors li{color:#8b0000}
"""


def render_html(summary: Mapping[str, Any]) -> str:
    """The report page for ``summary``; any optional part may be missing or None."""
    job = _map(summary.get("job"))
    sections = [
        _headline(summary),
        _key_numbers(summary),
        _rates_chart(_list(summary.get("rates"))),
        _timeline_chart(_list(summary.get("timeline"))),
        _rates_table("Rates", _list(summary.get("rates")), ("Window", "Baseline")),
        _top_categories(_list(summary.get("top_categories"))),
        _examples(_list(summary.get("examples"))),
        _evaluators(_list(summary.get("evaluators"))),
        _judge(summary.get("judge")),
        _candidate(summary.get("candidate")),
        _dataset(summary.get("dataset")),
        _next_steps(_list(summary.get("next_steps"))),
        _errors(_list(summary.get("errors"))),
    ]
    title = f"Guardline re-evaluation {job.get('id') or ''}".strip()
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


def write_report(summary: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.json`` into ``directory``; the paths, in that
    order. Both are rendered before either is written, so a rendering error leaves the
    directory as it was."""
    page = render_html(summary).encode()
    data = orjson.dumps(
        summary, default=_jsonable, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    )
    directory.mkdir(parents=True, exist_ok=True)
    report, summary_path = directory / REPORT_NAME, directory / SUMMARY_NAME
    _write_atomically(summary_path, data + b"\n")
    _write_atomically(report, page)
    return report, summary_path


# -- the sections, in page order ----------------------------------------------------------


def _headline(summary: Mapping[str, Any]) -> str:
    job = _map(summary.get("job"))
    trigger = _map(job.get("trigger"))
    evaluation = job.get("evaluation") or "re-evaluation"
    if trigger.get("source") == "alertmanager" or trigger.get("alertname"):
        fired = f"Alert <b>{_e(trigger.get('alertname') or 'unnamed')}</b>"
        fired += f" ({_e(trigger.get('status') or 'status unknown')})"
        if trigger.get("starts_at"):
            fired += f" since {_when(trigger.get('starts_at'))}"
    else:
        fired = f"Run by hand ({_e(trigger.get('source') or 'unknown source')})"
    fired += f" · job {_e(job.get('id'))}, {_e(job.get('state'))}"
    window, baseline = _map(summary.get("window")), _map(summary.get("baseline"))
    parts = [
        "<header>",
        f'<p class="trigger">{fired}</p>',
        f"<h1>{_verdict(summary, str(evaluation))}</h1>",
        f"<p>Window {_span(window)} · baseline {_span(baseline)}</p>",
    ]
    annotations = _map(trigger.get("annotations"))
    for key in ("summary", "description", "runbook"):
        if annotations.get(key):
            parts.append(f'<p class="muted">{_e(key)}: {_e(annotations[key])}</p>')
    labels = _map(trigger.get("labels"))
    if labels:
        pairs = ", ".join(f"{_e(k)}={_e(v)}" for k, v in sorted(labels.items()))
        parts.append(f'<p class="muted">Alert labels: <code>{pairs}</code></p>')
    parts.append("</header>")
    return "\n".join(parts)


def _verdict(summary: Mapping[str, Any], evaluation: str) -> str:
    """The one sentence: the rate that moved most for the job's evaluation, against the
    baseline, and whether the move is significant."""
    rows = [r for r in _list(summary.get("rates")) if _rate(r, "window") is not None]
    own = [r for r in rows if _map(r).get("evaluator") == evaluation] or rows
    if not own:
        return f"{_e(evaluation)}: no rates computed"
    # Significant rows first, then the largest difference: that is what the alert is about.
    row = min(own, key=lambda r: (_map(r).get("significant") is not True, -_difference(r)))
    window, baseline = _map(_map(row).get("window")), _map(_map(row).get("baseline"))
    text = (
        f"{_e(_label(row))} rate {_pct(window.get('rate'))} {_interval(window)}"
        f" vs baseline {_pct(baseline.get('rate'))} {_interval(baseline)}"
    )
    signed = _signed_difference(row)
    significant = _map(row).get("significant")
    if significant is True and signed is not None:
        up = signed > 0
        word = "higher" if up else "lower"
        css = "verdict-up" if up else "verdict-down"
        return f'{text} — <span class="{css}">significantly {word}</span>'
    if significant is False:
        return f"{text} — not significantly different"
    return text


def _key_numbers(summary: Mapping[str, Any]) -> str:
    counts = _map(summary.get("counts"))
    job = _map(summary.get("job"))
    skipped = _map(counts.get("skipped"))
    boxes = [
        ("Samples in window", _count(counts.get("window"))),
        ("Samples in baseline", _count(counts.get("baseline"))),
        ("Flagged online in window", _count(counts.get("window_flagged_online"))),
        ("Skipped", _count(sum(v for v in skipped.values() if _num(v) is not None))),
        ("Job duration", _duration(job.get("duration_seconds"))),
    ]
    inner = "".join(f"<div>{_e(name)}<b>{value}</b></div>" for name, value in boxes)
    reasons = ", ".join(f"{_e(k)}: {_count(v)}" for k, v in sorted(skipped.items()))
    note = f'<p class="muted">Skipped: {reasons}</p>' if reasons else ""
    return f'<section class="numbers">{inner}</section>{note}'


def _rates_chart(rates: Sequence[Any]) -> str:
    rows = [r for r in rates if _rate(r, "window") is not None and _rate(r, "baseline") is not None]
    if not rows:
        return '<h2>Rates, window vs baseline</h2><p class="muted">No rates to chart.</p>'
    shown = sorted(rows, key=_difference, reverse=True)[:MAX_CHART_CATEGORIES]
    caption = "Flag rate per category with 95% intervals"
    if len(rows) > len(shown):
        caption += f"; the {len(shown)} largest differences of {len(rows)}"
    return (
        "<h2>Rates, window vs baseline</h2>"
        f"<figure>{svg(rates_figure(shown), 'rates')}<figcaption>{_e(caption)}</figcaption>"
        "</figure>"
    )


def _timeline_chart(timeline: Sequence[Any]) -> str:
    buckets = [_map(b) for b in timeline if _map(b)]
    if not buckets:
        return '<h2>Samples over time</h2><p class="muted">No timeline.</p>'
    return (
        "<h2>Samples over time</h2>"
        f"<figure>{svg(timeline_figure(buckets), 'timeline')}"
        "<figcaption>Samples per time bucket: the baseline, then the window</figcaption>"
        "</figure>"
    )


def _rates_table(title: str, rates: Sequence[Any], sides: tuple[str, str]) -> str:
    """Every rate with its interval; ``sides`` names the two columns (the candidate
    comparison reuses the shape with other meanings)."""
    rows = sorted((_map(r) for r in rates), key=_difference, reverse=True)
    if not rows:
        return ""
    head = (
        f"<tr><th>Evaluator</th><th>Category</th><th>{_e(sides[0])}</th><th>{_e(sides[1])}</th>"
        "<th>Difference</th><th>Significant</th></tr>"
    )
    body = []
    for row in rows:
        difference = _map(row.get("difference"))
        marker = _significance(row)
        body.append(
            f"<tr><td>{_e(row.get('evaluator'))}</td><td>{_e(row.get('category'))}</td>"
            f"<td>{_rate_cell(row.get('window'))}</td><td>{_rate_cell(row.get('baseline'))}</td>"
            f"<td>{_pct(difference.get('value'), signed=True)} {_interval(difference)}</td>"
            f"<td>{marker}</td></tr>"
        )
    return f"<h2>{_e(title)}</h2><table>{head}{''.join(body)}</table>"


def _significance(row: Mapping[str, Any]) -> str:
    significant = row.get("significant")
    if significant is True:
        return "<b>yes ▼</b>" if (_signed_difference(row) or 0.0) < 0 else "<b>yes ▲</b>"
    return "no" if significant is False else "—"


def _top_categories(top: Sequence[Any]) -> str:
    rows = [_map(t) for t in top if _map(t)]
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{_e(t.get('evaluator'))}</td><td>{_e(t.get('category'))}</td>"
        f'<td class="n">{_count(t.get("count"))}</td><td class="n">{_pct(t.get("rate"))}</td></tr>'
        for t in rows
    )
    head = "<tr><th>Evaluator</th><th>Category</th><th>Count</th><th>Rate</th></tr>"
    return f"<h2>Top categories in the window</h2><table>{head}{body}</table>"


def _examples(examples: Sequence[Any]) -> str:
    rows = [_map(x) for x in examples if _map(x)]
    if not rows:
        return '<h2>Worst examples</h2><p class="muted">No examples.</p>'
    rows.sort(key=lambda x: _num(x.get("score")) or 0.0, reverse=True)
    parts = ["<h2>Worst examples</h2>", '<p class="muted">Redacted text, highest score first.</p>']
    for x in rows[:MAX_EXAMPLES]:
        categories = ", ".join(_e(c) for c in _list(x.get("categories")))
        parts.append(
            '<div class="example">'
            f'<p class="muted">score {_score(x.get("score"))} · {categories} · '
            f"model {_e(x.get('model'))} · {_when(x.get('time'))} · "
            f"request {_e(x.get('request_id'))}</p>"
            f"<p>Prompt</p><pre>{_truncated(x.get('prompt'))}</pre>"
            f"<p>Response</p><pre>{_truncated(x.get('response'))}</pre></div>"
        )
    if len(rows) > MAX_EXAMPLES:
        parts.append(f'<p class="muted">{len(rows) - MAX_EXAMPLES} more in summary.json.</p>')
    return "\n".join(parts)


def _evaluators(evaluators: Sequence[Any]) -> str:
    rows = [_map(v) for v in evaluators if _map(v)]
    if not rows:
        return ""
    body = []
    for v in rows:
        status = (
            "ran" if v.get("available") else f"unavailable: {_e(v.get('reason') or 'no reason')}"
        )
        body.append(
            f"<tr><td>{_e(v.get('name'))}</td><td>{_e(v.get('kind'))}</td>"
            f"<td>{_e(v.get('backend'))}</td><td>{status}</td></tr>"
        )
    head = "<tr><th>Name</th><th>Kind</th><th>Backend</th><th>Status</th></tr>"
    return f"<h2>Evaluators</h2><table>{head}{''.join(body)}</table>"


def _judge(judge: Any) -> str:
    j = _map(judge)
    if not j:
        return ""
    return (
        f"<h2>LLM judge</h2><p>Model {_e(j.get('model'))} via {_e(j.get('upstream'))}; prompt:</p>"
        f"<pre>{_e(j.get('prompt'))}</pre>"
    )


def _candidate(candidate: Any) -> str:
    c = _map(candidate)
    if not c:
        return ""
    intro = (
        f"<h2>Candidate model</h2><p>{_count(c.get('replayed'))} window prompts replayed on "
        f"{_e(c.get('model'))}.</p>"
    )
    if c.get("error"):
        intro += f"<p>Replay not possible: {_e(c.get('error'))}</p>"
    table = _rates_table(
        "Original answers vs candidate", _list(c.get("rates")), ("Original answers", "Candidate")
    )
    return intro + table


def _dataset(dataset: Any) -> str:
    d = _map(dataset)
    if not d:
        return ""
    files = "".join(
        f"<li>{_e(kind)}: <code>{_e(path)}</code></li>"
        for kind, path in sorted(_map(d.get("files")).items())
    )
    return (
        f"<h2>Dataset written</h2><p>Version <code>{_e(d.get('version'))}</code>, "
        f"{_count(d.get('records'))} records, in <code>{_e(d.get('directory'))}</code></p>"
        f"<ul>{files}</ul>"
    )


def _next_steps(steps: Sequence[Any]) -> str:
    if not steps:
        return ""
    return "<h2>Next steps</h2><ol>" + "".join(f"<li>{_e(s)}</li>" for s in steps) + "</ol>"


def _errors(errors: Sequence[Any]) -> str:
    if not errors:
        return '<h2>Errors</h2><p class="muted">None.</p>'
    items = "".join(f"<li>{_e(x)}</li>" for x in errors)
    return f'<h2>Errors</h2><ul class="errors">{items}</ul>'


# -- formatting -----------------------------------------------------------------------------


def _pct(value: Any, *, signed: bool = False) -> str:
    number = _num(value)
    if number is None:
        return "—"
    return f"{number * 100:+.1f}%" if signed else f"{number * 100:.1f}%"


def _interval(part: Mapping[str, Any]) -> str:
    low, high = _num(part.get("low")), _num(part.get("high"))
    if low is None or high is None:
        return ""
    return f"[{low * 100:.1f}{_EN_DASH}{high * 100:.1f}]"


def _rate_cell(part: Any) -> str:
    p = _map(part)
    return f"{_pct(p.get('rate'))} {_interval(p)} ({_count(p.get('count'))}/{_count(p.get('n'))})"


def _count(value: Any) -> str:
    number = _num(value)
    if number is None:
        return _e(value)
    return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}"


def _score(value: Any) -> str:
    number = _num(value)
    return "—" if number is None else f"{number:.2f}"


def _duration(value: Any) -> str:
    seconds = _num(value)
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _span(period: Mapping[str, Any]) -> str:
    if not period:
        return "—"
    return f"{_when(period.get('since'))} → {_when(period.get('until'))}"


def _truncated(value: Any) -> str:
    """Redacted sample text, cut before escaping so an entity is never split."""
    text = "" if value is None else str(value)
    if len(text) <= EXAMPLE_CHARS:
        return _e(text)
    rest = len(text) - EXAMPLE_CHARS
    return f'{_e(text[:EXAMPLE_CHARS])}… <span class="muted">({rest:,} more characters)</span>'


# -- files ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    # orjson serialises dict but not other Mappings (a MappingProxyType, say).
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers (an HTTP handler serving the report, say) see the old file or the new one,
    never half of one."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o640)  # as the dataset files are (mkstemp makes 0600)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)
