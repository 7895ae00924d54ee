"""Re-evaluation: what the last evaluation of each kind found (flag rates in the alert's
window against the baseline before it, per evaluator and category), how many samples it
re-scored, and how the jobs went. The metrics come from ``guardline reeval receiver``'s own
``/metrics``, not the proxy's."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models import units

from guardline.dashboards.kit import (
    BASELINE,
    FAILED,
    REEVAL_VARIABLES,
    WINDOW,
    Board,
    aggregate,
    bars,
    eq,
    graph,
    legend,
    per_hour,
    quantiles,
    query,
    single,
    sum_increase,
    sum_rate,
)
from guardline.exporters import names as n

UID = "guardline-reeval"
TITLE = "Guardline / Re-evaluation"

PER_CATEGORY = (n.EVALUATION, n.EVALUATOR, n.CATEGORY)
"""What one compared rate is about: ``toxicity`` evaluation, ``judge`` evaluator,
``toxicity`` category."""
CATEGORY_LEGEND = f"{legend(n.EVALUATION)} {legend(n.EVALUATOR)}:{legend(n.CATEGORY)}"
DIFFERENCE_STEPS = ((None, "green"), (0.05, "orange"), (0.2, "red"))


def build() -> Dashboard:
    # max, not sum: a gauge holds the last evaluation's value, the same on every replica.
    def rate_in(side: str) -> str:
        return aggregate("max", n.REEVAL_RATE, eq(n.SET, side), by=PER_CATEGORY)

    ended = sum_increase(n.REEVAL_JOBS)
    failed = sum_increase(n.REEVAL_JOBS, eq(n.JOB_STATE, FAILED))
    board = Board(
        UID,
        TITLE,
        "Guardline's re-evaluation jobs, from `guardline reeval receiver`'s /metrics: when "
        "each kind last ran, its flag rates in the alert's window against the baseline "
        "before it, the samples it re-scored, and the jobs' states and durations. Generated "
        "by `python -m guardline.dashboards --write`; do not edit by hand.",
        REEVAL_VARIABLES,
    )
    board.row("Last evaluation").add(
        single(
            "Time since the last evaluation",
            "How long ago the last evaluation of each kind finished. Evaluations run when an "
            "alert fires (or by hand), so a long time here is quiet, not broken.",
            units.DurationSeconds,
            query(
                f"time() - {aggregate('max', n.REEVAL_LAST, by=(n.EVALUATION,))}",
                legend(n.EVALUATION),
            ),
            span=12,
            height=6,
        ),
        bars(
            "Samples re-scored",
            "How many samples the last evaluation of each kind re-scored: from the alert's "
            "window, and from the baseline before it.",
            units.Short,
            query(
                aggregate("max", n.REEVAL_SAMPLES, by=(n.EVALUATION, n.SET)),
                legend(n.EVALUATION, n.SET),
            ),
            span=12,
            height=6,
        ),
        bars(
            "Flag rate: window vs baseline",
            "The last evaluation's flag rate per evaluator and category (evaluation "
            "evaluator:category), in the alert's window and in the baseline before it.",
            units.PercentUnit,
            query(
                aggregate("max", n.REEVAL_RATE, by=(*PER_CATEGORY, n.SET)),
                f"{CATEGORY_LEGEND} {legend(n.SET)}",
            ),
            max_value=1,
            height=10,
        ),
        single(
            "Window minus baseline",
            "The last evaluation's flag rate in the alert's window minus the baseline's, per "
            "evaluator and category, in percentage points: above 0, the window flagged more. "
            "The evaluation's report says whether the difference is significant.",
            units.PercentUnit,
            query(f"{rate_in(WINDOW)} - {rate_in(BASELINE)}", CATEGORY_LEGEND),
            steps=DIFFERENCE_STEPS,
            span=12,
            height=10,
        ),
    )
    board.row("Jobs").add(
        graph(
            "Jobs ended per hour by state",
            "Re-evaluation jobs that ended, per hour at the current rate, by evaluation and "
            "state (done or failed).",
            units.Short,
            query(
                per_hour(sum_rate(n.REEVAL_JOBS, by=(n.EVALUATION, n.JOB_STATE))),
                legend(n.EVALUATION, n.JOB_STATE),
            ),
            span=10,
        ),
        single(
            "Failed jobs (time range)",
            "Re-evaluation jobs that failed in the time range (0 when jobs ended and none "
            "failed). The job's error is in GET /v1/reeval/jobs/ID on the receiver.",
            units.Short,
            query(f"{failed} or 0 * {ended}", "failed", instant=True),
            steps=((None, "green"), (1, "red")),
            height=8,
        ),
        graph(
            "Job duration p50 / p95",
            "How long re-evaluation jobs ran, from start to report (jobs that finished; "
            "gaps where none did in the rate window).",
            units.Seconds,
            *quantiles(n.REEVAL_DURATION, (0.5, 0.95)),
            span=10,
        ),
    )
    return board.dashboard
