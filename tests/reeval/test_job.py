"""A re-evaluation job over samples real traffic wrote: the window and its same-size
baseline, re-scored rates with intervals, the versioned dataset, the report, and a job
that runs to its end once."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

from guardline.exporters import names as n
from guardline.reeval.evaluators import Evaluators, FakeEvaluator, build
from guardline.reeval.jobs import JobStore
from guardline.reeval.results import EvaluationEvents, ResultMetrics
from guardline.reeval.worker import Executor, LocalWorker
from guardline.settings import Settings, load_settings
from tests.detectors.test_toxicity import _tiny_detoxify
from tests.reeval.traffic import LARGE, Traffic, make_traffic, run_job, stored_job
from tests.servers import simulator
from tests.test_cli import GUARDLINE

CALLS = 12


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    return make_traffic(tmp_path_factory.mktemp("samples"), CALLS)


def _settings(traffic: Traffic, out: Path, upstream: str | None = None, **reeval: Any) -> Settings:
    """Re-evaluation of ``traffic`` into ``out``; ``upstream``: the OpenAI base URL the
    judge or candidate calls."""
    overrides: dict[str, Any] = {
        "reeval": {"directory": str(out), "datasets": str(traffic.samples), **reeval}
    }
    if upstream is not None:
        overrides["upstreams"] = {"openai": {"provider": "openai", "base_url": upstream}}
    return load_settings(overrides=overrides)


@pytest.fixture(scope="module")
def evaluators() -> Evaluators:
    return build(load_settings())


def test_a_job_compares_the_window_with_a_same_size_baseline(
    traffic: Traffic, evaluators: Evaluators, tmp_path: Path
) -> None:
    settings = _settings(traffic, tmp_path)
    store = JobStore(tmp_path)
    job = stored_job(store, traffic.boundary, traffic.end)
    seen: list[tuple[float, str]] = []
    done = Executor(settings, store, evaluators=lambda _: evaluators).execute(
        job.id, progress=lambda f, s: seen.append((f, s))
    )
    assert done.state == "done", done.error
    assert done.counts["window"] == CALLS
    assert done.counts["baseline"] == CALLS
    assert done.report
    assert Path(done.report).is_file()
    assert done.progress == 1.0
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)  # progress only moves forward
    summary = orjson.loads(Path(done.summary or "").read_bytes())
    toxic = [r for r in summary["rates"] if r["evaluator"] == "toxicity"]
    assert toxic, summary["rates"]
    assert toxic[0]["significant"]
    assert toxic[0]["window"]["count"] > toxic[0]["baseline"]["count"]
    online = [r for r in summary["rates"] if r["evaluator"] == "online"]
    assert any(r["category"].startswith("toxicity:") for r in online)
    assert summary["counts"]["window_flagged"] >= toxic[0]["window"]["count"]
    assert summary["examples"]
    assert all(e["categories"] for e in summary["examples"])
    names = {e["name"]: e["available"] for e in summary["evaluators"]}
    assert names["toxicity"]
    assert names["online"]
    assert names["fmeval"] is False
    dataset = summary["dataset"]
    rows = Path(dataset["files"]["fmeval"]).read_bytes().splitlines()
    assert len(rows) == dataset["records"] == summary["counts"]["window_flagged"]
    assert {"model_input", "model_output", "category"} <= set(orjson.loads(rows[0]))
    assert sum(b["window"] for b in summary["timeline"]) == CALLS
    assert sum(b["baseline"] for b in summary["timeline"]) == CALLS


def test_a_finished_job_is_not_run_again(traffic: Traffic, tmp_path: Path) -> None:
    settings = _settings(traffic, tmp_path)
    store = JobStore(tmp_path)
    job = stored_job(store, traffic.boundary, traffic.end)
    fake = FakeEvaluator()
    executor = Executor(settings, store, evaluators=lambda _: Evaluators([fake], []))
    first = executor.execute(job.id)
    assert first.state == "done"
    assert first.attempts == 1
    calls = len(fake.seen)
    again = Executor(settings, store, evaluators=lambda _: Evaluators([fake], [])).execute(job.id)
    assert again.attempts == 1
    assert len(fake.seen) == calls


def test_a_job_left_running_is_run_again(traffic: Traffic, tmp_path: Path) -> None:
    """What a worker killed mid-run leaves: state running; the next execute completes it."""
    settings = _settings(traffic, tmp_path)
    store = JobStore(tmp_path)
    job = stored_job(store, traffic.boundary, traffic.end)
    store.update(job.id, lambda j: setattr(j, "state", "running"))
    assert [j.id for j in store.unfinished()] == [job.id]
    done = Executor(
        settings, store, evaluators=lambda _: Evaluators([FakeEvaluator()], [])
    ).execute(job.id)
    assert done.state == "done"
    assert store.unfinished() == []


def test_a_failing_evaluator_fails_the_job_not_the_worker(traffic: Traffic, tmp_path: Path) -> None:
    class Broken(FakeEvaluator):
        def score(self, record: Any) -> dict[str, float]:
            raise RuntimeError("model exploded")

    store = JobStore(tmp_path)
    job = stored_job(store, traffic.boundary, traffic.end)
    done = Executor(
        _settings(traffic, tmp_path), store, evaluators=lambda _: Evaluators([Broken()], [])
    ).execute(job.id)
    assert done.state == "failed"
    assert "model exploded" in (done.error or "")


def test_an_empty_window_still_reports(traffic: Traffic, tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    late = datetime.now(UTC)
    job = stored_job(store, late, late.replace(year=late.year + 1))
    done = Executor(
        _settings(traffic, tmp_path), store, evaluators=lambda _: Evaluators([FakeEvaluator()], [])
    ).execute(job.id)
    assert done.state == "done"
    assert done.counts["window"] == 0 == done.counts["baseline"]
    summary = orjson.loads(Path(done.summary or "").read_bytes())
    assert "No samples in the window" in summary["next_steps"][0]
    assert summary["dataset"] is None


def test_reeval_run_from_the_command_line(traffic: Traffic, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            GUARDLINE,
            "reeval",
            "run",
            "--since",
            traffic.boundary.isoformat(),
            "--until",
            traffic.end.isoformat(),
            "--dataset",
            str(traffic.samples),
            "--out",
            str(tmp_path),
            "--evaluation",
            "toxicity",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip())
    assert report.is_file()
    assert report.suffix == ".html"
    assert "100.0% done" in result.stderr  # the progress bar's last state
    assert f"'window': {CALLS}" in result.stderr


def test_a_window_of_a_thousand_samples(large_traffic: Traffic, tmp_path: Path) -> None:
    """The issue's sizing: 1,000 samples in the window (and 1,000 in the baseline) with
    the default evaluators. Timed for the record (printed), not asserted."""
    settings = _settings(large_traffic, tmp_path)
    started = time.monotonic()
    done = run_job(settings, large_traffic.boundary, large_traffic.end)
    took = time.monotonic() - started
    print(f"\n1,000-sample window: job {took:.1f} s including loading the evaluators")
    assert done.state == "done", done.error
    assert done.counts["window"] == LARGE == done.counts["baseline"]


JUDGE_SCRIPT = [
    {"match": "worthless idiot", "reply": '{"flagged": true, "category": "insult", "score": 0.95}'},
    {"match": "(?s).", "reply": 'Verdict: {"flagged": false}'},
]


def test_an_llm_judge_scores_an_even_sample_of_each_set(traffic: Traffic, tmp_path: Path) -> None:
    """The judge (a model through a configured upstream, here the simulator answering
    with a script) sees at most max_samples per set; its prompt is in the summary."""
    script = tmp_path / "judge.yaml"
    script.write_bytes(orjson.dumps(JUDGE_SCRIPT))  # JSON is YAML
    with simulator(script=script) as judge_vendor:
        settings = _settings(
            traffic,
            tmp_path,
            judge_vendor.url + "/v1",
            judge={"enabled": True, "max_samples": 5},
        )
        done = run_job(settings, traffic.boundary, traffic.end)
        calls = judge_vendor.app.recorder.stats()
    assert done.state == "done", done.error
    summary = orjson.loads(Path(done.summary or "").read_bytes())
    assert summary["judge"]["prompt"] == settings.reeval.judge.prompt
    judged = [r for r in summary["rates"] if r["evaluator"] == "judge"]
    assert [(r["category"], r["window"]["count"], r["window"]["n"]) for r in judged] == [
        ("insult", 5, 5)
    ]
    assert judged[0]["baseline"] == {**judged[0]["baseline"], "count": 0, "n": 5}
    assert calls["requests_total"] == 10, calls


def test_a_judge_that_cannot_run_is_reported_unavailable(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"reeval": {"judge": {"enabled": True, "upstream": "nowhere"}}}
    )
    evaluators = build(settings)
    evaluators.close()
    reasons = {u.name: u.reason for u in evaluators.unavailable}
    assert "no upstream named 'nowhere'" in reasons["judge"]
    assert evaluators.judge is None


def test_results_go_out_as_evaluation_events_under_the_exchange_span(
    traffic: Traffic, evaluators: Evaluators, tmp_path: Path
) -> None:
    """One gen_ai.evaluation.result per window sample and evaluator, parented to the
    span the sample record names, with gen_ai.response.id = the request id."""
    exporter = InMemoryLogRecordExporter()
    events = EvaluationEvents(load_settings().telemetry, [exporter])
    settings = _settings(traffic, tmp_path)
    store = JobStore(tmp_path)
    job = stored_job(store, traffic.boundary, traffic.end)
    executor = Executor(settings, store, evaluators=lambda _: evaluators, events=events)
    done = executor.execute(job.id)
    executor.close()  # flushes the batch
    logs = [d.log_record for d in exporter.get_finished_logs()]
    assert len(logs) == CALLS * len(evaluators.ready)
    assert {log.event_name for log in logs} == {"gen_ai.evaluation.result"}
    records = {
        r["request_id"]: r
        for line in traffic.samples.glob("*.jsonl")
        for r in map(orjson.loads, line.read_bytes().splitlines())
        if r["kind"] == "exchange"
    }
    toxic = [
        log
        for log in logs
        if (log.attributes or {})["gen_ai.evaluation.name"] == "guardline.toxicity"
    ]
    assert len(toxic) == CALLS
    flagged = [
        log for log in toxic if (log.attributes or {})["gen_ai.evaluation.score.label"] == "flagged"
    ]
    assert flagged, "the toxic window has toxicity verdicts"
    for log in flagged:
        attributes = log.attributes or {}
        record = records[str(attributes["gen_ai.response.id"])]
        assert log.trace_id == 0  # tracing is off in this traffic: no span to hang under
        assert record["trace_id"] is None
        assert float(attributes["gen_ai.evaluation.score.value"]) > 0
        assert attributes["gen_ai.evaluation.explanation"]
    summary = orjson.loads(Path(done.summary or "").read_bytes())
    assert summary["job"]["events"] == len(logs)


def test_the_receiver_exports_the_last_evaluation(traffic: Traffic, tmp_path: Path) -> None:
    metrics = ResultMetrics(load_settings().telemetry)
    store = JobStore(tmp_path)
    job = stored_job(store, traffic.boundary, traffic.end)
    executor = Executor(
        _settings(traffic, tmp_path),
        store,
        evaluators=lambda _: Evaluators([FakeEvaluator(marker="idiot", category="insult")], []),
        on_update=metrics.record,
    )
    done = executor.execute(job.id)
    metrics.record(done)  # reported twice (status messages can repeat): counted once
    page = metrics.scrape().decode()
    metrics.shutdown()
    toxicity = 'guardline_reeval_evaluation="toxicity"'
    jobs = f'{n.REEVAL_JOBS.prometheus}_total{{{toxicity},guardline_reeval_state="done"}} 1.0'
    assert jobs in page
    window = (
        f'{n.REEVAL_RATE.prometheus}{{guardline_category="insult",{toxicity},'
        'guardline_reeval_evaluator="fake",guardline_reeval_set="window"} 1.0'
    )
    assert window in page, page
    baseline = f'{n.REEVAL_SAMPLES.prometheus}{{{toxicity},guardline_reeval_set="baseline"}} 12.0'
    assert baseline in page
    assert f"{n.REEVAL_LAST.prometheus}{{{toxicity}}}" in page


def test_an_event_hangs_under_the_span_its_record_names() -> None:
    exporter = InMemoryLogRecordExporter()
    events = EvaluationEvents(load_settings().telemetry, [exporter])
    record = {"request_id": "r1", "trace_id": "ab" * 16, "span_id": "cd" * 8}
    assert events.emit("toxicity", [(record, "toxicity", {"toxic": 0.9, "insult": 0.7})]) == 1
    events.shutdown()
    (log,) = [d.log_record for d in exporter.get_finished_logs()]
    assert (f"{log.trace_id:032x}", f"{log.span_id:016x}") == ("ab" * 16, "cd" * 8)
    assert (log.attributes or {})["gen_ai.evaluation.explanation"] == "insult, toxic"
    assert (log.attributes or {})["gen_ai.evaluation.score.value"] == 0.9


def test_a_restarted_receiver_runs_what_was_left_unfinished(
    traffic: Traffic, tmp_path: Path
) -> None:
    """Jobs stored queued or running (the receiver stopped, or was killed mid-job) are
    run when a local worker starts on the same directory; finished ones are left alone."""
    store = JobStore(tmp_path)
    queued = stored_job(store, traffic.boundary, traffic.end)
    killed = stored_job(store, traffic.boundary, traffic.end)
    store.update(killed.id, lambda j: setattr(j, "state", "running"))
    finished = stored_job(store, traffic.boundary, traffic.end)
    store.update(finished.id, lambda j: setattr(j, "state", "done"))
    fake = FakeEvaluator()
    worker = LocalWorker(
        Executor(_settings(traffic, tmp_path), store, evaluators=lambda _: Evaluators([fake], []))
    )
    worker.start()
    assert set(worker.futures) == {queued.id, killed.id}
    results = [future.result(60) for future in worker.futures.values()]
    worker.close()
    assert {job.state for job in results} == {"done"}
    assert store.get(finished.id).attempts == 0


def test_a_candidate_model_replays_the_windows_prompts(traffic: Traffic, tmp_path: Path) -> None:
    """The window's prompts go to a candidate (a simulator answering in its default,
    harmless scenario) and its answers are scored beside the toxic originals."""
    with simulator() as candidate_vendor:
        settings = _settings(
            traffic,
            tmp_path,
            candidate_vendor.url + "/v1",
            candidate={"model": "gpt-4.1-mini", "max_samples": 8},
        )
        done = run_job(settings, traffic.boundary, traffic.end)
        calls = candidate_vendor.app.recorder.stats()["requests_total"]
    assert done.state == "done", done.error
    candidate = orjson.loads(Path(done.summary or "").read_bytes())["candidate"]
    assert (candidate["model"], candidate["replayed"], calls) == ("gpt-4.1-mini", 8, 8)
    toxic = [r for r in candidate["rates"] if r["evaluator"] == "toxicity"]
    assert toxic, candidate["rates"]
    assert toxic[0]["window"]["count"] == 8  # the original answers: all toxic
    assert toxic[0]["baseline"]["count"] == 0  # the candidate's
    assert toxic[0]["significant"]
    html = Path(done.report or "").read_text()
    assert "gpt-4.1-mini" in html


def test_the_strongest_toxicity_model_configured_is_the_one_that_rescores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With reeval.evaluators.toxicity_checkpoint the re-score runs detoxify (here a tiny
    checkpoint the test builds) while the proxy keeps its fast linear model; without it
    the report says a stronger model was not available, and why."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint, config_dir = _tiny_detoxify(tmp_path, [4.0, -4.0, -4.0, -4.0, 3.0, -4.0])
    strong = build(
        load_settings(
            overrides={
                "reeval": {
                    "evaluators": {
                        "toxicity_checkpoint": str(checkpoint),
                        "toxicity_config": str(config_dir),
                    }
                }
            }
        )
    )
    toxicity = {e.name: e for e in strong.ready}["toxicity"]
    assert toxicity.backend == "detoxify (tiny.ckpt)"
    assert toxicity.score({"response": "you are a idiot."}) == {
        "toxicity": pytest.approx(0.982, abs=0.001),
        "insult": pytest.approx(0.953, abs=0.001),
    }
    assert "toxicity (stronger model)" not in {u.name for u in strong.unavailable}
    weak = build(load_settings())
    assert {e.name: e for e in weak.ready}["toxicity"].backend.startswith("linear")
    reasons = {u.name: u.reason for u in weak.unavailable}
    assert "toxicity_checkpoint" in reasons["toxicity (stronger model)"]
    assert "no spaCy NER model configured" in reasons["pii (NER)"]
