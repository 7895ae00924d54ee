"""``guardline eval detectors``: precision, recall, F1, F2 per category and throughput.

PII span matching: a predicted span counts for a gold span of the same entity type
(dataset names mapped, e.g. GPE -> LOCATION) when their overlap covers at least half of
the longer of the two; each span matches at most once. Toxicity and stereotype are scored
per text: a text is predicted positive when the detector finds anything in it (for the
stereotype detector, a generalisation or exclusionary wording; gendered references to
occupations are recorded for skew metrics, not flagged).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from guardline.detectors.base import Detector, Finding
from guardline.detectors.registry import build_detectors
from guardline.evaluation.datasets import read_labels, read_spans
from guardline.settings import Settings

Kind = Literal["pii", "toxicity", "stereotype"]
MATCHING = __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else ""
FLAGGING = {"stereotype": {"generalization", "exclusionary_wording"}}


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    per_text: bool = False
    """Scored per text (toxicity, stereotype): true negatives exist, so does a
    false-positive rate. Span matching (PII) has neither."""

    def report(self, throughput: float) -> dict[str, Any]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        out: dict[str, Any] = {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(_f(precision, recall, 1.0), 4),
            "f2": round(_f(precision, recall, 2.0), 4),
            "throughput_kb_s": round(throughput, 1),
        }
        if self.per_text:
            out["tn"] = self.tn
            out["false_positive_rate"] = (
                round(self.fp / (self.fp + self.tn), 4) if self.fp + self.tn else 0.0
            )
        return out


def _f(precision: float, recall: float, beta: float) -> float:
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall) if precision + recall else 0.0


def evaluate(
    kind: Kind, dataset: Path, settings: Settings, detector: Detector | None = None
) -> dict[str, Any]:
    if detector is None:
        detector = _only(kind, settings)
    if kind == "pii":
        return _spans(detector, dataset)
    return _labels(kind, detector, dataset)


def _only(kind: Kind, settings: Settings) -> Detector:
    detectors = settings.detectors.model_copy(
        update={
            name: getattr(settings.detectors, name).model_copy(update={"enabled": name == kind})
            for name in ("pii", "toxicity", "stereotype")
        }
    )
    return build_detectors(detectors)[kind]


def _detect_all(
    detector: Detector, texts: list[str]
) -> tuple[list[list[Finding]], tuple[int, int, float]]:
    """Findings per text, and (texts, bytes, seconds spent in the detector)."""
    found = []
    elapsed = 0.0
    for text in texts:
        started = time.perf_counter()
        found.append(detector.detect(text))
        elapsed += time.perf_counter() - started
    return found, (len(texts), sum(len(t.encode()) for t in texts), elapsed)


def _spans(detector: Detector, dataset: Path) -> dict[str, Any]:
    examples = read_spans(dataset)
    counts: dict[str, Counts] = defaultdict(Counts)
    results, work = _detect_all(detector, [e.text for e in examples])
    for example, found in zip(examples, results, strict=True):
        predicted = [(f.start, f.end, f.category) for f in found]
        used: set[int] = set()
        for g_start, g_end, g_type in example.spans:
            hit = next(
                (
                    i
                    for i, (p_start, p_end, p_type) in enumerate(predicted)
                    if i not in used
                    and p_type == g_type
                    and _overlaps(g_start, g_end, p_start, p_end)
                ),
                None,
            )
            if hit is None:
                counts[g_type].fn += 1
            else:
                counts[g_type].tp += 1
                used.add(hit)
        for i, (_, _, p_type) in enumerate(predicted):
            if i not in used:
                counts[p_type].fp += 1
    return _report("pii", dataset, work, counts)


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    overlap = min(a_end, b_end) - max(a_start, b_start)
    return overlap > 0 and overlap >= 0.5 * max(a_end - a_start, b_end - b_start)


def _labels(kind: Kind, detector: Detector, dataset: Path) -> dict[str, Any]:
    examples = read_labels(dataset)
    flagging = FLAGGING.get(kind)
    counts: dict[str, Counts] = {kind: Counts(per_text=True)}
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    parts: Counter[str] = Counter()
    results, work = _detect_all(detector, [e.text for e in examples])
    for example, found in zip(examples, results, strict=True):
        categories = {f.category for f in found}
        parts.update(categories)
        flagged = bool(categories & flagging) if flagging else bool(categories)
        total = counts[kind]
        if example.label and flagged:
            total.tp += 1
        elif example.label:
            total.fn += 1
        elif flagged:
            total.fp += 1
        else:
            total.tn += 1
        if example.group:
            groups[example.group]["texts"] += 1
            groups[example.group]["flagged"] += flagged
    report = _report(kind, dataset, work, counts)
    report["parts"] = dict(sorted(parts.items()))
    report["groups"] = {
        name: {
            "texts": c["texts"],
            "flagged": c["flagged"],
            "rate": round(c["flagged"] / c["texts"], 4),
        }
        for name, c in sorted(groups.items())
    }
    return report


def _report(
    kind: str, dataset: Path, work: tuple[int, int, float], counts: dict[str, Counts]
) -> dict[str, Any]:
    n, size, elapsed = work  # examples, bytes, seconds in the detector
    throughput = size / 1024 / elapsed if elapsed else 0.0
    return {
        "kind": kind,
        "dataset": str(dataset),
        "examples": n,
        "kilobytes": round(size / 1024, 1),
        "seconds": round(elapsed, 3),
        "throughput_kb_s": round(throughput, 1),
        "matching": MATCHING,
        "categories": {name: c.report(throughput) for name, c in sorted(counts.items())},
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['kind']} on {report['dataset']}: {report['examples']} examples, "
        f"{report['kilobytes']} KB in {report['seconds']} s "
        f"({report['throughput_kb_s']} KB/s, one thread)",
        "",
        f"{'category':28} {'tp':>6} {'fp':>6} {'fn':>6} {'precision':>9} {'recall':>7} "
        f"{'f1':>6} {'f2':>6}",
    ]
    for name, c in report["categories"].items():
        row = f"{name:28} {c['tp']:6} {c['fp']:6} {c['fn']:6} {c['precision']:9.3f}"
        row += f" {c['recall']:7.3f} {c['f1']:6.3f} {c['f2']:6.3f}"
        if "false_positive_rate" in c:
            row += f"  false-positive rate {c['false_positive_rate']:.3f}"
        lines.append(row)
    for name, g in report.get("groups", {}).items():
        lines.append(f"group {name}: {g['flagged']}/{g['texts']} flagged ({g['rate']:.3f})")
    if report.get("parts"):
        lines.append(
            "findings by category: " + ", ".join(f"{k} {v}" for k, v in report["parts"].items())
        )
    return "\n".join(lines)
