"""What telemetry costs: the same load direct, through Guardline with telemetry off, on
(metrics, the default), and on with OTLP push of metrics and traces, in one run.

    make bench-telemetry      # or: .venv/bin/python benchmarks/telemetry.py [--quick]

Reports, per configuration, Guardline's added latency (p50/p95/p99 against the direct
call) and its CPU per request in a closed-loop run, and the ratio of each to telemetry
off. Detectors are switched off, so the proxy's own cost is smallest and telemetry's
share of it largest: the strictest comparison. Placement as in ``overhead.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil
from overhead import (
    GUARDLINE,
    REPLY,
    STREAM_CHUNKS,
    Scenario,
    _cpu_model,
    _free_port,
    _load,
    _load_measured,
    _pct,
    _serve,
)

SINK = """
import sys, uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

NO_DETECTORS = {
    "GUARDLINE_DETECTORS__PII__ENABLED": "false",
    "GUARDLINE_DETECTORS__TOXICITY__ENABLED": "false",
    "GUARDLINE_DETECTORS__STEREOTYPE__ENABLED": "false",
}


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _sink(port: int) -> Iterator[None]:
    import subprocess
    import time

    import httpx

    proc = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    try:
        for _ in range(200):
            try:
                httpx.post(f"http://127.0.0.1:{port}/", content=b"")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def _recording(url: str) -> tuple[float, float]:
    """Guardline's own account: CPU seconds spent recording telemetry, and requests."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from guardline.exporters.names import RECORDING_CPU, REQUESTS

    response = httpx.get(url + "/metrics", timeout=10)
    if response.status_code != 200:  # telemetry off
        return 0.0, 0.0
    totals = {RECORDING_CPU.samples[0]: 0.0, REQUESTS.samples[0]: 0.0}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals[RECORDING_CPU.samples[0]], totals[REQUESTS.samples[0]]


def _scenarios() -> list[Scenario]:
    """Plain chat and 32-chunk streams, open loop and closed loop (also used by
    ``samples.py``)."""
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather?"}]}
    fixed = {"x-sim-reply": REPLY, "x-sim-ttft-ms": "0"}
    stream_headers = {
        "x-sim-chunks": json.dumps(STREAM_CHUNKS),
        "x-sim-ttft-ms": "0",
        "x-sim-token-delay-ms": "0",
    }
    return [
        Scenario("chat, 400 req/s", "/v1/chat/completions", chat, fixed, rate=400),
        Scenario(
            "chat stream (32 chunks), 100 streams/s",
            "/v1/chat/completions",
            {**chat, "stream": True},
            stream_headers,
            rate=100,
        ),
        Scenario("chat, 16 connections", "/v1/chat/completions", chat, fixed, concurrency=16),
        Scenario(
            "chat stream (32 chunks), 16 connections",
            "/v1/chat/completions",
            {**chat, "stream": True},
            stream_headers,
            concurrency=16,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--quick", action="store_true", help="4 s runs, one round (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 4.0, 1.0, 1
    pin = (os.cpu_count() or 1) >= 2
    sim_cpu, proxy_cpu, load_cpu = (0, 1, 0) if pin else (None, None, None)
    scenarios = _scenarios()
    sim_port, sink_port = _free_port(), _free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    configs = {
        "off": {"GUARDLINE_TELEMETRY__ENABLED": "false"},
        "on (metrics)": {},
        "on + OTLP metrics and traces": {
            "GUARDLINE_TELEMETRY__OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "GUARDLINE_TELEMETRY__OTLP_INTERVAL": "5",
        },
    }
    sim_args = ["simulate", "--port", str(sim_port), "--log-level", "warning"]
    # Configurations alternate, round after round, so drift on the machine hits them alike;
    # the report takes each figure's median over the rounds.
    results: dict[str, dict[str, list[dict[str, Any]]]] = {"direct": {}}
    with _sink(sink_port), _serve(sim_args, sim_url + "/_sim/health", sim_cpu):
        for scenario in scenarios:
            direct = _load(sim_url, scenario, args.duration, args.warmup, load_cpu)
            results["direct"][scenario.name] = [direct]
        for round_ in range(args.rounds):
            for name, env in configs.items():
                port = _free_port()
                url = f"http://127.0.0.1:{port}"
                proxy_args = [
                    "serve", "--port", str(port), "--upstream", sim_url, "--log-level", "warning",
                ]  # fmt: skip
                with (
                    _env({**NO_DETECTORS, **env}),
                    _serve(proxy_args, url + "/readyz", proxy_cpu) as proc,
                ):
                    process = psutil.Process(proc.pid)
                    for scenario in scenarios:
                        before = _recording(url)
                        result = _load_measured(
                            process,
                            url,
                            scenario,
                            duration=args.duration,
                            warmup=args.warmup,
                            cpu=load_cpu,
                        )
                        after = _recording(url)
                        if after[1] > before[1]:
                            result["recording_us"] = (
                                (after[0] - before[0]) / (after[1] - before[1]) * 1e6
                            )
                        results.setdefault(name, {}).setdefault(scenario.name, []).append(result)
                print(f"  done: round {round_ + 1}, {name}", file=sys.stderr)
    print(_report(results, scenarios, configs, args, pin))


def _report(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    scenarios: list[Scenario],
    configs: dict[str, Any],
    args: Any,
    pin: bool,
) -> str:
    import platform

    lines = [
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}; "
        f"pinning {'on' if pin else 'off'}; {args.duration:g} s per run after "
        f"{args.warmup:g} s warm-up; detectors off; medians of {args.rounds} alternating "
        "rounds.",
        "",
        "| scenario | telemetry | added p50 / p95 / p99 ms (vs direct) "
        "| Guardline CPU µs/request | CPU vs off | added p50 vs off "
        "| recording µs/request (Guardline's own account) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += comparison_rows(results, scenarios, configs, _recording_column)
    return "\n".join(lines)


def _recording_column(runs: list[dict[str, Any]]) -> str:
    own = [r["recording_us"] for r in runs if "recording_us" in r]
    return f"{statistics.median(own):.1f}" if own else "—"


def comparison_rows(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    scenarios: list[Scenario],
    configs: Iterable[str],
    last: Callable[[list[dict[str, Any]]], str],
) -> list[str]:
    """One table row per scenario and configuration: added latency p50/p95/p99 against
    the direct call (to the first byte for paced streams), Guardline's CPU per request,
    both as ratios to the "off" configuration, and ``last(runs)`` as the final column.
    Each figure is the median over the rounds."""
    rows = []
    for scenario in scenarios:
        key = "ttfb" if scenario.body.get("stream") and scenario.rate else "latencies"
        (direct_run,) = results["direct"][scenario.name]
        direct = [_pct(direct_run[key], q) for q in (0.5, 0.95, 0.99)]
        runs = {name: results[name][scenario.name] for name in configs}

        def added(name: str, q: float, d: float, key: str = key, runs: Any = runs) -> float:
            return statistics.median(_pct(r[key], q) for r in runs[name]) - d

        def cpu(name: str, runs: Any = runs) -> float:
            return statistics.median(r["proxy_cpu_us_per_request"] for r in runs[name])

        base_added = added("off", 0.5, direct[0])
        for name in configs:
            got = [added(name, q, d) for q, d in zip((0.5, 0.95, 0.99), direct, strict=True)]
            lat_ratio = got[0] / base_added if base_added > 0.05 else float("nan")
            label = scenario.name + (" — first token" if key == "ttfb" else "")
            rows.append(
                f"| {label} | {name} | {' / '.join(f'{v:.2f}' for v in got)} "
                f"| {cpu(name):.0f} | {cpu(name) / cpu('off'):.2f} | {lat_ratio:.2f} "
                f"| {last(runs[name])} |"
            )
    return rows


if __name__ == "__main__":
    import shutil

    if shutil.which(GUARDLINE) is None:
        sys.exit(f"{GUARDLINE} not found: run `make setup` first")
    main()
