"""Scoring samples with the evaluators, and comparing two scored sets' flag rates."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from guardline.exporters.datasets import Sample
from guardline.reeval.evaluators import Evaluators, Scores, limit_of
from guardline.reeval.stats import newcombe, wilson

Progress = Callable[[float, str], None]


@dataclass
class Scored:
    sample: Sample
    scores: dict[str, Scores]
    """By evaluator name."""

    def flags(self) -> set[str]:
        return {f"{name}:{category}" for name, cats in self.scores.items() for category in cats}


def even(samples: Sequence[Sample], limit: int) -> list[Sample]:
    """At most ``limit`` samples spread evenly over ``samples`` (time order kept)."""
    if len(samples) <= limit:
        return list(samples)
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


def score_all(
    samples: Sequence[Sample], evaluators: Evaluators, progress: Progress, share: float
) -> list[Scored]:
    """Every sample by every evaluator, except that one with a limit (the LLM judge)
    sees only an even sample of at most that many: a sample it did not see has no entry
    of its name."""
    subsets: dict[str, set[int]] = {}
    for evaluator in evaluators.ready:
        limit = limit_of(evaluator)
        if limit is not None and limit < len(samples):
            subsets[evaluator.name] = {int(i * len(samples) / limit) for i in range(limit)}
    # Evaluators that score a whole set at once (FMEval in its own interpreter).
    batches: dict[str, list[Scores | None]] = {}
    for evaluator in evaluators.ready:
        many = getattr(evaluator, "score_many", None)
        if callable(many):
            batches[evaluator.name] = many([s.record for s in samples])
    out = []
    step = max(1, len(samples) // 50)
    for i, sample in enumerate(samples):
        scores: dict[str, Scores] = {}
        for evaluator in evaluators.ready:
            batch = batches.get(evaluator.name)
            if batch is not None:
                scored = batch[i]
                if scored is not None:  # None: not scored (no reference)
                    scores[evaluator.name] = scored
                continue
            chosen = subsets.get(evaluator.name)
            if chosen is None or i in chosen:
                scores[evaluator.name] = evaluator.score(sample.record)
        out.append(Scored(sample, scores))
        if i % step == 0:
            progress(share * (i + 1) / max(1, len(samples)), "scoring")
    return out


def rates(window: Sequence[Scored], baseline: Sequence[Scored]) -> list[dict[str, Any]]:
    """Per evaluator and category: window and baseline rates, their difference, most
    significant first."""
    counts_w = Counter(flag for s in window for flag in s.flags())
    counts_b = Counter(flag for s in baseline for flag in s.flags())
    seen_w = Counter(name for s in window for name in s.scores)
    seen_b = Counter(name for s in baseline for name in s.scores)
    out: list[dict[str, Any]] = []
    for flag in sorted(set(counts_w) | set(counts_b)):
        evaluator, category = flag.split(":", 1)
        a = wilson(counts_w[flag], seen_w[evaluator])
        b = wilson(counts_b[flag], seen_b[evaluator])
        diff = newcombe(a, b)
        out.append(
            {
                "evaluator": evaluator,
                "category": category,
                "window": a.public(),
                "baseline": b.public(),
                "difference": diff.public(),
                "significant": diff.significant,
            }
        )
    out.sort(key=lambda r: (-_finite(r["difference"]["low"]), r["evaluator"], r["category"]))
    return out


def _finite(value: float) -> float:
    return -2.0 if math.isnan(value) else value
