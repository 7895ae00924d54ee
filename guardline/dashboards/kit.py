"""What every dashboard shares: the data source, template variables, PromQL built from the
metric-name constants, and panel builders with the options set that the SDK leaves at
unhelpful defaults.

Every metric name comes from ``guardline.exporters.names``; every label name is an attribute
constant from there with its dots turned into underscores (what OpenTelemetry's Prometheus
exporter does). ``LABELS`` says which labels each instrument carries (read off
``guardline/exporters/telemetry.py``, and ``guardline/reeval/results.py`` for the
re-evaluation receiver's); a selector refuses a label its metric lacks, and a
template variable applies only to metrics that carry its label, so no query filters on a
label that is not there and silently matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from guardline.exporters import names as n
from guardline.exporters.names import Instrument

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
"""Every panel, target and query variable reads the data source the viewer picked."""

RATE_INTERVAL = "$__rate_interval"
RANGE = "$__range"
TAGS = ["guardline"]

# Label values Guardline writes: detector names (guardline/detectors), policy actions
# (guardline.settings.Action), the stereotype category whose detail is ``occupation:pronoun``,
# a feedback outcome and a response signal (names.FEEDBACK_OUTCOMES, names.SIGNAL_VALUES).
PII = "pii"
TOXICITY = "toxicity"
STEREOTYPE = "stereotype"
BLOCK = "block"
REDACT = "redact"
GENDERED_OCCUPATION = "gendered_occupation"
ACCEPTED = "accepted"
REGENERATED = "regenerated"
# A re-evaluation job's final state (guardline.reeval.jobs.FINAL) and the two sets of
# samples an evaluation compares (guardline/reeval/results.py).
FAILED = "failed"
WINDOW = "window"
BASELINE = "baseline"


def label(attribute: str) -> str:
    """The Prometheus label name of an attribute: ``gen_ai.request.model`` becomes
    ``gen_ai_request_model`` (characters outside ``[a-zA-Z0-9_]`` become ``_``)."""
    return _INVALID_LABEL_CHARS.sub("_", attribute)


_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")

# -- which labels each instrument carries (guardline/exporters/telemetry.py) ------------------
_COMMON = (n.PROVIDER_NAME, n.ROUTE, n.REQUEST_MODEL, n.APP, n.UPSTREAM, n.STREAM)
"""``_build_keys``: every exchange's labels."""
_GENAI = (*_COMMON, n.OPERATION_NAME, n.ERROR_TYPE)
"""GenAI operations add the operation name, and ``error.type`` when the call failed."""
_FEEDBACK = (n.PROVIDER_NAME, n.ROUTE, n.REQUEST_MODEL, n.APP)
"""Feedback is attributed from the signed request id: no upstream, stream or error."""

LABELS: Mapping[Instrument, frozenset[str]] = {
    spec: frozenset(attributes)
    for spec, attributes in (
        (n.OPERATION_DURATION, _GENAI),
        (n.TOKEN_USAGE, (*_GENAI, n.TOKEN_TYPE, n.ESTIMATED)),
        (n.TIME_TO_FIRST_CHUNK, _GENAI),
        (n.TIME_PER_OUTPUT_CHUNK, _GENAI),
        (n.REQUESTS, (*_COMMON, n.OUTCOME, n.ERROR_TYPE)),
        (n.OVERHEAD, _COMMON),
        (n.ACTIVE_STREAMS, (n.PROVIDER_NAME, n.ROUTE)),
        (n.FINDINGS, (*_COMMON, n.DETECTOR, n.CATEGORY, n.DIRECTION, n.ACTION, n.DETAIL)),
        (n.ACTIONS, (*_COMMON, n.ACTION)),
        (n.COST, (*_GENAI, n.ESTIMATED)),
        (n.UNPRICED, _GENAI),
        (n.ESTIMATED_TOKENS, _GENAI),
        (n.FEEDBACK, (*_FEEDBACK, n.FEEDBACK_OUTCOME)),
        (n.RETAINED, _FEEDBACK),
        (n.SCORE, _FEEDBACK),
        (n.FEEDBACK_SUPERSEDED, (*_FEEDBACK, n.FEEDBACK_OUTCOME)),
        (n.RETAINED_SUPERSEDED, _FEEDBACK),
        (n.SCORE_SUPERSEDED, _FEEDBACK),
        (n.SIGNALS, (*_COMMON, n.SIGNAL)),
        (n.RECORDING_CPU, ()),
        (n.DETECTOR_BACKEND, (n.DETECTOR, n.BACKEND)),
        (n.SAMPLES_SELECTED, (n.SAMPLE_REASON,)),
        (n.SAMPLES_WRITTEN, (n.SINK,)),
        (n.SAMPLES_SENT, ()),
        (n.SAMPLES_SPOOLED, ()),
        (n.SAMPLES_REPLAYED, ()),
        (n.SAMPLES_DROPPED, (n.SINK, n.DROP_REASON)),
        (n.SPOOL_BYTES, ()),
        (n.SPOOL_LIMIT, ()),
        (n.SENDER_LAG, ()),
        (n.KAFKA_CONNECTED, ()),
        (n.KAFKA_ERRORS, ()),
        # guardline reeval receiver's /metrics (guardline/reeval/results.py)
        (n.REEVAL_JOBS, (n.EVALUATION, n.JOB_STATE)),
        (n.REEVAL_DURATION, (n.EVALUATION,)),
        (n.REEVAL_RATE, (n.EVALUATION, n.EVALUATOR, n.CATEGORY, n.SET)),
        (n.REEVAL_SAMPLES, (n.EVALUATION, n.SET)),
        (n.REEVAL_LAST, (n.EVALUATION,)),
    )
}


# -- template variables ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    title: str
    attribute: str
    source: Instrument
    """The metric whose values of ``attribute`` the picker lists."""


VARIABLES = (
    Variable("model", "Model", n.REQUEST_MODEL, n.REQUESTS),
    Variable("route", "Route", n.ROUTE, n.REQUESTS),
    Variable("application", "Application", n.APP, n.REQUESTS),
)
"""The proxy dashboards' filters. Multi-value with "All" (``.*``), used as
``label=~"$name"`` on every metric that has the label; each narrows the choices of the ones
after it."""

REEVAL_VARIABLES = (Variable("evaluation", "Evaluation", n.EVALUATION, n.REEVAL_SAMPLES),)
"""The re-evaluation dashboard's filter: the receiver's metrics carry no model, route or
application."""

EVERY_VARIABLE = (*VARIABLES, *REEVAL_VARIABLES)
"""What a selector applies by default. A metric carries the labels of one set only (the
proxy's or the receiver's), so a query gets the variables of the dashboard its metric is
shown on."""


def variables(
    chosen: Sequence[Variable] = VARIABLES,
) -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    out: list[dashboard.DatasourceVariable | dashboard.QueryVariable] = [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
    ]
    for index, variable in enumerate(chosen):
        narrowed = series(variable.source, variables=chosen[:index])
        out.append(
            dashboard.QueryVariable(variable.name)
            .label(variable.title)
            .datasource(DATASOURCE)
            .query(f"label_values({narrowed}, {label(variable.attribute)})")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    return out


# -- PromQL -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Matcher:
    attribute: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    def __str__(self) -> str:
        value = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{label(self.attribute)}{self.op}"{value}"'


def eq(attribute: str, value: str) -> Matcher:
    return Matcher(attribute, "=", value)


def ne(attribute: str, value: str) -> Matcher:
    return Matcher(attribute, "!=", value)


def matches(attribute: str, regex: str) -> Matcher:
    return Matcher(attribute, "=~", regex)


Part = Literal["bucket", "count", "sum"]


def series(
    spec: Instrument,
    *matchers: Matcher,
    part: Part | None = None,
    variables: Sequence[Variable] = EVERY_VARIABLE,
) -> str:
    """``metric{...}``: the template variables whose label the metric has, then
    ``matchers``. ``part`` picks a histogram's bucket, count or sum series."""
    if spec.kind == "histogram":
        if part is None:
            raise ValueError(f"{spec.name} is a histogram: say which part (bucket/count/sum)")
        name = f"{spec.prometheus}_{part}"
    elif part is not None:
        raise ValueError(f"{spec.name} is a {spec.kind}: it has no {part} series")
    else:
        name = spec.samples[0]
    assert name in spec.samples, name
    used = [
        Matcher(v.attribute, "=~", f"${v.name}") for v in variables if v.attribute in LABELS[spec]
    ]
    for matcher in matchers:
        _check_labels(spec, [matcher.attribute])
        used.append(matcher)
    return name + ("{" + ", ".join(map(str, used)) + "}" if used else "")


def _check_labels(spec: Instrument, attributes: Iterable[str]) -> None:
    missing = [a for a in attributes if a not in LABELS[spec]]
    if missing:
        raise ValueError(f"{spec.prometheus} has no label {', '.join(map(label, missing))}")


def grouping(by: Sequence[str]) -> str:
    """``sum{grouping(by)}(...)``: ``sum by (a, b) (...)``, or ``sum(...)``."""
    return f" by ({', '.join(label(a) for a in by)}) " if by else ""


def rate(spec: Instrument, *matchers: Matcher, part: Part | None = None) -> str:
    return f"rate({series(spec, *matchers, part=part)}[{RATE_INTERVAL}])"


def sum_rate(
    spec: Instrument, *matchers: Matcher, by: Sequence[str] = (), part: Part | None = None
) -> str:
    """Per-second rate of a counter (or a histogram's count/sum), summed ``by`` labels."""
    _check_labels(spec, by)
    return f"sum{grouping(by)}({rate(spec, *matchers, part=part)})"


def sum_increase(spec: Instrument, *matchers: Matcher, by: Sequence[str] = ()) -> str:
    """How much a counter grew over the dashboard's time range."""
    _check_labels(spec, by)
    return f"sum{grouping(by)}(increase({series(spec, *matchers)}[{RANGE}]))"


def aggregate(
    how: Literal["sum", "min", "max"],
    spec: Instrument,
    *matchers: Matcher,
    by: Sequence[str] = (),
) -> str:
    """A gauge's series combined: ``max(guardline_samples_sender_lag_seconds)``."""
    _check_labels(spec, by)
    return f"{how}{grouping(by)}({series(spec, *matchers)})"


def quantile(q: float, spec: Instrument, *matchers: Matcher, by: Sequence[str] = ()) -> str:
    _check_labels(spec, by)
    buckets = rate(spec, *matchers, part="bucket")
    return f"histogram_quantile({q}, sum by ({', '.join(['le', *map(label, by)])}) ({buckets}))"


def quantiles(
    spec: Instrument, qs: Sequence[float], *matchers: Matcher
) -> list[prometheus.Dataquery]:
    """One target per quantile, refIds A, B, ..., legends p50, p95, ..."""
    return [
        query(quantile(q, spec, *matchers), f"p{round(q * 100)}", chr(ord("A") + i))
        for i, q in enumerate(qs)
    ]


def mean(spec: Instrument, *matchers: Matcher, by: Sequence[str] = ()) -> str:
    """A histogram's mean observation over the rate window."""
    total = sum_rate(spec, *matchers, by=by, part="sum")
    return f"{total} / {sum_rate(spec, *matchers, by=by, part='count')}"


def counted_rate(
    spec: Instrument, *matchers: Matcher, by: Sequence[str] = (), part: Part | None = None
) -> str:
    """A feedback instrument's per-second rate with the posts that later posts on the same
    request id replaced taken out (its ``names.SUPERSEDED`` twin, same labels), so each
    call's latest feedback counts once. Nothing is taken out of a group the twin has no
    series for yet."""
    posts = sum_rate(spec, *matchers, by=by, part=part)
    replaced = sum_rate(n.SUPERSEDED[spec], *matchers, by=by, part=part)
    return f"({posts} - ({replaced} or 0 * {posts}))"


def counted_mean(spec: Instrument, *matchers: Matcher, by: Sequence[str] = ()) -> str:
    """:func:`mean` of a feedback histogram, counting each call's latest post only."""
    total = counted_rate(spec, *matchers, by=by, part="sum")
    return f"{total} / {counted_rate(spec, *matchers, by=by, part='count')}"


def counted_quantile(q: float, spec: Instrument, *matchers: Matcher, by: Sequence[str] = ()) -> str:
    """:func:`quantile` of a feedback histogram, counting each call's latest post only."""
    _check_labels(spec, by)
    grouped = f"sum by ({', '.join(['le', *map(label, by)])}) "
    posts = grouped + f"({rate(spec, *matchers, part='bucket')})"
    replaced = grouped + f"({rate(n.SUPERSEDED[spec], *matchers, part='bucket')})"
    return f"histogram_quantile({q}, {posts} - ({replaced} or 0 * {posts}))"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, 0 (not "No data") when the numerator has no series yet
    but the denominator has: no block so far is a block rate of 0. Both must be grouped
    by the same labels. Still empty without any denominator traffic."""
    return f"({numerator} or 0 * {denominator}) / {denominator}"


def per_hour(expr: str) -> str:
    return f"{expr} * 3600"


# -- panels ---------------------------------------------------------------------------------
def legend(*attributes: str, prefix: str = "") -> str:
    """A legend naming each series by labels: ``{{gen_ai_request_model}} {{...}}``."""
    return prefix + " ".join("{{" + label(a) + "}}" for a in attributes)


def query(
    expr: str,
    legend: str = "__auto",
    ref: str = "A",
    *,
    instant: bool = False,
    as_table: bool = False,
) -> prometheus.Dataquery:
    """A target. ``instant``: one evaluation at the range's end (for ``$__range`` sums);
    ``as_table``: label sets as table columns."""
    target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    target = target.datasource(DATASOURCE)
    if instant:
        target = target.instant()
    if as_table:
        target = target.format(PromQueryFormat.TABLE)
    return target


Steps = Sequence[tuple[float | None, str]]
GREEN: Steps = ((None, "green"),)


def thresholds(steps: Steps) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(common_models.LegendDisplayMode.LIST)
        .placement(common_models.LegendPlacement.BOTTOM)
    )


def _tooltip() -> common.VizTooltipOptions:
    return (
        common.VizTooltipOptions()
        .mode(common_models.TooltipDisplayMode.MULTI)
        .sort(common_models.SortOrder.DESCENDING)
    )


def graph(
    title: str,
    description: str,
    unit: str,
    *targets: prometheus.Dataquery,
    span: int = 12,
    height: int = 8,
    steps: Steps = GREEN,
    max_value: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .thresholds(thresholds(steps))
        .legend(_legend())
        .tooltip(_tooltip())
        .span(span)
        .height(height)
    )
    if max_value is not None:
        panel = panel.max(max_value)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def single(
    title: str,
    description: str,
    unit: str,
    target: prometheus.Dataquery,
    *,
    steps: Steps = GREEN,
    mappings: Mapping[str, tuple[str, str]] | None = None,
    span: int = 4,
    height: int = 4,
) -> stat.Panel:
    """A stat: the latest value, with a sparkline. ``mappings``: value -> (text, colour)."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target)
        .unit(unit)
        .thresholds(thresholds(steps))
        .color_mode(common_models.BigValueColorMode.VALUE)
        .graph_mode(common_models.BigValueGraphMode.AREA)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(span)
        .height(height)
    )
    if mappings:
        options = {
            value: ValueMappingResult(text=text, color=color)
            for value, (text, color) in mappings.items()
        }
        panel = panel.mappings([ValueMap(options=options)])
    return panel


def bars(
    title: str,
    description: str,
    unit: str,
    target: prometheus.Dataquery,
    *,
    span: int = 12,
    height: int = 8,
    max_value: float | None = None,
) -> bargauge.Panel:
    """Horizontal bars, one per series: for breakdowns over the whole time range."""
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target)
        .unit(unit)
        .min(0)
        .thresholds(thresholds(GREEN))
        .display_mode(common_models.BarGaugeDisplayMode.GRADIENT)
        .orientation(common_models.VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(span)
        .height(height)
    )
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def grid(
    title: str,
    description: str,
    target: prometheus.Dataquery,
    *,
    hide: Sequence[str] = ("Time", "Value"),
    rename: Mapping[str, str] | None = None,
    span: int = 12,
    height: int = 8,
) -> table.Panel:
    """A table of an instant query's label sets."""
    organize = DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": dict.fromkeys(hide, True),
            "renameByName": dict(rename or {}),
        },
    )
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(target)
        .with_transformation(organize)
        .span(span)
        .height(height)
    )


Panel = timeseries.Panel | stat.Panel | bargauge.Panel | table.Panel


class Board:
    """A dashboard being built: rows and panels in reading order, each given the next id
    (the SDK assigns none, and Grafana would renumber on load)."""

    def __init__(
        self, uid: str, title: str, description: str, filters: Sequence[Variable] = VARIABLES
    ) -> None:
        self._ids = 0
        self.dashboard = (
            dashboard.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(TAGS)
            .time("now-3h", "now")
            .refresh("1m")
            .timezone("browser")
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .readonly()
            .link(
                dashboard.DashboardLink("Guardline")
                .type(DashboardLinkType.DASHBOARDS)
                .tags(TAGS)
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
        )
        for variable in variables(filters):
            self.dashboard = self.dashboard.with_variable(variable)

    def _next(self) -> int:
        self._ids += 1
        return self._ids

    def row(self, title: str) -> Board:
        self.dashboard = self.dashboard.with_row(dashboard.Row(title).id(self._next()))
        return self

    def add(self, *panels: Panel) -> Board:
        for panel in panels:
            self.dashboard = self.dashboard.with_panel(panel.id(self._next()))
        return self
