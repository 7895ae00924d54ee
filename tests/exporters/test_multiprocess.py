"""Metrics of several workers summed at scrape time: two registries in one process stand
for two workers (worker B's snapshot file, worker A's live registry), and one real
``serve --workers 2`` checks the process side."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from guardline.exporters.multiprocess import MergedCollector, SnapshotWriter, exposition
from guardline.exporters.names import REQUESTS
from tests.conftest import eventually
from tests.servers import simulator
from tests.test_cli import GUARDLINE, _wait_ok

NO_SUCH_PID = 2**22  # above the largest pid_max Linux allows


class Worker:
    def __init__(self, directory: Path) -> None:
        self.registry = CollectorRegistry()
        self.writer = SnapshotWriter(directory, self.registry, interval=1.0)
        self.merged = MergedCollector(directory, self.registry, self.writer.name)
        self.requests = Counter("requests", "Requests.", ["route"], registry=self.registry)
        self.latency = Histogram(
            "latency_seconds", "Latency.", buckets=(0.25, 1.0), registry=self.registry
        )
        self.in_flight = Gauge("in_flight", "Requests in flight.", registry=self.registry)

    @property
    def snapshot(self) -> Path:
        return self.writer.directory / self.writer.name

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """``/metrics`` on this worker: {(sample name, labels): value}."""
        body, content_type = exposition(self.merged)
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in samples, f"{key} reported twice"
                samples[key] = sample.value
        return samples


@pytest.fixture
def a(tmp_path: Path) -> Worker:
    return Worker(tmp_path)


@pytest.fixture
def b(tmp_path: Path) -> Worker:
    return Worker(tmp_path)


def test_counters_and_histograms_are_summed(a: Worker, b: Worker) -> None:
    a.requests.labels("chat").inc(2)
    b.requests.labels("chat").inc(3)
    b.requests.labels("embed").inc()  # a label set only worker B has seen
    a.latency.observe(0.1)
    a.latency.observe(2)
    b.latency.observe(0.5)
    a.in_flight.set(1)
    b.in_flight.set(2)
    Counter("only_b", "A family only worker B has.", registry=b.registry).inc(4)
    b.writer.write()

    merged = a.scrape()
    assert merged[("requests_total", (("route", "chat"),))] == 5
    assert merged[("requests_total", (("route", "embed"),))] == 1
    assert merged[("latency_seconds_bucket", (("le", "0.25"),))] == 1
    assert merged[("latency_seconds_bucket", (("le", "1.0"),))] == 2
    assert merged[("latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert merged[("latency_seconds_count", ())] == 3
    assert merged[("latency_seconds_sum", ())] == pytest.approx(2.6)
    assert merged[("in_flight", ())] == 3
    assert merged[("only_b_total", ())] == 4
    # No single creation time fits a sum over processes started at different times.
    assert not [name for name, _ in merged if name.endswith("_created")]


@pytest.mark.parametrize("how", ["pid gone", "pid reused"])
def test_an_exited_workers_gauges_are_dropped_its_counters_kept(
    a: Worker, b: Worker, how: str
) -> None:
    a.requests.labels("chat").inc()
    b.requests.labels("chat").inc(7)
    b.latency.observe(0.1)
    b.in_flight.set(5)
    Gauge("only_b_gauge", "A gauge only worker B has.", registry=b.registry).set(1)
    b.writer.write()
    assert a.scrape()[("in_flight", ())] == 5

    data = json.loads(b.snapshot.read_text())
    if how == "pid gone":
        data["pid"] = NO_SUCH_PID
    else:  # same pid, another process: it started at another time
        data["started"] = "0"
    b.snapshot.write_text(json.dumps(data))

    merged = a.scrape()
    assert merged[("requests_total", (("route", "chat"),))] == 8  # never goes backwards
    assert merged[("latency_seconds_count", ())] == 1
    assert merged[("in_flight", ())] == 0
    assert not [name for name, _ in merged if name == "only_b_gauge"]


def test_a_scrape_reports_what_later_scrapes_elsewhere_can_see(a: Worker, b: Worker) -> None:
    """Counters never go backwards between scrapes answered by different workers: the
    serving worker writes its snapshot before it answers."""
    a.requests.labels("chat").inc(3)
    assert a.scrape()[("requests_total", (("route", "chat"),))] == 3
    assert b.scrape()[("requests_total", (("route", "chat"),))] == 3


def test_own_snapshot_is_replaced_by_live_data(a: Worker, b: Worker) -> None:
    a.requests.labels("chat").inc(100)
    a.writer.write()
    a.requests.labels("chat").inc()
    b.writer.write()
    assert a.scrape()[("requests_total", (("route", "chat"),))] == 101  # not 201
    assert b.scrape()[("requests_total", (("route", "chat"),))] == 101


def test_target_info_appears_once(tmp_path: Path) -> None:
    """OpenTelemetry's resource (target_info) differs per worker (service.instance.id):
    the serving worker's is reported, not a sum or one series per worker."""
    registries, providers = [], []
    for instance in ("a", "b"):
        registry = CollectorRegistry(auto_describe=True)
        provider = MeterProvider(
            metric_readers=[PrometheusMetricReader(registry=registry, scope_info_enabled=False)],
            resource=Resource.create({"service.instance.id": instance}),
            shutdown_on_exit=False,
        )
        provider.get_meter("test").create_counter("calls").add(2)
        registries.append(registry)
        providers.append(provider)
    try:
        writer_b = SnapshotWriter(tmp_path, registries[1], interval=1.0)
        writer_b.write()
        writer_a = SnapshotWriter(tmp_path, registries[0], interval=1.0)
        body, _ = exposition(MergedCollector(tmp_path, registries[0], writer_a.name))
    finally:
        for provider in providers:
            provider.shutdown()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert [s.value for s in families["calls"].samples] == [4]
    [info] = families["target_info"].samples
    assert info.labels["service_instance_id"] == "a"


def test_unreadable_snapshots_are_skipped_with_one_warning(
    a: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    directory = a.writer.directory
    (directory / "worker-1-1.json").write_text('{"pid": 1, "fami')  # cut short
    (directory / "worker-2-2.json").write_text('{"pid": 2}')  # not a snapshot
    (directory / "worker-3-3.json.tmp").write_text("{")  # a write in progress: not read
    a.requests.labels("chat").inc()
    for _ in range(3):
        assert a.scrape()[("requests_total", (("route", "chat"),))] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings
    assert all("skipping unreadable metric snapshot worker-" in w for w in warnings)


def test_writes_are_atomic_and_only_when_changed(a: Worker) -> None:
    a.requests.labels("chat").inc()
    a.writer.write()
    first = a.snapshot.stat().st_ino
    a.writer.write()
    assert a.snapshot.stat().st_ino == first  # nothing changed, nothing written
    a.requests.labels("chat").inc()
    a.writer.write()
    assert a.snapshot.stat().st_ino != first  # a new file renamed over the old one
    assert os.listdir(a.writer.directory) == [a.writer.name]  # no .tmp left behind


def test_the_writer_thread_and_its_final_snapshot(a: Worker, tmp_path: Path) -> None:
    reader = Worker(tmp_path)
    writer = SnapshotWriter(tmp_path, a.registry, interval=0.01)
    writer.start()
    try:
        a.requests.labels("chat").inc()

        def seen() -> float:
            return reader.scrape().get(("requests_total", (("route", "chat"),)), 0)

        assert eventually(lambda: seen() == 1)
    finally:
        a.requests.labels("chat").inc()
        writer.stop()
    assert seen() == 2  # the final snapshot, written by stop()
    assert writer._thread is None


@pytest.fixture
def stopped_at_the_end() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children():
                child.kill()
            proc.kill()
            proc.wait()


def _two_workers(
    tmp_path: Path,
    upstream: str,
    started: list[subprocess.Popen[str]],
    **settings: str,
) -> tuple[subprocess.Popen[str], str, Path]:
    """``serve --workers 2`` in front of ``upstream``, ready: the process, its base URL
    and its stderr log. Its metrics directory is made under ``tmp_path``."""
    log = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDLINE_")} | settings
    env["TMPDIR"] = str(tmp_path)  # where mkdtemp puts the metrics directory
    args = ["serve", "--workers", "2", "--port", "0", "--upstream", upstream]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [GUARDLINE, *args], stdout=subprocess.DEVNULL, stderr=err, env=env, text=True
        )
    started.append(proc)
    found = eventually(lambda: re.search(r'listening on (http://[^\s"]+)', log.read_text()), 30)
    assert found, log.read_text()
    base = found.group(1)
    _wait_ok(base + "/readyz", proc, timeout=60)
    return proc, base, log


def test_serve_with_two_workers(
    tmp_path: Path, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    """The parent binds once and forks two workers; a killed worker is replaced; SIGTERM
    stops everything with status 0 and removes the metrics directory."""
    proc, base, log = _two_workers(tmp_path, "http://127.0.0.1:1", stopped_at_the_end)
    parent = psutil.Process(proc.pid)
    workers = eventually(lambda: len(parent.children()) == 2 and parent.children(), 30)
    assert workers, log.read_text()
    for worker in workers:
        assert f"worker started (pid {worker.pid})" in log.read_text()
    for _ in range(20):  # a fresh connection each time
        assert httpx.get(base + "/healthz", timeout=10).status_code == 200
    assert len(list(tmp_path.glob("guardline-metrics-*"))) == 1

    workers[0].kill()
    replaced = eventually(lambda: {c.pid for c in parent.children()} - {w.pid for w in workers}, 30)
    assert replaced, log.read_text()
    assert f"worker (pid {workers[0].pid}) exited with signal SIGKILL" in log.read_text()
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200

    children = parent.children()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    assert not list(tmp_path.glob("guardline-metrics-*"))


def _requests_total(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == REQUESTS.prometheus:
            return sum(s.value for s in family.samples if s.name == REQUESTS.samples[0])
    return 0.0


def test_a_counter_incremented_in_two_workers_is_reported_as_the_sum(
    tmp_path: Path, stopped_at_the_end: list[subprocess.Popen[str]]
) -> None:
    """Real traffic through ``serve --workers 2``: each worker's own snapshot shows the
    calls it served; ``/metrics``, whichever worker answers, shows their sum. Each worker
    writes its own sample files (every call is sampled here)."""
    samples = tmp_path / "samples"
    with simulator() as sim:
        proc, base, log = _two_workers(
            tmp_path,
            sim.url,
            stopped_at_the_end,
            GUARDLINE_TELEMETRY__SNAPSHOT_INTERVAL="0.2",
            GUARDLINE_SAMPLES__BASELINE_RATE="1",
            GUARDLINE_SAMPLES__JSONL__DIRECTORY=str(samples),
        )
        (metrics_dir,) = tmp_path.glob("guardline-metrics-*")

        def per_worker() -> list[float]:
            """Each worker's own count, from its snapshot file."""
            counts = []
            for path in metrics_dir.glob("worker-*.json"):
                text = path.read_text()
                counts.append(
                    sum(
                        sample[2]
                        for family in json.loads(text)["families"]
                        if family["name"] == REQUESTS.prometheus
                        for sample in family["samples"]
                        if sample[0] == REQUESTS.samples[0]
                    )
                )
            return counts

        sent = 0
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        # Fresh connections until both workers have served some (the kernel picks).
        while sent < 400 and not (len(c := per_worker()) == 2 and min(c) > 0):
            for _ in range(10):
                response = httpx.post(base + "/v1/chat/completions", json=body, timeout=10)
                assert response.status_code == 200
                sent += 1
            eventually(lambda total=sent: sum(per_worker()) == total, 5)
        counts = eventually(lambda: sum(per_worker()) == sent and per_worker(), 10)
        assert counts, (per_worker(), sent)
        assert len(counts) == 2
        assert min(counts) > 0, f"one worker served everything: {counts}"
        for _ in range(10):  # whichever worker answers the scrape
            assert _requests_total(httpx.get(base + "/metrics", timeout=10).text) == sent
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    writers = {path.name.split("-2")[0] for path in samples.glob("*.jsonl")}
    assert writers == {"samples-w0", "samples-w1"}
    lines = [x for path in samples.glob("*.jsonl") for x in path.read_bytes().splitlines()]
    assert len({json.loads(x)["request_id"] for x in lines}) == len(lines) == sent
