"""Scores rows with AWS FMEval's algorithms. Runs under a Python that has ``fmeval``
(its pins clash with Guardline's, so usually another virtualenv), never imported by
Guardline: standard library and fmeval only.

stdin: ``{"algorithms": ["factual_knowledge", ...], "rows": [{"target_output": ...,
"model_output": ...}, ...]}``; stdout: ``{"fmeval": "<version>", "algorithms": {name:
{"scores": [{score name: value}, ...], "error": null | "why"}}}``. An algorithm that
cannot run here (one needing a model download, offline) reports its error, not a crash.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from importlib import metadata
from typing import Any

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

ALGORITHMS = {
    "factual_knowledge": ("fmeval.eval_algorithms.factual_knowledge", "FactualKnowledge"),
    "qa_accuracy": ("fmeval.eval_algorithms.qa_accuracy", "QAAccuracy"),
}


def run(request: dict[str, Any]) -> dict[str, Any]:
    importlib.import_module("fmeval")  # fails early and clearly when absent
    out: dict[str, Any] = {"fmeval": _version(), "algorithms": {}}
    for name in request["algorithms"]:
        try:
            module, cls = ALGORITHMS[name]
            with contextlib.redirect_stdout(sys.stderr):  # fmeval prints; stdout is ours
                algorithm = getattr(importlib.import_module(module), cls)()
                scores = [
                    {
                        s.name: s.value
                        for s in algorithm.evaluate_sample(
                            target_output=row["target_output"], model_output=row["model_output"]
                        )
                    }
                    for row in request["rows"]
                ]
        except Exception as exc:  # reported per algorithm
            out["algorithms"][name] = {"scores": [], "error": f"{type(exc).__name__}: {exc}"[:500]}
        else:
            out["algorithms"][name] = {"scores": scores, "error": None}
    return out


def _version() -> str:
    return metadata.version("fmeval")


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
