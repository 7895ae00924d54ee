"""Alert to report, end to end with the real tools: Guardline in front of the simulator
writes samples; Prometheus (Debian package) scrapes it and evaluates the committed rules;
the simulator turns toxic, GuardlineToxicitySpike fires, Alertmanager (Debian package)
calls the receiver, one job runs on the local worker, and its report counts the window's
samples. Alertmanager's repeated notifications start no second job."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import yaml

from guardline.exporters.datasets import Filters, read_dataset
from guardline.reeval.jobs import JobStore
from guardline.reeval.receiver import Receiver, create_receiver_app
from guardline.reeval.worker import Executor, LocalWorker
from guardline.settings import load_settings
from tests.conftest import openai_client
from tests.prometheus import Alertmanager, Prometheus, fast_rules
from tests.reeval.test_receiver import TOKEN
from tests.servers import context_of, proxy, proxy_settings, running, simulator

pytestmark = pytest.mark.e2e

RULES = Path(__file__).resolve().parents[2] / "dashboards" / "alerts" / "guardline.rules.yml"
ALERT = "GuardlineToxicitySpike"
WINDOW = 6.0
"""Seconds before the alert fired: the toxic calls (the rule fires ~4-5 s after the switch
with 1 s scrapes and ``for: 2s``) and a few normal ones."""
NORMAL = 10.0
"""Seconds of normal traffic first: more than the window, so a baseline precedes it."""


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
    worker = LocalWorker(Executor(settings, store))
    receiver = Receiver(settings.reeval, store, lambda job: worker.submit(job.id))
    with (
        simulator() as sim,
        proxy(proxy_settings(sim.url, samples=config)) as gw,
        running(create_receiver_app(receiver)) as hook,
    ):
        am = Alertmanager(tmp_path, _alertmanager_config(hook.url))
        am.start()
        rules = fast_rules(yaml.safe_load(RULES.read_text()))
        prom = Prometheus(tmp_path, [gw.url.removeprefix("http://")], rules, am.url)
        prom.start()
        try:
            client = openai_client(gw.url)

            def call(i: int) -> None:
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Answer customer {i}."}],
                )

            prom.wait_up()
            started = time.monotonic()
            while time.monotonic() - started < NORMAL:  # normal traffic: the baseline
                call(0)
            httpx.put(sim.url + "/_sim/scenario", json={"scenario": "toxic"}).raise_for_status()
            i = 0
            while prom.alert_state(ALERT) != "firing":
                call(i)
                i += 1
                assert i < 2000, "the alert never fired"
            fired = time.monotonic()
            assert context_of(gw).samples.sinks[0].flush(10)
            deadline = fired + 120
            while not [j for j in store.all() if j.state == "done"]:
                assert time.monotonic() < deadline, [j.public() for j in store.all()]
                time.sleep(0.2)
            to_report = time.monotonic() - fired
            time.sleep(5)  # Alertmanager repeats every 2 s meanwhile
        finally:
            prom.stop()
            am.stop()
            worker.close()
    jobs = store.all()
    assert len(jobs) == 1, [j.public() for j in jobs]
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
