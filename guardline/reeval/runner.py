"""What one re-evaluation job does: gather the window's samples and a same-size baseline
from before it, re-score both with the evaluators, compare rates with intervals, write the
window's flagged samples as a new versioned dataset, and publish a report."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from guardline.exporters.datasets import (
    DatasetError,
    Sample,
    bedrock_row,
    fmeval_row,
    write_parts,
)
from guardline.reeval import source
from guardline.reeval.candidate import replay
from guardline.reeval.evaluators import Evaluators, Scores
from guardline.reeval.jobs import Job, now
from guardline.reeval.scores import Progress, Scored, even, rates, score_all
from guardline.settings import Settings

log = logging.getLogger("guardline.reeval")

TIMELINE_BUCKETS = 24
EXAMPLE_CHARS = 2000


def gather(
    since: datetime, until: datetime, settings: Settings
) -> tuple[list[Sample], list[Sample], dict[str, int]]:
    """(window, baseline, skipped counts): the window's samples, and as many of the
    samples just before ``since`` (within ``baseline_lookback``)."""
    lookback = since - timedelta(seconds=settings.reeval.baseline_lookback)
    everything, stats = source.samples(settings, lookback, until)
    window = even([s for s in everything if s.time >= since], settings.reeval.max_samples)
    before = [s for s in everything if s.time < since]
    baseline = before[-len(window) :] if window else []
    skipped = {"bad_lines": stats.bad_lines, "duplicates": stats.duplicates}
    return window, baseline, {k: v for k, v in skipped.items() if v}


def timeline(
    window: Sequence[Scored], baseline: Sequence[Scored], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Sample counts per bucket: the baseline's span, then the window's."""
    first = baseline[0].sample.time if baseline else since
    start, span = first, max((until - first).total_seconds(), 1.0)
    width = span / TIMELINE_BUCKETS
    buckets: list[dict[str, Any]] = [
        {"start": (start + timedelta(seconds=i * width)).isoformat(), "window": 0, "baseline": 0}
        for i in range(TIMELINE_BUCKETS)
    ]
    for name, scored in (("window", window), ("baseline", baseline)):
        for s in scored:
            i = min(TIMELINE_BUCKETS - 1, int((s.sample.time - start).total_seconds() / width))
            buckets[max(0, i)][name] += 1
    return buckets


def _primary(scored: Scored, evaluation: str) -> float:
    """How strongly the evaluation's own evaluator flags a sample (any evaluator's
    strongest flag when none has the evaluation's name)."""
    own = scored.scores.get(evaluation) or {}
    values = own.values() if own else (v for cats in scored.scores.values() for v in cats.values())
    return max(values, default=0.0)


def examples(window: Sequence[Scored], evaluation: str, count: int) -> list[dict[str, Any]]:
    worst = sorted(window, key=lambda s: -_primary(s, evaluation))[:count]
    return [
        {
            "request_id": s.sample.record["request_id"],
            "time": s.sample.time.isoformat(),
            "model": s.sample.record.get("model"),
            "prompt": _cut(s.sample.record.get("prompt")),
            "response": _cut(s.sample.record.get("response")),
            "categories": sorted(s.flags()),
            "score": _primary(s, evaluation),
        }
        for s in worst
        if s.flags()
    ]


def _cut(text: object) -> str:
    if not isinstance(text, str):
        return "(withheld)"
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " [...]"


def write_dataset(
    flagged: Sequence[Scored], directory: Path, version: str
) -> dict[str, Any] | None:
    """The window's flagged samples as FMEval and Bedrock JSON Lines, in a directory of
    their own (a new version per job: earlier datasets are never rewritten)."""
    records = [
        s.sample.record
        for s in flagged
        if isinstance(s.sample.record.get("prompt"), str)
        and isinstance(s.sample.record.get("response"), str)
    ]
    if not records:
        return None
    out = directory / version
    out.mkdir(parents=True, exist_ok=True)
    fmeval_path, bedrock_path = out / "fmeval.jsonl", out / "bedrock.jsonl"
    write_parts(fmeval_path, [fmeval_row(r) for r in records], len(records))
    paths, _ = write_parts(bedrock_path, [bedrock_row(r) for r in records], 1000)
    return {
        "version": version,
        "directory": str(out),
        "files": {"fmeval": str(fmeval_path), "bedrock": ", ".join(str(p) for p in paths)},
        "records": len(records),
    }


def next_steps(
    evaluation: str, table: Sequence[Mapping[str, Any]], counts: Mapping[str, int]
) -> list[str]:
    if counts["window"] == 0:
        return [
            "No samples in the window: check that samples are enabled and the dataset "
            "directory (or consumer) is the one the proxies write."
        ]
    steps = []
    worse = [r for r in table if r["significant"] and r["difference"]["value"] > 0]
    if worse:
        top = worse[0]
        steps.append(
            f"{top['evaluator']}:{top['category']} is significantly higher than the baseline: "
            "compare models and routes on the guardrails dashboard, and read the worst examples."
        )
        steps.append(
            "Consider guard mode for this category on the affected route "
            "(policy.overrides) until the cause is fixed."
        )
    else:
        steps.append(
            "No category is significantly above the baseline: the alert may reflect traffic "
            "mix; review the threshold or wait for more data."
        )
    steps.append(
        "Evaluate the new dataset offline (FMEval / Bedrock model evaluation) against a "
        "candidate model before switching."
    )
    return steps


def run(
    job: Job,
    settings: Settings,
    evaluators: Evaluators,
    progress: Progress,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], str, Scores]]]:
    """The job's summary, from which the report is made, and each window sample's scores
    by evaluator (for evaluation events)."""
    since, until = job.window
    progress(0.0, "gathering")
    try:
        window, baseline, skipped = gather(since, until, settings)
    except DatasetError as exc:
        raise DatasetError(f"cannot read the samples: {exc}") from None
    scored_w = score_all(window, evaluators, lambda f, s: progress(0.05 + 0.45 * f, s), 1.0)
    scored_b = score_all(baseline, evaluators, lambda f, s: progress(0.5 + 0.3 * f, s), 1.0)
    candidate = replay(settings, window, evaluators, lambda f, s: progress(0.8 + 0.1 * f, s))
    progress(0.9, "reporting")
    table = rates(scored_w, scored_b)
    counts = {
        "window": len(scored_w),
        "baseline": len(scored_b),
        "window_flagged_online": sum(1 for s in scored_w if s.scores.get("online")),
        "window_flagged": sum(1 for s in scored_w if s.flags() - _feedback_only(s)),
    }
    top = Counter(
        flag for s in scored_w for flag in s.flags() if not flag.startswith("feedback:")
    ).most_common(10)
    version = f"{now().strftime('%Y-%m-%dT%H-%M-%SZ')}-{job.id}"
    flagged = [s for s in scored_w if s.flags() - _feedback_only(s)]
    dataset = write_dataset(flagged, settings.reeval.directory / "datasets", version)
    summary = {
        "schema": 1,
        "job": {
            "id": job.id,
            "evaluation": job.evaluation,
            "created": job.created,
            "started": job.started,
            "trigger": job.trigger,
        },
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "baseline": {
            "since": scored_b[0].sample.time.isoformat() if scored_b else None,
            "until": since.isoformat(),
        },
        "counts": {**counts, "skipped": skipped},
        "evaluators": evaluators.describe() + _problems(evaluators),
        "judge": evaluators.judge,
        "rates": table,
        "top_categories": [
            {
                "evaluator": flag.split(":", 1)[0],
                "category": flag.split(":", 1)[1],
                "count": n,
                "rate": n / max(1, len(scored_w)),
            }
            for flag, n in top
        ],
        "timeline": timeline(scored_w, scored_b, since, until),
        "examples": examples(scored_w, job.evaluation, settings.reeval.examples),
        "candidate": candidate,
        "dataset": dataset,
        "next_steps": next_steps(job.evaluation, table, counts),
        "errors": [],
    }
    results = [
        (s.sample.record, name, scores) for s in scored_w for name, scores in s.scores.items()
    ]
    return summary, results


def _feedback_only(scored: Scored) -> set[str]:
    return {f for f in scored.flags() if f.startswith("feedback:")}


def _problems(evaluators: Evaluators) -> list[dict[str, Any]]:
    """Parts of an evaluator that could not run during this job (an FMEval algorithm
    that needs a download, offline), as unavailable entries with the reason."""
    out = []
    for evaluator in evaluators.ready:
        for part, reason in sorted(getattr(evaluator, "problems", {}).items()):
            name = evaluator.name if part == evaluator.name else f"{evaluator.name}.{part}"
            out.append(
                {
                    "name": name,
                    "kind": evaluator.kind,
                    "backend": None,
                    "available": False,
                    "reason": reason,
                }
            )
    return out
