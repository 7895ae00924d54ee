"""Guardline's overhead: the same load, direct to the simulator and through Guardline, in
one run. Reports added latency and time to first token (p50/p95/p99) and throughput ratios.

    make bench            # or: .venv/bin/python benchmarks/overhead.py [--quick]

The simulator, Guardline (one worker) and the load generator each run in their own
process. With ``--pin`` (the default on 2+ CPUs) Guardline gets CPU 1 to itself and the
simulator and load generator share CPU 0, so the proxy's cost is not blurred by the
processes around it; the direct runs use the same placement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

HERE = Path(__file__).resolve().parent
GUARDLINE = str(Path(sys.executable).with_name("guardline"))
REPLY = "Sure! Here is a short, friendly answer to your question about the weather today."
STREAM_CHUNKS = [f" token{i}" for i in range(32)]


@dataclass
class Scenario:
    name: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    rate: float = 0.0
    concurrency: int = 64
    requests: int = 0
    """Closed loop: stop after this many (a soak); 0: run for the duration."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pinned(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextmanager
def _serve(
    args: Sequence[str],
    ready: str,
    cpu: int | None,
    *,
    program: str = GUARDLINE,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
    timeout: float = 20,
) -> Iterator[subprocess.Popen[bytes]]:
    """``program args`` until ``ready`` answers 200; SIGTERM when done. Output goes to
    ``log`` (appended) or nowhere."""
    out = log.open("ab") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [program, *args],
        preexec_fn=_pinned(cpu),  # noqa: PLW1509 - it only pins the CPU
        stdout=out,
        stderr=out,
        env=env,
        cwd=cwd,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{args[0]} did not start")
            time.sleep(0.05)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        if log:
            out.close()  # type: ignore[union-attr]


def _load(
    url: str, scenario: Scenario, duration: float, warmup: float, cpu: int | None
) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as body:
        body.write(json.dumps(scenario.body).encode())
    cmd = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--url",
        url + scenario.path,
        "--body",
        body.name,
        "--concurrency",
        str(scenario.concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
    ]
    if scenario.rate:
        cmd += ["--rate", str(scenario.rate)]
    if scenario.requests:
        cmd += ["--requests", str(scenario.requests)]
    for name, value in scenario.headers.items():
        cmd += ["--header", f"{name}: {value}"]
    out = subprocess.run(cmd, capture_output=True, check=True, preexec_fn=_pinned(cpu))
    os.unlink(body.name)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _load_measured(
    process: psutil.Process,
    url: str,
    scenario: Scenario,
    *,
    duration: float,
    warmup: float,
    cpu: int | None,
) -> dict[str, Any]:
    """``_load``, plus the proxy process's CPU per request (``proxy_cpu_us_per_request``)."""
    before = process.cpu_times()
    result = _load(url, scenario, duration, warmup, cpu)
    after = process.cpu_times()
    # The proxy's CPU over the whole run (warm-up included) per request sent in it.
    used = (after.user + after.system) - (before.user + before.system)
    sent = len(result["latencies"]) * (1 + warmup / duration)
    result["proxy_cpu_us_per_request"] = used / max(sent, 1) * 1e6
    result["proxy_cpu_seconds"] = used
    return result


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _scenarios(quick: bool) -> tuple[list[Scenario], list[Scenario]]:
    chat = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What's the weather like?"}],
    }
    fixed = {"x-sim-reply": REPLY, "x-sim-ttft-ms": "0"}
    stream_headers = {
        "x-sim-chunks": json.dumps(STREAM_CHUNKS),
        "x-sim-ttft-ms": "20",
        "x-sim-token-delay-ms": "2",
    }
    rates = [100, 400] if quick else [100, 400, 1000]
    latency = [
        Scenario(f"chat, {r} req/s", "/v1/chat/completions", chat, fixed, rate=r) for r in rates
    ]
    latency.append(
        Scenario(
            "chat stream (32 tokens, 20 ms TTFT, 2 ms/token), 50 streams/s",
            "/v1/chat/completions",
            {**chat, "stream": True},
            stream_headers,
            rate=50,
        )
    )
    latency.append(
        Scenario(
            "messages stream (32 tokens, 20 ms TTFT, 2 ms/token), 50 streams/s",
            "/v1/messages",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "stream": True,
                "messages": chat["messages"],
            },
            stream_headers,
            rate=50,
        )
    )
    levels = [1, 16] if quick else [1, 4, 16, 64]
    saturation = [
        Scenario(f"chat, {c} connections", "/v1/chat/completions", chat, fixed, concurrency=c)
        for c in levels
    ]
    return latency, saturation


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per run")
    parser.add_argument("--quick", action="store_true", help="fewer levels, 4 s runs (a smoke run)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--json", metavar="FILE", help="also write raw results here")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 4.0, 1.0
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    sim_cpu, proxy_cpu, load_cpu = (0, 1, 0) if pin else (None, None, None)
    sim_port, proxy_port = _free_port(), _free_port()
    sim_url, proxy_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{proxy_port}"
    latency, saturation = _scenarios(args.quick)
    raw: dict[str, Any] = {}
    sim_args = [
        "simulate",
        "--port",
        str(sim_port),
        "--ttft-ms",
        "0",
        "--token-delay-ms",
        "0",
        "--log-level",
        "warning",
    ]
    proxy_args = [
        "serve",
        "--port",
        str(proxy_port),
        "--upstream",
        sim_url,
        "--log-level",
        "warning",
    ]
    with (
        _serve(sim_args, sim_url + "/_sim/health", sim_cpu),
        _serve(proxy_args, proxy_url + "/readyz", proxy_cpu) as proxy,
    ):
        guardline = psutil.Process(proxy.pid)
        for scenario in [*latency, *saturation]:
            raw[scenario.name] = {
                "direct": _load(sim_url, scenario, args.duration, args.warmup, load_cpu)
            }
            raw[scenario.name]["guardline"] = _load_measured(
                guardline,
                proxy_url,
                scenario,
                duration=args.duration,
                warmup=args.warmup,
                cpu=load_cpu,
            )
            print(f"  done: {scenario.name}", file=sys.stderr)
    print(_report(raw, latency, saturation, args, pin))
    if args.json:
        Path(args.json).write_text(json.dumps(raw))


def _report(
    raw: dict[str, Any], latency: list[Scenario], saturation: list[Scenario], args: Any, pin: bool
) -> str:
    lines = [
        f"Machine: {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; pinning {'on' if pin else 'off'}; "
        f"{args.duration:g} s measured per run after {args.warmup:g} s warm-up.",
        "",
        "Latency, open loop (ms; added = Guardline minus direct at the same percentile):",
        "",
        "| scenario | direct p50 / p95 / p99 | Guardline p50 / p95 / p99 "
        "| added p50 / p95 / p99 | errors |",
        "|---|---|---|---|---|",
    ]
    for scenario in latency:
        d, g = raw[scenario.name]["direct"], raw[scenario.name]["guardline"]
        key = "ttfb" if scenario.body.get("stream") else "latencies"
        label = scenario.name + (" — time to first token" if key == "ttfb" else "")
        dp = [_pct(d[key], q) for q in (0.5, 0.95, 0.99)]
        gp = [_pct(g[key], q) for q in (0.5, 0.95, 0.99)]
        added = [b - a for a, b in zip(dp, gp, strict=True)]
        lines.append(
            f"| {label} | {_fmt(dp)} | {_fmt(gp)} | {_fmt(added)} | {d['errors']} / {g['errors']} |"
        )
        if key == "ttfb":
            dt = [_pct(d["latencies"], q) for q in (0.5, 0.99)]
            gt = [_pct(g["latencies"], q) for q in (0.5, 0.99)]
            lines.append(
                f"| {scenario.name} — whole stream (p50 / p99) | {_fmt(dt)} | {_fmt(gt)} | "
                f"{_fmt([b - a for a, b in zip(dt, gt, strict=True)])} | |"
            )
    lines += [
        "",
        "Throughput, closed loop (requests/s; the load generator's own CPU use shows it is "
        "not the limit):",
        "",
        "| scenario | direct req/s | Guardline req/s | ratio | Guardline p50 ms "
        "| Guardline CPU µs/request (→ req/s per core) | load-generator CPU (direct / Guardline) |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in saturation:
        d, g = raw[scenario.name]["direct"], raw[scenario.name]["guardline"]
        d_rps, g_rps = len(d["latencies"]) / d["elapsed"], len(g["latencies"]) / g["elapsed"]
        cpu_us = g["proxy_cpu_us_per_request"]
        lines.append(
            f"| {scenario.name} | {d_rps:,.0f} | {g_rps:,.0f} | {g_rps / d_rps:.2f} | "
            f"{_pct(g['latencies'], 0.5):.2f} | {cpu_us:.0f} (→ {1e6 / cpu_us:,.0f}) | "
            f"{_cpu_share(d):.0%} / {_cpu_share(g):.0%} |"
        )
    return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def _cpu_share(result: dict[str, Any]) -> float:
    return float(result["cpu_seconds"]) / float(result["wall_seconds"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    if shutil.which(GUARDLINE) is None:
        sys.exit(f"{GUARDLINE} not found: run `make setup` first")
    main()
