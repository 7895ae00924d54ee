"""The alert rules: valid for promtool, unit-tested by promtool (each alert firing and not
firing), and built only from metric names Guardline exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from guardline.exporters import names as n
from tests.conftest import debian_tool

ALERTS = Path(__file__).resolve().parents[1] / "dashboards" / "alerts"
RULES = ALERTS / "guardline.rules.yml"
TESTS = ALERTS / "guardline.rules.test.yml"
_SERIES = re.compile(r"\b((?:gen_ai|guardline)_[a-z0-9_]+)\b")
_RECORDED = re.compile(r"\bguardline:[a-z0-9_:]+")
_NOT_SERIES = re.compile(r"\{[^}]*\}|\b(?:by|without)\s*\([^)]*\)")
"""Label matchers and grouping clauses: their names are labels, not series."""


def _promtool() -> str:
    return debian_tool("promtool", "prometheus")


def _rules() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", str(TESTS)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ALERTS,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {str(rule["alert"]) for rule in _rules() if "alert" in rule}
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown staying quiet"


def test_alerts_have_severity_summary_description_and_runbook() -> None:
    readme = (ALERTS.parents[1] / "README.md").read_text().lower()
    for rule in _rules():
        if "alert" not in rule:
            continue
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict)
        assert isinstance(annotations, dict)
        assert labels["severity"] in {"critical", "warning"}
        assert {"summary", "description", "runbook"} <= set(annotations)
        anchor = str(annotations["runbook"]).split("#")[1]
        assert f"### {anchor}" in readme.replace("`", ""), f"no runbook section for {anchor}"


def test_rules_use_only_exported_metric_names() -> None:
    known = {sample for instrument in n.INSTRUMENTS for sample in instrument.samples}
    recorded = {str(rule["record"]) for rule in _rules() if "record" in rule}
    for rule in _rules():
        expr = _NOT_SERIES.sub("", str(rule["expr"]))
        used = set(_SERIES.findall(expr))
        records = set(_RECORDED.findall(expr))
        assert used or records, rule
        assert used <= known, (rule.get("alert") or rule.get("record"), used - known)
        assert records <= recorded, (rule.get("alert") or rule.get("record"), records - recorded)
