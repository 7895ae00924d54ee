"""AWS FMEval as a re-evaluation evaluator, run in its own virtualenv (.venv-fmeval, which
``make test`` builds): FactualKnowledge scores the samples whose feedback gave a reference
(a correction); an algorithm that cannot run offline is reported with its reason."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from guardline.settings import load_settings
from tests.conftest import need, openai_client
from tests.reeval.traffic import run_job
from tests.servers import context_of, proxy, proxy_settings, simulator

pytestmark = pytest.mark.e2e

FMEVAL_PYTHON = Path(__file__).resolve().parents[2] / ".venv-fmeval" / "bin" / "python"


def _call(url: str, prompt: str, correction: str) -> None:
    """An echoed answer (the simulator repeats the prompt) and feedback correcting it."""
    raw = openai_client(url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
    )
    token = raw.headers["x-guardline-request-id"]
    body = {"request_id": token, "outcome": "edited", "correction": correction}
    httpx.post(url + "/v1/feedback", json=body).raise_for_status()


def test_fmeval_factual_knowledge_scores_samples_with_a_reference(tmp_path: Path) -> None:
    need(FMEVAL_PYTHON.is_file(), f"no {FMEVAL_PYTHON} (make fmeval-venv)")
    samples = tmp_path / "samples"
    config = {"baseline_rate": 1.0, "jsonl": {"directory": str(samples)}}
    with simulator(scenario="echo") as sim, proxy(proxy_settings(sim.url, samples=config)) as gw:
        for i in range(4):  # before: every answer holds its reference
            _call(gw.url, f"The capital of France is Paris ({i}).", "Paris")
        time.sleep(0.05)
        boundary = datetime.now(UTC)
        time.sleep(0.05)
        for i in range(2):  # the window: two hits, two misses
            _call(gw.url, f"The capital of Italy is Rome ({i}).", "Rome")
            _call(gw.url, f"The capital of Spain is Lisbon ({i}).", "Madrid")
        assert context_of(gw).samples.sinks[0].flush(10)
        end = datetime.now(UTC)
    settings = load_settings(
        overrides={
            "reeval": {
                "directory": str(tmp_path / "reeval"),
                "datasets": str(samples),
                "evaluators": {"fmeval_python": str(FMEVAL_PYTHON)},
            }
        }
    )
    done = run_job(settings, boundary, end, "accuracy")
    assert done.state == "done", done.error
    summary = orjson.loads(Path(done.summary or "").read_bytes())
    ran = {e["name"]: e for e in summary["evaluators"]}
    assert ran["fmeval"]["available"], ran["fmeval"]
    assert ran["fmeval"]["backend"].startswith("AWS FMEval 1.")
    misses = [r for r in summary["rates"] if r["category"] == "factual_knowledge_miss"]
    assert len(misses) == 1, summary["rates"]
    assert (misses[0]["window"]["count"], misses[0]["window"]["n"]) == (2, 4)
    assert (misses[0]["baseline"]["count"], misses[0]["baseline"]["n"]) == (0, 4)
    # QAAccuracy needs BERTScore's model, which an offline machine lacks: reported, not fatal.
    qa = ran.get("fmeval.qa_accuracy")
    if qa is not None:
        assert not qa["available"]
        assert qa["reason"]
