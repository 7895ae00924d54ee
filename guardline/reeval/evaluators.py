"""The evaluators a re-evaluation job runs: the strongest of each kind this machine has.

Each scores one sample record into ``{category: score}`` (the categories it flags). One
that cannot load is kept as *unavailable* with the reason, and the report says so: a job
never silently runs weaker evaluators than configured without telling.

- ``online``: the findings Guardline recorded when the call went through (always).
- ``toxicity``: detoxify from ``reeval.evaluators.toxicity_checkpoint`` when given and
  loadable, else the proxy's own toxicity settings.
- ``stereotype``: the lexicon detector.
- ``pii``: presidio over the stored (redacted) texts: what redaction let through; with an
  installed spaCy NER model, names and places too.
- ``feedback``: the outcome users reported, joined from feedback records.
- ``fmeval``: AWS FMEval's algorithms, when ``fmeval`` is importable here.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from guardline.detectors.base import Detector
from guardline.errors import GuardlineError
from guardline.settings import (
    DetectorsSettings,
    PiiEntitySettings,
    PiiSettings,
    Settings,
    ToxicitySettings,
)

log = logging.getLogger("guardline.reeval")

Scores = dict[str, float]


class Evaluator(Protocol):
    name: str
    kind: str
    backend: str

    def score(self, record: Mapping[str, Any]) -> Scores: ...


def limit_of(evaluator: Evaluator) -> int | None:
    """How many samples per set an evaluator sees (an even sample); None: all."""
    limit = getattr(evaluator, "limit", None)
    return limit if isinstance(limit, int) else None


@dataclass(frozen=True)
class Unavailable:
    name: str
    kind: str
    reason: str


@dataclass
class FakeEvaluator:
    """Flags category ``category`` on records whose response contains ``marker``."""

    marker: str = "FLAG"
    category: str = "fake"
    name: str = "fake"
    kind: str = "fake"
    backend: str = "fake"
    seen: list[str] = field(default_factory=list)

    def score(self, record: Mapping[str, Any]) -> Scores:
        self.seen.append(str(record.get("request_id")))
        return {self.category: 1.0} if self.marker in _text(record, "response") else {}


def _text(record: Mapping[str, Any], which: str) -> str:
    value = record.get(which)
    return value if isinstance(value, str) else ""


class OnlineEvaluator:
    name = "online"
    kind = "recorded"
    backend = "Guardline's findings at request time"

    def score(self, record: Mapping[str, Any]) -> Scores:
        scores: Scores = {}
        for finding in record.get("findings") or ():
            key = f"{finding['detector']}:{finding['category']}"
            scores[key] = max(scores.get(key, 0.0), float(finding.get("score", 1.0)))
        return scores


class DetectorEvaluator:
    """A Guardline detector over the stored texts; ``texts`` says which."""

    kind = "detector"

    def __init__(self, name: str, detector: Detector, texts: tuple[str, ...]) -> None:
        self.name = name
        self.detector = detector
        self.texts = texts
        self.backend = detector.backend

    def score(self, record: Mapping[str, Any]) -> Scores:
        scores: Scores = {}
        for which in self.texts:
            for finding in self.detector.detect(_text(record, which)):
                scores[finding.category] = max(scores.get(finding.category, 0.0), finding.score)
        return scores


class FeedbackEvaluator:
    name = "feedback"
    kind = "recorded"
    backend = "POST /v1/feedback outcomes"

    def score(self, record: Mapping[str, Any]) -> Scores:
        feedback = record.get("feedback")
        if not isinstance(feedback, Mapping) or "outcome" not in feedback:
            return {}
        return {str(feedback["outcome"]): 1.0}


@dataclass
class Evaluators:
    ready: list[Evaluator]
    unavailable: list[Unavailable]
    judge: dict[str, Any] | None = None
    """The judge's model, upstream and prompt template, when one runs."""

    def close(self) -> None:
        """Release what evaluators hold (the judge's HTTP connections)."""
        for evaluator in self.ready:
            close = getattr(evaluator, "close", None)
            if callable(close):
                close()

    def describe(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "name": e.name,
                "kind": e.kind,
                "backend": e.backend,
                "available": True,
                "reason": None,
            }
            for e in self.ready
        ]
        out.extend(
            {
                "name": u.name,
                "kind": u.kind,
                "backend": None,
                "available": False,
                "reason": u.reason,
            }
            for u in self.unavailable
        )
        return out


def _toxicity(settings: Settings) -> tuple[ToxicitySettings, str | None]:
    """The strongest toxicity settings available, and why a stronger one is not."""
    wanted = settings.reeval.evaluators
    if wanted.toxicity_checkpoint is None:
        return settings.detectors.toxicity, (
            "no reeval.evaluators.toxicity_checkpoint: the proxy's toxicity backend re-scores"
        )
    if importlib.util.find_spec("detoxify") is None:
        return settings.detectors.toxicity, "detoxify is not installed (pip install '.[detoxify]')"
    strong = settings.detectors.toxicity.model_copy(
        update={
            "backend": "detoxify",
            "model": wanted.toxicity_model,
            "checkpoint": wanted.toxicity_checkpoint,
            "huggingface_config_path": wanted.toxicity_config,
        }
    )
    return strong, None


def _pii(settings: Settings) -> tuple[PiiSettings, str | None]:
    model = settings.reeval.evaluators.spacy_model or settings.detectors.pii.spacy_model
    if model is None:
        return settings.detectors.pii, "no spaCy NER model configured: pattern recognizers only"
    if importlib.util.find_spec(model) is None:
        return settings.detectors.pii, f"spaCy model {model!r} is not installed"
    from guardline.detectors.pii import NER_ENTITIES  # noqa: PLC0415 - heavy imports

    entities = dict(settings.detectors.pii.entities)
    for name in NER_ENTITIES:
        entities.setdefault(name, PiiEntitySettings())
    return settings.detectors.pii.model_copy(
        update={"spacy_model": model, "entities": entities}
    ), None


def build(settings: Settings) -> Evaluators:
    """Every evaluator this machine can run, strongest first within a kind."""
    from guardline.detectors.registry import build_detectors  # noqa: PLC0415 - heavy imports

    ready: list[Evaluator] = [OnlineEvaluator(), FeedbackEvaluator()]
    unavailable: list[Unavailable] = []
    toxicity, weaker = _toxicity(settings)
    pii, no_ner = _pii(settings)
    for note, name in ((weaker, "toxicity (stronger model)"), (no_ner, "pii (NER)")):
        if note:
            unavailable.append(Unavailable(name, "detector", note))
    wanted = DetectorsSettings(
        pii=pii.model_copy(update={"enabled": True}),
        toxicity=toxicity.model_copy(update={"enabled": True}),
        stereotype=settings.detectors.stereotype.model_copy(update={"enabled": True}),
    )
    for name in ("toxicity", "stereotype", "pii"):
        only = wanted.model_copy(
            update={
                k: getattr(wanted, k).model_copy(update={"enabled": k == name})
                for k in ("pii", "toxicity", "stereotype")
            }
        )
        try:
            detector = build_detectors(only)[name]
        except (GuardlineError, OSError, ImportError) as exc:
            unavailable.append(Unavailable(name, "detector", str(exc)))
            continue
        texts = ("prompt", "response") if name == "pii" else ("response",)
        ready.append(DetectorEvaluator(name, detector, texts))
    python = settings.reeval.evaluators.fmeval_python
    if python is None and importlib.util.find_spec("fmeval") is not None:
        python = Path(sys.executable)
    if python is None:
        unavailable.append(
            Unavailable(
                "fmeval",
                "fmeval",
                "fmeval is not installed here (its pins clash with Guardline's: install it in "
                "its own virtualenv and name its python in reeval.evaluators.fmeval_python)",
            )
        )
    elif not python.is_file():
        unavailable.append(Unavailable("fmeval", "fmeval", f"no Python at {python}"))
    else:
        from guardline.reeval.fmeval import FMEvalEvaluator  # noqa: PLC0415

        algorithms = settings.reeval.evaluators.fmeval_algorithms
        ready.append(FMEvalEvaluator(str(python), algorithms))
    judge: dict[str, Any] | None = None
    if settings.reeval.judge.enabled:
        from guardline.reeval.judge import Judge  # noqa: PLC0415

        try:
            llm = Judge(settings)
        except GuardlineError as exc:
            unavailable.append(Unavailable("judge", "llm-judge", str(exc)))
        else:
            ready.append(llm)
            judge = llm.describe()
    return Evaluators(ready, unavailable, judge)
