"""The Grafana dashboards: the committed JSON is exactly what the code makes, every query
names metrics Guardline exports and labels those metrics carry, the panels are wired to
the datasource variable, and promtool parses every query."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from guardline import dashboards
from guardline.dashboards import kit
from guardline.dashboards.__main__ import main
from guardline.detectors.pii import PiiDetector
from guardline.detectors.stereotype import StereotypeDetector
from guardline.detectors.toxicity import ToxicityDetector
from guardline.exporters import names as n
from guardline.reeval.jobs import FINAL, Job, State, new_id, now
from guardline.reeval.results import ResultMetrics
from guardline.settings import Action, StereotypeSettings, load_settings
from tests.conftest import debian_tool

ROOT = Path(__file__).resolve().parents[1]
DIRECTORY = ROOT / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLES = {
    "model": "gen_ai_request_model",
    "route": "guardline_route",
    "application": "guardline_app",
    "evaluation": "guardline_reeval_evaluation",
}
FILTERS = {
    "guardline-overview": ["model", "route", "application"],
    "guardline-guardrails": ["model", "route", "application"],
    "guardline-reeval": ["evaluation"],
}
"""Each dashboard's variables after the data source, by uid: the re-evaluation receiver's
metrics carry no model, route or application."""

SAMPLES = {sample: spec for spec in n.INSTRUMENTS for sample in spec.samples}
"""Every series name a scrape can show -> its instrument."""
ATTRIBUTE_LABELS = {
    kit.label(value)
    for name, value in vars(n).items()
    if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", value)
}
"""Label names derived from names.py's attribute constants (``error.type`` -> ``error_type``)."""


def _docs() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in dashboards.rendered().items()}


# -- a small PromQL reader: which metrics and labels an expression uses -----------------------
_STRING = r'"(?:[^"\\]|\\.)*"'
_SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\{([^}]*)\}")
_MATCHER = re.compile(rf"\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*({_STRING})\s*(?:,|$)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_REPLACE = re.compile(rf',\s*"(\w+)"\s*,\s*{_STRING}\s*,\s*"(\w+)"\s*,\s*{_STRING}\s*\)')
_IDENTIFIER = re.compile(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)\b(?!\s*\()")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
_KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}


@dataclass
class Usage:
    metrics: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def analyse(expr: str) -> Usage:
    """Every metric name in ``expr`` must be an instrument's sample, every label in a
    matcher must be on that metric, every grouping label on some metric of the expression,
    and a dashboard variable only as ``=~`` on its own label."""
    out = Usage()
    rest = expr
    derived = {"le"}
    for destination, source in _LABEL_REPLACE.findall(rest):
        derived.add(destination)
        if source not in ATTRIBUTE_LABELS:
            out.problems.append(f"label_replace reads unknown label {source}")
    rest = _LABEL_REPLACE.sub(")", rest)
    for match in _SELECTOR.finditer(rest):
        metric, body = match.group(1), match.group(2)
        if metric is None:
            out.problems.append(f"selector without a metric name: {match.group(0)}")
            continue
        out.metrics.add(metric)
        spec = SAMPLES.get(metric)
        if spec is None:
            continue  # reported below with the other unknown names
        matchers = _MATCHER.findall(body)
        if _MATCHER.sub("", body).strip():
            out.problems.append(f"unparsed matchers in {match.group(0)}")
        carried = {kit.label(a) for a in kit.LABELS[spec]}
        for name, op, value in matchers:
            if name not in ATTRIBUTE_LABELS:
                out.problems.append(f"{metric}: {name} is no Guardline attribute")
            elif name not in carried:
                out.problems.append(f"{metric} has no label {name}")
            variable = re.fullmatch(r'"\$\{?(\w+)\}?"', value)
            if variable and (op != "=~" or VARIABLES.get(variable.group(1)) != name):
                out.problems.append(f"{metric}: variable used as {name}{op}{value}")
    rest = _SELECTOR.sub(lambda m: m.group(1) or "", rest)
    grouped: set[str] = set()
    for labels in _GROUPING.findall(rest):
        grouped |= {label.strip() for label in labels.split(",") if label.strip()}
    rest = _GROUPING.sub(" ", rest)
    rest = re.sub(_STRING, " ", re.sub(r"\[[^\]]*\]", " ", rest))
    out.metrics |= {m for m in _IDENTIFIER.findall(rest) if m not in _KEYWORDS}
    for metric in sorted(out.metrics - SAMPLES.keys()):
        out.problems.append(f"{metric} is not a metric Guardline exports")
    carried_by_any = derived | {
        kit.label(a) for m in out.metrics if m in SAMPLES for a in kit.LABELS[SAMPLES[m]]
    }
    for name in sorted(grouped - carried_by_any):
        out.problems.append(f"grouping by {name}, which none of {sorted(out.metrics)} carries")
    return out


def test_the_reader_catches_typos_and_missing_labels() -> None:
    assert analyse('sum(rate(guardline_request_total{guardline_route=~"$route"}[5m]))').problems
    assert analyse("sum(guardline_streams_active)").problems == []
    assert analyse("sum(guardline_stream_active)").problems
    assert analyse('sum(guardline_streams_active{guardline_app=~"$application"})').problems
    assert analyse('sum(guardline_requests_total{guardline_route="$route"})').problems
    assert analyse('sum(guardline_requests_total{guardline_route=~"$model"})').problems
    assert analyse("sum by (guardline_app) (guardline_streams_active)").problems
    assert analyse("histogram_quantile(0.5, sum by (le) (rate(x_bucket[5m])))").problems
    assert analyse('sum(guardline_requests_total{error_type!=""}) * 3600').problems == []


# -- the committed JSON ---------------------------------------------------------------------
def test_committed_json_is_what_the_code_makes() -> None:
    for name, text in dashboards.rendered().items():
        path = DIRECTORY / name
        assert path.is_file(), f"{path} is missing: run `make dashboards`"
        assert path.read_bytes() == text.encode("utf-8"), (
            f"{path} differs from guardline/dashboards: run `make dashboards` and commit it"
        )
    assert dashboards.stale(DIRECTORY) == []


def test_check_passes_in_a_fresh_interpreter_with_another_hash_seed() -> None:
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-m", "guardline.dashboards", "--check", "--dir", str(DIRECTORY)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_names_the_file_that_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--write", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(dashboards.DASHBOARDS)
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    changed = tmp_path / "guardrails.json"
    changed.write_text(changed.read_text().replace("Block rate", "Blocked rate"))
    capsys.readouterr()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "guardrails.json" in err
    assert "overview.json" not in err
    (tmp_path / "overview.json").unlink()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    assert "overview.json" in capsys.readouterr().err


# -- the dashboards' shape ------------------------------------------------------------------
def test_identity_tags_time_and_variables() -> None:
    docs = _docs()
    assert {doc["uid"] for doc in docs.values()} == set(FILTERS)
    for doc in docs.values():
        assert doc["title"].startswith("Guardline / ")
        assert doc["tags"] == ["guardline"]
        assert doc["time"] == {"from": "now-3h", "to": "now"}
        assert doc["refresh"]
        assert "id" not in doc  # provisioned dashboards are matched by uid
        variables = {v["name"]: v for v in doc["templating"]["list"]}
        assert list(variables) == ["datasource", *FILTERS[doc["uid"]]]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for name in FILTERS[doc["uid"]]:
            label = VARIABLES[name]
            variable = variables[name]
            assert variable["type"] == "query"
            assert variable["datasource"] == DATASOURCE
            assert variable["multi"] is True
            assert variable["includeAll"] is True
            assert variable["allValue"] == ".*"
            query = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert query is not None, variable["query"]
            assert query.group(2) == label
            usage = analyse(query.group(1))
            assert usage.problems == [], usage.problems
            assert label in {kit.label(a) for m in usage.metrics for a in kit.LABELS[SAMPLES[m]]}


def test_panels_have_ids_titles_datasource_and_ref_ids() -> None:
    for name, doc in _docs().items():
        every = list(dashboards.panels(doc))
        ids = [panel.get("id") for panel in every]
        assert all(isinstance(i, int) and i > 0 for i in ids), (name, ids)
        assert len(ids) == len(set(ids)), (name, ids)
        titles = [panel["title"] for panel in every]
        assert len(titles) == len(set(titles)), name
        for panel in every:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] == "row":
                assert panel["panels"] == []  # expanded rows: panels follow at top level
                continue
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert panel.get("description"), panel["title"]
            assert panel["fieldConfig"]["defaults"].get("unit") or panel["type"] == "table"
            targets = panel["targets"]
            assert targets, panel["title"]
            refs = [t["refId"] for t in targets]
            assert all(refs), (panel["title"], refs)
            assert len(refs) == len(set(refs)), (panel["title"], refs)
            for target in targets:
                assert target["datasource"] == DATASOURCE, panel["title"]
                assert target["expr"].strip(), panel["title"]


def test_every_query_uses_known_metrics_and_labels() -> None:
    used: set[str] = set()
    for doc in _docs().values():
        for query in dashboards.panel_queries(doc):
            usage = analyse(query.expr)
            assert usage.problems == [], (query.dashboard, query.title, query.ref, usage.problems)
            assert usage.metrics, query.expr
            used |= usage.metrics
    # Every instrument but Guardline's own recording cost, score (and its superseded twin)
    # and per-chunk gaps is shown.
    shown = {SAMPLES[m] for m in used}
    assert set(n.INSTRUMENTS) - shown == {
        n.RECORDING_CPU,
        n.SCORE,
        n.SCORE_SUPERSEDED,
        n.TIME_PER_OUTPUT_CHUNK,
    }


def test_feedback_is_counted_once_per_call_wherever_it_is_shown() -> None:
    """Every query over a feedback instrument takes its superseded twin out (a later post
    on a call replaces the earlier), except the panel target showing the replacements."""
    twins = {m for spec in n.SUPERSEDED.values() for m in spec.samples}
    posts = {m for spec in n.SUPERSEDED for m in spec.samples}
    for doc in _docs().values():
        for query in dashboards.panel_queries(doc):
            metrics = analyse(query.expr).metrics
            if metrics & posts:
                assert metrics & twins, (query.title, query.expr)
                assert " - (" in query.expr, query.expr
                assert " or 0 * " in query.expr, query.expr


def test_variables_apply_to_the_metrics_that_carry_their_label() -> None:
    """Each variable filters every query whose metric has its label; none filters one
    without it (such a filter would match nothing)."""
    for doc in _docs().values():
        for query in dashboards.panel_queries(doc):
            for match in _SELECTOR.finditer(query.expr):
                spec = SAMPLES[match.group(1)]
                carried = {kit.label(a) for a in kit.LABELS[spec]}
                for variable, label in VARIABLES.items():
                    applied = f'{label}=~"${variable}"' in match.group(2)
                    assert applied == (label in carried), (query.title, match.group(0))


def test_label_table_covers_every_instrument_with_known_attributes() -> None:
    assert set(kit.LABELS) == set(n.INSTRUMENTS)
    for spec, attributes in kit.LABELS.items():
        assert {kit.label(a) for a in attributes} <= ATTRIBUTE_LABELS, spec.name
    assert kit.label(n.REQUEST_MODEL) == "gen_ai_request_model"
    assert kit.label(n.ROUTE) == "guardline_route"
    assert kit.label(n.APP) == "guardline_app"
    assert kit.label(n.ERROR_TYPE) == "error_type"


def test_label_values_are_the_ones_guardline_writes() -> None:
    assert PiiDetector.name == kit.PII
    assert ToxicityDetector.name == kit.TOXICITY
    assert StereotypeDetector.name == kit.STEREOTYPE
    assert {kit.BLOCK, kit.REDACT} <= set(get_args(Action))
    assert kit.ACCEPTED in n.FEEDBACK_OUTCOMES
    assert kit.REGENERATED in n.SIGNAL_VALUES
    findings = StereotypeDetector(StereotypeSettings()).detect("The nurse said she would be late.")
    assert {(f.category, f.detail) for f in findings} == {(kit.GENDERED_OCCUPATION, "nurse:she")}
    assert kit.FAILED in FINAL


def test_the_receiver_exports_the_labels_the_table_names(tmp_path: Path) -> None:
    """``guardline reeval receiver``'s /metrics after a done and a failed job: every
    re-evaluation family is there and carries exactly its ``LABELS``, with the label values
    the re-evaluation dashboard filters on."""
    summary = tmp_path / "summary.json"
    rates = {kit.WINDOW: {"rate": 0.3}, kit.BASELINE: {"rate": 0.1}}
    summary.write_bytes(
        orjson.dumps(
            {
                "job": {"duration_seconds": 42.0},
                "rates": [{"evaluator": "judge", "category": "toxicity", **rates}],
                "counts": {kit.WINDOW: 20, kit.BASELINE: 40},
            }
        )
    )
    finished = now().isoformat()
    metrics = ResultMetrics(load_settings().telemetry)
    try:
        ended: tuple[tuple[State, str | None], ...] = (("done", str(summary)), ("failed", None))
        for state, path in ended:
            job = Job(new_id(), "toxicity", finished, finished, {}, state=state)
            job.finished, job.summary = finished, path
            metrics.record(job)
        page = metrics.scrape().decode()
    finally:
        metrics.shutdown()
    reeval = {n.REEVAL_JOBS, n.REEVAL_DURATION, n.REEVAL_RATE, n.REEVAL_SAMPLES, n.REEVAL_LAST}
    shown: set[n.Instrument] = set()
    values: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            spec = SAMPLES.get(sample.name)
            if spec not in reeval:
                continue
            shown.add(spec)
            assert set(sample.labels) - {"le"} == {kit.label(a) for a in kit.LABELS[spec]}, sample
            for name, value in sample.labels.items():
                values.setdefault(name, set()).add(value)
    assert shown == reeval
    assert values[kit.label(n.SET)] == {kit.WINDOW, kit.BASELINE}
    assert values[kit.label(n.JOB_STATE)] == {"done", kit.FAILED}


def test_selectors_refuse_labels_a_metric_lacks() -> None:
    assert kit.series(n.ACTIVE_STREAMS) == 'guardline_streams_active{guardline_route=~"$route"}'
    assert kit.series(n.SPOOL_BYTES) == "guardline_samples_spool_size_bytes"
    assert kit.series(n.REEVAL_LAST) == (
        'guardline_reeval_last_completed_seconds{guardline_reeval_evaluation=~"$evaluation"}'
    )
    with pytest.raises(ValueError, match="no label guardline_app"):
        kit.series(n.ACTIVE_STREAMS, kit.eq(n.APP, "x"))
    with pytest.raises(ValueError, match="no label"):
        kit.sum_rate(n.SAMPLES_SENT, by=(n.SINK,))
    with pytest.raises(ValueError, match="histogram"):
        kit.series(n.OPERATION_DURATION)
    with pytest.raises(ValueError, match="no sum series"):
        kit.series(n.REQUESTS, part="sum")


def test_panel_queries_fill_in_the_variables() -> None:
    queries = [q for doc in _docs().values() for q in dashboards.panel_queries(doc)]
    assert len(queries) > 40
    for q in queries:
        # label_replace's "$1" is a capture group, not a variable: it stays
        assert "$" not in q.promql.replace('"$1"', ""), q.promql
        if "[" in q.expr:
            assert re.search(r"\[(5m|1h)\]", q.promql), q.promql
    skew = next(q for q in queries if q.title.startswith("Stereotype skew"))
    assert '"$1"' in skew.promql  # label_replace's capture group is not a variable
    chosen = dashboards.panel_queries(_docs()["overview.json"], {"model": "gpt-4o"})
    assert 'gen_ai_request_model=~"gpt-4o"' in chosen[0].promql
    variables = dashboards.variable_queries(_docs()["overview.json"])
    assert variables["route"] == (
        'label_values(guardline_requests_total{gen_ai_request_model=~".*"}, guardline_route)'
    )
    reeval = _docs()["reeval.json"]
    assert dashboards.variable_queries(reeval) == {
        "evaluation": "label_values(guardline_reeval_samples, guardline_reeval_evaluation)"
    }
    chosen = dashboards.panel_queries(reeval, {"evaluation": "toxicity"})
    assert all('guardline_reeval_evaluation=~"toxicity"' in q.promql for q in chosen)


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    promtool = debian_tool("promtool", "prometheus")
    rules = []
    for doc in _docs().values():
        for q in dashboards.panel_queries(doc):
            record = f"dashboard:{q.dashboard.replace('-', '_')}:panel_{q.panel}_{q.ref}"
            rules.append({"record": record, "expr": q.promql})
    path = tmp_path / "dashboards.rules.yml"
    # JSON is YAML
    path.write_text(json.dumps({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
