"""AWS FMEval's algorithms as a re-evaluation evaluator. FMEval runs in its own
interpreter (``reeval.evaluators.fmeval_python``; ``fmeval_script.py`` under ``-I`` so
nothing of Guardline's shadows its imports), once per scored set: it scores the samples
whose feedback gave a reference, and an algorithm that cannot run here (one needing a model
download, offline) is reported with its error."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guardline.reeval.evaluators import Scores

SCRIPT = Path(__file__).with_name("fmeval_script.py")
QA_F1_FLOOR = 0.5
"""Below this token F1 against the reference, an answer counts as a QA miss."""


def _flags(algorithm: str, scores: Mapping[str, float]) -> Scores:
    """The categories an FMEval result flags: the answer misses the reference."""
    if algorithm == "factual_knowledge":
        value = scores.get("factual_knowledge", 1.0)
        return {"factual_knowledge_miss": 1.0 - value} if value < 1.0 else {}
    f1 = scores.get("f1_score", 1.0)
    return {"qa_low_f1": 1.0 - f1} if f1 < QA_F1_FLOOR else {}


class FMEvalEvaluator:
    name = "fmeval"
    kind = "fmeval"

    def __init__(self, python: str, algorithms: Sequence[str], timeout: float = 900.0) -> None:
        self.python = python
        self.algorithms = list(algorithms)
        self.timeout = timeout
        self.backend = f"AWS FMEval ({', '.join(self.algorithms)}) via {python}"
        self.problems: dict[str, str] = {}
        """Algorithms (or the run) that could not score, and why."""

    def score(self, record: Mapping[str, Any]) -> Scores:
        return self.score_many([record])[0] or {}

    def score_many(self, records: Sequence[Mapping[str, Any]]) -> list[Scores | None]:
        """Per record: its flags, or None when it has no reference (not scored)."""
        results: list[Scores | None] = [None] * len(records)
        rows = [
            (i, {"target_output": r["reference"], "model_output": r["response"]})
            for i, r in enumerate(records)
            if isinstance(r.get("reference"), str) and isinstance(r.get("response"), str)
        ]
        if not rows:
            return results
        request = json.dumps({"algorithms": self.algorithms, "rows": [row for _, row in rows]})
        with tempfile.TemporaryDirectory() as scratch:  # fmeval and Ray write where they run
            done = subprocess.run(  # noqa: S603 - the configured interpreter, our script
                [self.python, "-I", str(SCRIPT)],
                input=request,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                cwd=scratch,
                check=False,
            )
        if done.returncode != 0:
            self.problems["fmeval"] = (done.stderr.strip().splitlines() or ["failed"])[-1][:500]
            return results
        answer = json.loads(done.stdout)
        self.backend = f"AWS FMEval {answer['fmeval']} ({', '.join(self.algorithms)})"
        for algorithm, outcome in answer["algorithms"].items():
            if outcome["error"]:
                self.problems[algorithm] = outcome["error"]
                continue
            for (i, _), scores in zip(rows, outcome["scores"], strict=True):
                results[i] = {**(results[i] or {}), **_flags(algorithm, scores)}
        return results
