"""Replaying the window's prompts against a candidate model: would it have answered
better? Each replayed prompt's original answer and the candidate's are scored by the same
detector evaluators; the rates are compared as window and baseline are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardline.errors import GuardlineError
from guardline.exporters.datasets import Sample
from guardline.reeval.chat import Chat
from guardline.reeval.evaluators import Evaluators
from guardline.reeval.scores import Progress, Scored, even, rates
from guardline.settings import Settings


def replay(
    settings: Settings, window: Sequence[Sample], evaluators: Evaluators, progress: Progress
) -> dict[str, Any] | None:
    """The comparison for the report (``rates``: window = original answers, baseline =
    the candidate's), or None when no candidate is configured."""
    wanted = settings.reeval.candidate
    if wanted.model is None:
        return None
    detectors = [e for e in evaluators.ready if e.kind == "detector"]
    usable = [
        s
        for s in window
        if isinstance(s.record.get("prompt"), str) and isinstance(s.record.get("response"), str)
    ]
    chosen = even(usable, wanted.max_samples)
    try:
        chat = Chat(settings, wanted.upstream, wanted.model, wanted.timeout, "reeval.candidate")
    except GuardlineError as exc:
        return {"model": wanted.model, "replayed": 0, "rates": [], "error": str(exc)}
    original: list[Scored] = []
    replayed: list[Scored] = []
    try:
        for i, sample in enumerate(chosen):
            answer = chat.complete(sample.record["prompt"])
            again = Sample({**sample.record, "response": answer}, sample.time)
            original.append(Scored(sample, {e.name: e.score(sample.record) for e in detectors}))
            replayed.append(Scored(again, {e.name: e.score(again.record) for e in detectors}))
            progress((i + 1) / len(chosen), "replaying")
    finally:
        chat.close()
    return {
        "model": wanted.model,
        "upstream": chat.backend,
        "replayed": len(chosen),
        "rates": rates(original, replayed),
    }
