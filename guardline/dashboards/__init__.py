"""Grafana dashboards as code, built with grafana-foundation-sdk from the metric-name
constants, rendered into the JSON committed under ``dashboards/``.

``python -m guardline.dashboards --write`` regenerates the files; ``--check`` fails when a
committed file differs from what the code produces. ``panel_queries`` lists every panel's
PromQL with the Grafana variables filled in, for tests that run it against Prometheus.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    # The SDK's classic dashboard models warn, when imported, that dashboardv2 (Grafana
    # 12's resource API) is preferred. The classic JSON model is deliberate: it is what file
    # provisioning, the Grafana sidecar and dashboard import load. Every module here that
    # imports the SDK is imported inside this block.
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    from grafana_foundation_sdk.builders.dashboard import Dashboard
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    from guardline.dashboards import guardrails, overview, reeval

DASHBOARDS: Mapping[str, Callable[[], Dashboard]] = {
    "overview.json": overview.build,
    "guardrails.json": guardrails.build,
    "reeval.json": reeval.build,
}
"""File name under ``dashboards/`` -> the function that builds it."""

DIRECTORY = Path("dashboards")


def render(build: Callable[[], Dashboard]) -> str:
    """The dashboard's JSON: keys sorted, two-space indent, ASCII, a final newline, so the
    same code (and SDK version) always gives the same bytes."""
    text: str = JSONEncoder(sort_keys=True, indent=2).encode(build().build())
    return text + "\n"


def rendered() -> dict[str, str]:
    """Every dashboard's JSON, by file name."""
    return {name: render(build) for name, build in DASHBOARDS.items()}


def write(directory: Path = DIRECTORY) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in rendered().items():
        path = directory / name
        with path.open("w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        paths.append(path)
    return paths


def stale(directory: Path = DIRECTORY) -> list[Path]:
    """The committed files that are missing or differ from what the code produces."""
    out = []
    for name, text in rendered().items():
        path = directory / name
        if not path.is_file() or path.read_bytes() != text.encode("utf-8"):
            out.append(path)
    return out


# -- the queries in a dashboard's JSON -------------------------------------------------------
BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
"""What Grafana's built-in variables become outside Grafana (``$__rate_interval`` must be at
least four scrape intervals)."""

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


def substitute(expr: str, variables: Mapping[str, str], default: str = ".*") -> str:
    """``expr`` as plain PromQL: built-in variables by ``BUILTINS``, the dashboard's own
    (``variables``) by their value or ``default`` (``.*``, what "All" sends). Anything else
    that looks like a variable (``"$1"`` in ``label_replace``) is left alone, as Grafana
    leaves it."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in variables:
            return variables[name] or default
        return match.group(0)

    return _VARIABLE.sub(replace, expr)


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard: str
    """The dashboard's uid."""
    panel: int
    title: str
    ref: str
    expr: str
    """As in the JSON, with Grafana variables."""
    promql: str
    """With the variables filled in: what Prometheus can run."""


def panels(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in doc.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def template_variables(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("templating", {}).get("list", []))


def panel_queries(
    doc: Mapping[str, Any], values: Mapping[str, str] | None = None
) -> list[PanelQuery]:
    """Every panel target's PromQL in ``doc`` (a dashboard's JSON), in panel order, with
    the dashboard's variables set to ``values`` (default: all of them ``.*``)."""
    names = {v["name"]: "" for v in template_variables(doc)}
    names.update(values or {})
    return [
        PanelQuery(
            doc["uid"],
            panel["id"],
            panel.get("title", ""),
            target["refId"],
            target["expr"],
            substitute(target["expr"], names),
        )
        for panel in panels(doc)
        for target in panel.get("targets", [])
        if "expr" in target and not target.get("hide", False)
    ]


def variable_queries(
    doc: Mapping[str, Any], values: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The query variables' ``label_values(...)`` queries, by variable name, with the
    variables they refer to filled in."""
    names = {v["name"]: "" for v in template_variables(doc)}
    names.update(values or {})
    return {
        v["name"]: substitute(str(v["query"]), names)
        for v in template_variables(doc)
        if v.get("type") == "query"
    }


def load(name: str, directory: Path = DIRECTORY) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((directory / name).read_text(encoding="utf-8"))
    return doc
