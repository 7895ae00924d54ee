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
import os
import sys
from collections.abc import Iterator
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="4 s runs (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 4.0, 1.0
    pin = (os.cpu_count() or 1) >= 2
    sim_cpu, proxy_cpu, load_cpu = (0, 1, 0) if pin else (None, None, None)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Weather?"}]}
    fixed = {"x-sim-reply": REPLY, "x-sim-ttft-ms": "0"}
    import json

    stream_headers = {
        "x-sim-chunks": json.dumps(STREAM_CHUNKS),
        "x-sim-ttft-ms": "0",
        "x-sim-token-delay-ms": "0",
    }
    scenarios = [
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
    results: dict[str, dict[str, Any]] = {}
    with _sink(sink_port), _serve(sim_args, sim_url + "/_sim/health", sim_cpu):
        results["direct"] = {
            s.name: _load(sim_url, s, args.duration, args.warmup, load_cpu) for s in scenarios
        }
        for name, env in configs.items():
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            proxy_args = [
                "serve",
                "--port",
                str(port),
                "--upstream",
                sim_url,
                "--log-level",
                "warning",
            ]
            with (
                _env({**NO_DETECTORS, **env}),
                _serve(proxy_args, url + "/readyz", proxy_cpu) as proc,
            ):
                process = psutil.Process(proc.pid)
                results[name] = {}
                for scenario in scenarios:
                    before = process.cpu_times()
                    result = _load(url, scenario, args.duration, args.warmup, load_cpu)
                    after = process.cpu_times()
                    cpu = (after.user + after.system) - (before.user + before.system)
                    sent = len(result["latencies"]) * (1 + args.warmup / args.duration)
                    result["cpu_us"] = cpu / max(sent, 1) * 1e6
                    results[name][scenario.name] = result
            print(f"  done: {name}", file=sys.stderr)
    print(_report(results, scenarios, configs, args, pin))


def _report(
    results: dict[str, dict[str, Any]],
    scenarios: list[Scenario],
    configs: dict[str, Any],
    args: Any,
    pin: bool,
) -> str:
    import platform

    lines = [
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}; "
        f"pinning {'on' if pin else 'off'}; {args.duration:g} s per run after "
        f"{args.warmup:g} s warm-up; detectors off.",
        "",
        "| scenario | telemetry | added p50 / p95 / p99 ms (vs direct) "
        "| Guardline CPU µs/request | CPU vs off | added p50 vs off |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        key = "ttfb" if scenario.body.get("stream") and scenario.rate else "latencies"
        direct = [_pct(results["direct"][scenario.name][key], q) for q in (0.5, 0.95, 0.99)]
        base = results["off"][scenario.name]
        base_added = _pct(base[key], 0.5) - direct[0]
        for name in configs:
            r = results[name][scenario.name]
            got = [_pct(r[key], q) for q in (0.5, 0.95, 0.99)]
            added = [g - d for g, d in zip(got, direct, strict=True)]
            cpu_ratio = r["cpu_us"] / base["cpu_us"]
            lat_ratio = added[0] / base_added if base_added > 0 else float("nan")
            label = scenario.name + (" — first token" if key == "ttfb" else "")
            lines.append(
                f"| {label} | {name} | {' / '.join(f'{v:.2f}' for v in added)} "
                f"| {r['cpu_us']:.0f} | {cpu_ratio:.2f} | {lat_ratio:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import shutil

    if shutil.which(GUARDLINE) is None:
        sys.exit(f"{GUARDLINE} not found: run `make setup` first")
    main()
