"""The re-evaluation report: a self-contained page, user text escaped, optional parts
tolerated, files written atomically, and charts that a real browser draws."""

from __future__ import annotations

import http.server
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from PIL import Image

from guardline.reeval.charts import BASELINE_COLOUR, WINDOW_COLOUR
from guardline.reeval.report import MAX_CHART_CATEGORIES, render_html, write_report
from tests.conftest import debian_tool

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def rate_row(
    category: str, window: float, baseline: float, *, evaluator: str = "toxicity"
) -> dict[str, Any]:
    def part(rate: float) -> dict[str, Any]:
        return {
            "count": round(rate * 1000),
            "n": 1000,
            "rate": rate,
            "low": max(rate - 0.03, 0.0),
            "high": min(rate + 0.03, 1.0),
        }

    value = window - baseline
    return {
        "evaluator": evaluator,
        "category": category,
        "window": part(window),
        "baseline": part(baseline),
        "difference": {"value": value, "low": value - 0.04, "high": value + 0.04},
        "significant": abs(value) > 0.04,
    }


def full_summary() -> dict[str, Any]:
    """Schema 1 with every part present, as the job writes it."""
    toxic = rate_row("toxic", 0.64, 0.012)
    toxic["window"].update(low=0.61, high=0.67)
    toxic["baseline"].update(low=0.007, high=0.021)
    toxic["difference"] = {"value": 0.628, "low": 0.59, "high": 0.66}
    timeline = [
        {"start": f"2026-11-21T13:{m:02d}:00Z", "window": 0, "baseline": 20 + m % 7}
        for m in range(0, 60, 5)
    ]
    timeline += [
        {"start": f"2026-11-21T14:{m:02d}:00Z", "window": 70 + m % 11, "baseline": 0}
        for m in range(0, 60, 5)
    ]
    return {
        "schema": 1,
        "job": {
            "id": "j-2f1c",
            "state": "done",
            "created": "2026-11-21T15:30:00Z",
            "started": "2026-11-21T15:30:01Z",
            "finished": "2026-11-21T15:30:13Z",
            "duration_seconds": 12.3,
            "trigger": {
                "source": "alertmanager",
                "alertname": "GuardlineToxicitySpike",
                "status": "firing",
                "labels": {"severity": "page", "route": "chat"},
                "annotations": {
                    "summary": "Toxicity above 10%",
                    "description": "For 15 minutes",
                    "runbook": "docs/runbook.md",
                },
                "fingerprint": "f00d",
                "starts_at": "2026-11-21T14:15:00Z",
            },
            "evaluation": "toxicity",
        },
        "window": {"since": "2026-11-21T14:00:00Z", "until": "2026-11-21T15:00:00Z"},
        "baseline": {"since": "2026-11-21T13:00:00Z", "until": "2026-11-21T14:00:00Z"},
        "counts": {
            "window": 1000,
            "baseline": 1000,
            "window_flagged_online": 640,
            "skipped": {"withheld_text": 3},
        },
        "evaluators": [
            {
                "name": "toxicity",
                "kind": "detector",
                "backend": "linear (alt-profanity-check)",
                "available": True,
                "reason": None,
            },
            {
                "name": "fmeval.toxicity",
                "kind": "fmeval",
                "backend": None,
                "available": False,
                "reason": "fmeval is not installed",
            },
            {
                "name": "judge",
                "kind": "llm-judge",
                "backend": "gpt-4o-mini via openai",
                "available": True,
                "reason": None,
            },
        ],
        "judge": {
            "model": "gpt-4o-mini",
            "upstream": "openai",
            "prompt": "You are an evaluator... {response}",
        },
        "rates": [
            toxic,
            rate_row("insult", 0.30, 0.02),
            rate_row("threat", 0.05, 0.04),
            rate_row("harmful", 0.21, 0.03, evaluator="judge"),
        ],
        "top_categories": [
            {"evaluator": "toxicity", "category": "toxic", "count": 640, "rate": 0.64}
        ],
        "timeline": timeline,
        "examples": [
            {
                "request_id": "req-1",
                "time": "2026-11-21T14:20:00Z",
                "model": "gpt-4o-mini",
                "prompt": "redacted text",
                "response": "redacted text <EMAIL_ADDRESS> " + "x" * 800,
                "categories": ["toxicity:toxic"],
                "score": 0.97,
            }
        ],
        "candidate": {
            "model": "gpt-4.1-mini",
            "replayed": 200,
            "rates": [rate_row("toxic", 0.64, 0.10)],
        },
        "dataset": {
            "version": "2026-11-21T15-30-00Z-j-2f1c",
            "directory": "/var/lib/guardline/datasets",
            "files": {"fmeval": "fmeval.jsonl", "bedrock": "bedrock.jsonl"},
            "records": 640,
        },
        "next_steps": ["Read the worst examples", "Compare the candidate model"],
        "errors": ["evaluator fmeval.toxicity failed: not installed"],
    }


def bare_summary() -> dict[str, Any]:
    """Every optional part absent or empty: no charts at all."""
    summary = full_summary()
    summary.update(
        candidate=None,
        judge=None,
        dataset=None,
        rates=[],
        examples=[],
        timeline=[],
        top_categories=[],
        next_steps=[],
        errors=[],
    )
    return summary


# -- self-contained -------------------------------------------------------------------------

# Attributes whose value a browser may fetch ("xlink:href" and the like match by suffix):
# today's, then legacy ones browsers still honour.
URL_ATTRIBUTES = {"src", "href", "srcset", "poster", "action", "formaction", "data", "ping"}
URL_ATTRIBUTES |= {"background", "cite", "longdesc", "manifest", "codebase", "archive"}
FETCHING_TAGS = {"script", "link", "iframe", "frame", "object", "embed", "base", "portal"}
URL_IN_CSS = re.compile(r"url\(\s*(?!['\"]?#)", re.IGNORECASE)


class Page(HTMLParser):
    """Start tags, their attributes, the text of <style> and of everything else."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in_style = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


def external_references(markup: str) -> list[str]:
    """Everything in ``markup`` that a browser could fetch."""
    page = Page(markup)
    found = [f"<{tag}>" for tag, _ in page.tags if tag in FETCHING_TAGS]
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            url_like = name in URL_ATTRIBUTES or name.endswith(":href")
            if url_like and not value.startswith(("#", "data:")):
                found.append(f"<{tag} {name}={value!r}>")
            if URL_IN_CSS.search(value) or "@import" in value.lower():
                found.append(f"<{tag} {name}={value!r}>")
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            found.append("<meta http-equiv=refresh>")
    for css in page.styles:
        found += [f"css: {m.group(0)}" for m in URL_IN_CSS.finditer(css)]
        found += ["css: @import"] * css.lower().count("@import")
    return found


@pytest.mark.parametrize(
    "bad",
    [
        '<img src="http://example.com/a.png">',
        '<link rel="stylesheet" href="https://example.com/a.css">',
        '<svg><image href="//example.com/a.png"/></svg>',
        '<svg><use xlink:href="other.svg#a"/></svg>',
        '<div style="background: url(http://example.com/a.png)"></div>',
        "<style>@import 'https://example.com/a.css';</style>",
        "<style>body{background:url('file:///etc/passwd')}</style>",
        '<meta http-equiv="refresh" content="0; url=https://example.com">',
    ],
)
def test_the_checker_finds_external_references(bad: str) -> None:
    # The self-contained test below is only as good as this checker.
    assert external_references(f"<html><body>{bad}</body></html>")


def test_page_is_self_contained_with_both_charts_inline() -> None:
    markup = render_html(full_summary())
    assert external_references(markup) == []
    page = Page(markup)
    assert page.count("svg") == 2  # the rates chart and the timeline
    assert not re.search(r"<\?xml|<!DOCTYPE svg|<metadata", markup)
    policy = [
        a["content"]
        for t, a in page.tags
        if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policy
    assert "default-src 'none'" in policy[0]
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids)), "two inline SVGs share one id space"


# -- escaping -------------------------------------------------------------------------------


def hostile_summary() -> dict[str, Any]:
    summary = full_summary()
    trigger = summary["job"]["trigger"]
    trigger["alertname"] = XSS
    trigger["labels"][XSS] = XSS
    trigger["annotations"] = {
        "summary": XSS,
        "description": XSS,
        "runbook": "javascript:alert(3)" + XSS,
    }
    summary["job"]["id"] = XSS
    summary["examples"][0].update(
        prompt=XSS, response=XSS, model=XSS, request_id=XSS, categories=[XSS]
    )
    # A category name reaches the chart's tick labels too, where "$...$" would be mathtext
    # (and an unbalanced one an exception).
    summary["rates"].append(rate_row(XSS + r" $\frac{", 0.9, 0.1, evaluator=XSS))
    summary["top_categories"].append({"evaluator": XSS, "category": XSS, "count": 1, "rate": 0.1})
    summary["evaluators"].append(
        {"name": XSS, "kind": XSS, "backend": XSS, "available": False, "reason": XSS}
    )
    summary["judge"]["prompt"] = XSS
    summary["dataset"]["files"] = {XSS: XSS}
    summary["next_steps"] = [XSS]
    summary["errors"] = [XSS]
    return summary


def test_user_text_appears_only_escaped() -> None:
    markup = render_html(hostile_summary())
    assert "<script" not in markup.lower()
    assert "<img" not in markup.lower()
    page = Page(markup)
    assert page.count("script") == page.count("img") == 0
    assert all(not name.startswith("on") for _, attrs in page.tags for name in attrs)
    assert external_references(markup) == []
    # The reader still sees exactly what the user wrote, as text, in every section.
    assert "".join(page.text).count(XSS) >= 15


# -- optional parts -------------------------------------------------------------------------


def test_optional_parts_absent_still_make_a_sane_page() -> None:
    markup = render_html(bare_summary())
    page = Page(markup)
    text = " ".join(page.text)
    assert page.count("svg") == 0
    assert "toxicity: no rates computed" in text
    assert "No rates to chart." in text
    assert "No timeline." in text
    assert "No examples." in text
    assert "GuardlineToxicitySpike" in text
    assert "1,000" in text  # the key numbers are still there
    for heading in (
        "LLM judge",
        "Candidate model",
        "Dataset written",
        "Top categories",
        "Next steps",
    ):
        assert heading not in text
    assert external_references(markup) == []


@pytest.mark.parametrize(
    "summary",
    [
        {"schema": 1},
        {
            "schema": 1,
            "job": None,
            "counts": None,
            "rates": None,
            "timeline": None,
            "examples": None,
        },
        {
            "schema": 1,
            "job": {"trigger": {"source": "cli"}},
            "rates": [{"evaluator": "toxicity"}],
            "timeline": [{}],
        },
    ],
    ids=["nothing", "nulls", "fragments"],
)
def test_missing_parts_are_tolerated(summary: dict[str, Any]) -> None:
    text = " ".join(Page(render_html(summary)).text)
    assert "no rates computed" in text


def test_a_rate_over_no_samples_is_shown_but_not_charted() -> None:
    # A Wilson rate over 0 samples is NaN, which orjson writes as null.
    summary = full_summary()
    empty = rate_row("self_harm", 0.0, 0.0)
    empty["window"].update(count=0, n=0, rate=None)
    summary["rates"] = [empty]
    page = Page(render_html(summary))
    assert "self_harm" in " ".join(page.text)
    assert page.count("svg") == 1  # the timeline only


# -- content --------------------------------------------------------------------------------


def headline(summary: dict[str, Any]) -> str:
    """The <h1>'s text."""
    found = re.search(r"<h1>(.*?)</h1>", render_html(summary), re.DOTALL)
    assert found
    return re.sub(r"<[^>]+>", "", found.group(1))


def test_headline_states_the_verdict() -> None:
    summary = full_summary()
    assert (
        headline(summary)
        == "toxicity:toxic rate 64.0% [61.0–67.0] vs baseline 1.2% [0.7–2.1] — significantly higher"
    )
    summary["rates"][0]["significant"] = False
    summary["rates"][1]["significant"] = False
    summary["rates"][2]["significant"] = False
    assert headline(summary).endswith("vs baseline 1.2% [0.7–2.1] — not significantly different")
    summary["rates"] = [rate_row("toxic", 0.01, 0.2)]
    assert headline(summary).endswith("— significantly lower")


def test_sections_come_in_order() -> None:
    markup = render_html(full_summary())
    order = [
        "<h1>",
        "Samples in window",
        "Rates, window vs baseline",
        "Samples over time",
        "<h2>Rates</h2>",
        "Top categories",
        "Worst examples",
        "Evaluators",
        "LLM judge",
        "Candidate model",
        "Dataset written",
        "Next steps",
        "Errors",
    ]
    positions = [markup.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "fmeval is not installed" in markup
    response = full_summary()["examples"][0]["response"]
    assert f"({len(response) - 500} more characters)" in markup  # cut at 500


def test_the_rates_chart_keeps_the_largest_differences() -> None:
    summary = full_summary()
    summary["rates"] = [rate_row(f"c{i}", 0.02 * i, 0.01) for i in range(1, 21)]
    markup = render_html(summary)
    rates_svg = markup[markup.index("<svg") : markup.index("</svg>")]
    # One bar per category shown plus the legend's swatch.
    assert rates_svg.count(f"fill: {WINDOW_COLOUR}") == MAX_CHART_CATEGORIES + 1
    assert f"the {MAX_CHART_CATEGORIES} largest differences of 20" in markup
    assert markup.count("<td>c") == 20  # the table keeps every row


# -- files ----------------------------------------------------------------------------------


def test_write_report_writes_both_files(tmp_path: Path) -> None:
    summary = full_summary()
    directory = tmp_path / "reports" / "j-2f1c"
    (directory.parent).mkdir()
    report, summary_json = write_report(summary, directory)
    assert (report, summary_json) == (directory / "report.html", directory / "summary.json")
    assert report.read_text() == render_html(summary)
    raw = summary_json.read_bytes()
    assert orjson.loads(raw) == summary
    assert raw.startswith(b'{\n  "baseline": {')  # indented, keys sorted
    summary["errors"] = ["second run"]
    write_report(summary, directory)  # replaces the first
    assert orjson.loads(summary_json.read_bytes())["errors"] == ["second run"]
    assert sorted(p.name for p in directory.iterdir()) == ["report.html", "summary.json"]


def test_write_report_writes_nothing_when_the_summary_is_no_json(tmp_path: Path) -> None:
    summary: dict[str, Any] = full_summary()
    summary["counts"] = {"window": object()}  # renders (as text) but is no JSON
    with pytest.raises(TypeError):
        write_report(summary, tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- in a real browser ----------------------------------------------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,2400",
    # No network at all: every name fails to resolve (IP literals included), and whatever
    # still tries goes to a proxy on the discard port, loopback included (Chromium
    # otherwise never proxies loopback). A hidden external load shows as a blank.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
)


def screenshots(pages: dict[str, Path], tmp_path: Path) -> tuple[dict[str, Any], float]:
    """Each page as Chromium draws it (RGB pixel arrays), and the seconds that took; one
    browser per page, all at once (each needs its own profile)."""
    chromium = debian_tool("chromium", "chromium")
    home = tmp_path / "home"  # crash reports and dconf land here, not in the user's home
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    started = time.monotonic()
    running = {}
    for n, (name, page) in enumerate(pages.items()):
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / f'profile-{n}'}",
            f"--screenshot={tmp_path / f'shot-{n}.png'}",
            page.as_uri(),
        ]
        running[name] = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
    shots = {}
    try:
        for n, (name, process) in enumerate(running.items()):
            _, stderr = process.communicate(timeout=90)
            assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
            with Image.open(tmp_path / f"shot-{n}.png") as image:
                shots[name] = np.asarray(image.convert("RGB"))
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return shots, time.monotonic() - started


def pixels_of(shot: Any, colour: str, tolerance: int = 6) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(shot.astype(int) - rgb).max(axis=2) <= tolerance).sum())


@pytest.mark.e2e
def test_chromium_draws_both_charts(tmp_path: Path) -> None:
    full = full_summary()
    summaries = {
        "report": full,
        "rates chart only": {**full, "timeline": []},
        "timeline only": {**full, "rates": []},
        # The control: the same page without charts. It has neither colour, so what the
        # others show is the charts', and would be missing if the SVG did not render.
        "no charts": bare_summary(),
    }
    pages = {
        name: write_report(summary, tmp_path / f"page-{n}")[0]
        for n, (name, summary) in enumerate(summaries.items())
    }
    shots, seconds = screenshots(pages, tmp_path)
    counts = {
        name: (pixels_of(shot, WINDOW_COLOUR), pixels_of(shot, BASELINE_COLOUR))
        for name, shot in shots.items()
    }
    found = f"(window, baseline) pixels {counts}; chromium took {seconds:.1f}s"
    assert all(shot.shape == (2400, 1280, 3) for shot in shots.values()), found
    # Thresholds are about a third of what Chromium 156 draws for these summaries.
    assert counts["report"][0] > 25_000, found
    assert counts["report"][1] > 6_000, found
    assert min(counts["rates chart only"]) > 700, found  # baseline bars are short
    assert min(counts["timeline only"]) > 5_000, found
    assert max(counts["no charts"]) < 50, found


class Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server that records every request it gets."""
    hits: list[str] = []
    handler = type("Handler", (Canary,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.e2e
def test_chromium_cannot_reach_the_network(tmp_path: Path, canary: tuple[int, list[str]]) -> None:
    # Without this the screenshot test could pass on a page that fetched its charts.
    port, hits = canary
    page = tmp_path / "fetching.html"
    page.write_text(
        f'<img src="http://127.0.0.1:{port}/ip.png"><img src="http://localhost:{port}/name.png">'
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/a.css">'
    )
    screenshots({"fetching": page}, tmp_path)
    assert hits == []
