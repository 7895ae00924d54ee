"""Alert to report, end to end with the real tools: Guardline in front of the simulator
writes samples; Prometheus (Debian package) scrapes it and evaluates the committed rules;
the simulator turns toxic, GuardlineToxicitySpike fires, Alertmanager (Debian package)
calls the receiver, one job runs on the local worker, and its report counts the window's
samples. Alertmanager's repeated notifications start no second job. Prometheus also
scrapes the receiver: every panel of the re-evaluation dashboard returns data."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from guardline import dashboards
from guardline.exporters import names as n
from guardline.exporters.datasets import Filters, read_dataset
from guardline.reeval.jobs import JobStore
from guardline.reeval.receiver import Receiver, create_receiver_app
from guardline.reeval.results import ResultMetrics
from guardline.reeval.worker import Executor, LocalWorker
from guardline.settings import load_settings
from tests.conftest import openai_client
from tests.prometheus import Alertmanager, Prometheus, fast_rules
from tests.reeval.test_receiver import TOKEN
from tests.reeval.traffic import stored_job
from tests.servers import context_of, proxy, proxy_settings, running, simulator

pytestmark = pytest.mark.e2e

RULES = Path(__file__).resolve().parents[2] / "dashboards" / "alerts" / "guardline.rules.yml"
ALERT = "GuardlineToxicitySpike"
WINDOW = 14.0
"""Seconds before the alert fired: the toxic calls (the rule fires ~4-5 s after the switch
with 1 s scrapes and ``for: 2s``) and normal ones before them; about 1,000 samples at the
load below, the issue's sizing."""
NORMAL = 26.0
"""Seconds of normal traffic first: more than the window, so a baseline precedes it."""
CLIENTS = 6


class _Load:
    """``CLIENTS`` SDK clients calling through Guardline until the block ends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.calls = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]

    def _run(self) -> None:
        client = openai_client(self.url)
        while not self._stop.is_set():
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Answer customer {self.calls}."}],
            )
            self.calls += 1

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def _alertmanager_config(receiver_url: str) -> dict[str, object]:
    return {
        "route": {
            "receiver": "null",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "2s",  # so repeats arrive within the test
            "routes": [{"receiver": "guardline-reeval", "matchers": ['reeval=~".+"']}],
        },
        "receivers": [
            {"name": "null"},
            {
                "name": "guardline-reeval",
                "webhook_configs": [
                    {
                        "url": receiver_url + "/v1/reeval/alerts",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                    }
                ],
            },
        ],
    }


def test_an_alert_starts_one_job_and_its_report_counts_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDLINE_REEVAL_TOKEN", TOKEN)
    samples = tmp_path / "samples"
    config = {"baseline_rate": 1.0, "jsonl": {"directory": str(samples)}}
    settings = load_settings(
        overrides={
            "reeval": {
                "directory": str(tmp_path / "reeval"),
                "datasets": str(samples),
                "window": WINDOW,
            }
        }
    )
    store = JobStore(settings.reeval.directory)
    metrics = ResultMetrics(settings.telemetry)
    worker = LocalWorker(Executor(settings, store, on_update=metrics.record))
    receiver = Receiver(settings.reeval, store, lambda job: worker.submit(job.id), metrics=metrics)
    with (
        simulator() as sim,
        proxy(proxy_settings(sim.url, samples=config)) as gw,
        running(create_receiver_app(receiver)) as hook,
    ):
        am = Alertmanager(tmp_path, _alertmanager_config(hook.url))
        am.start()
        rules = fast_rules(yaml.safe_load(RULES.read_text()))
        targets = [gw.url.removeprefix("http://"), hook.url.removeprefix("http://")]
        prom = Prometheus(tmp_path, targets, rules, am.url)
        prom.start()
        try:
            prom.wait_up()
            with _Load(gw.url):  # normal traffic first (the baseline), then toxic
                time.sleep(NORMAL)
                httpx.put(sim.url + "/_sim/scenario", json={"scenario": "toxic"}).raise_for_status()
                deadline = time.monotonic() + 90
                while prom.alert_state(ALERT) != "firing":
                    assert time.monotonic() < deadline, "the alert never fired"
                    time.sleep(0.1)
            fired = time.monotonic()
            assert context_of(gw).samples.sinks[0].flush(10)
            deadline = fired + 120
            while not [j for j in store.all() if j.state == "done"]:
                assert time.monotonic() < deadline, [j.public() for j in store.all()]
                time.sleep(0.2)
            to_report = time.monotonic() - fired
            time.sleep(5)  # Alertmanager repeats every 2 s meanwhile
            missing = _reeval_dashboard(prom, store, worker)
        finally:
            prom.stop()
            am.stop()
            worker.close()
    jobs = [j for j in store.all() if j.trigger["source"] == "alertmanager"]
    assert len(jobs) == 1, [j.public() for j in store.all()]
    job = jobs[0]
    print(
        f"\nalert firing -> report: {to_report:.1f} s; {job.counts}; {job.notifications} deliveries"
    )
    assert job.notifications > 1  # repeats arrived and started nothing
    assert job.trigger["alertname"] == ALERT
    assert job.evaluation == "toxicity"
    since, until = (datetime.fromisoformat(t) for t in (job.since, job.until))
    in_window, _ = read_dataset(samples, Filters(since=since, until=until))
    assert job.counts["window"] == len(in_window) > 0
    assert job.counts["baseline"] == job.counts["window"]
    assert job.report
    assert Path(job.report).is_file()
    assert missing == [], "re-evaluation panels with no data:\n" + "\n".join(missing)


def _reeval_dashboard(prom: Prometheus, store: JobStore, worker: LocalWorker) -> list[str]:
    """Every panel of the re-evaluation dashboard returns data once the receiver's
    /metrics has been scraped before and after a second evaluation (rate() needs a
    counter's series scraped before it moves)."""
    first = store.all()[0]
    deadline = time.monotonic() + 20
    while not prom.query(n.REEVAL_JOBS.prometheus + "_total"):
        assert time.monotonic() < deadline, "the receiver's metrics were never scraped"
        time.sleep(0.2)
    time.sleep(1.5)
    again = stored_job(store, *first.window, first.evaluation)
    worker.submit(again.id)
    assert worker.futures[again.id].result(60).state == "done"
    doc = dashboards.load("reeval.json")
    queries = dashboards.panel_queries(doc)
    missing: list[str] = []
    deadline = time.monotonic() + 20
    while True:
        missing = [
            f"{q.title} / {q.ref}: {q.promql}" for q in queries if not prom.has_data(q.promql)
        ]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for name, query in dashboards.variable_queries(doc).items():
        metric, label = query.removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = {s["metric"].get(label) for s in prom.query(metric)} - {None}
        if not values:
            missing.append(f"${name}: no values of {label} in {metric}")
    return missing
