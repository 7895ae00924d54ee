"""Detector throughput, the stream guard's cost on a long stream, and the time to first
token it adds, each against a baseline in the same run.

    make bench-detectors      # or: .venv/bin/python benchmarks/detectors.py [--quick]

1. Throughput (KB/s, one thread, CPU time) per detector and for the default offline stack,
   on answer-like prose (benchmarks/corpus.py) and, when ../shared/data is present, on the
   PII-dense presidio-research sentences.
2. A 20,000-token chat stream through the stream guard (every default detector in guard
   mode) against scanning the same text once: CPU spent in detectors, and in all.
3. Time to first token through Guardline in guard mode, in monitor mode and direct, with
   the simulator streaming as fast as it can (the guard's own cost) and paced like a model
   (20 ms to first token, 10 ms per token: guard mode then holds the first sentence back,
   as its contract says). One request at a time, 20 ms apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus import prose

from guardline.detectors.base import Detector
from guardline.detectors.engine import Scanner
from guardline.detectors.guardrails import Guardrails
from guardline.detectors.registry import build_detectors
from guardline.detectors.sentences import split
from guardline.exchange import Endpoint, Exchange
from guardline.proxy.adapters import ADAPTERS, StreamState
from guardline.proxy.guard import StreamGuard
from guardline.proxy.inspection import Inspector
from guardline.proxy.sse import parse_event
from guardline.settings import DetectorsSettings, load_settings
from guardline.simulator import openai as sim_openai
from guardline.simulator.reply import Reply
from guardline.simulator.text import pieces

GUARDLINE = str(Path(sys.executable).with_name("guardline"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GUARD_ALL = {
    "response": {
        "pii": {"mode": "guard", "action": "redact"},
        "toxicity": {"mode": "guard", "action": "block"},
        "stereotype": {"mode": "guard", "action": "flag"},
    }
}


class Timed:
    """Wraps a detector and adds up the CPU time spent in it."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name, self.cost, self.context_chars, self.backend = (
            inner.name,
            inner.cost,
            inner.context_chars,
            inner.backend,
        )
        self.seconds = 0.0

    def detect(self, text: str, start: int = 0) -> Any:
        started = time.process_time()
        try:
            return self.inner.detect(text, start)
        finally:
            self.seconds += time.process_time() - started


def _best(runs: int, work: Any) -> float:
    """Fewest CPU seconds over ``runs`` (the first run warms caches and is discarded)."""
    work()
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def throughput(detectors: dict[str, Detector], text: str) -> dict[str, float]:
    kb = len(text.encode()) / 1024
    out = {name: kb / _best(3, lambda d=d: d.detect(text)) for name, d in detectors.items()}
    scanner = Scanner(detectors)
    out["default stack"] = kb / _best(3, lambda: scanner.scan_sync(text, list(detectors)))
    return out


def stream_cost(detectors: dict[str, Detector], tokens: int) -> dict[str, float]:
    text_pieces = tuple(pieces(prose(tokens * 8, seed=11))[:tokens])
    text = "".join(text_pieces)
    reply = Reply("bench", "m", 1, text, text_pieces, None, False, 10, tokens, False)
    frames = [f.data for f in sim_openai.chat_stream(reply)]
    timed = {name: Timed(d) for name, d in detectors.items()}
    guardrails = Guardrails(load_settings(overrides={"policy": GUARD_ALL}), timed)  # type: ignore[arg-type]
    adapter = ADAPTERS["openai"]
    policy = guardrails.policies.resolve("openai", "/v1/chat/completions", "m", None)
    exchange = Exchange("bench", "openai", Endpoint.CHAT_COMPLETIONS, "POST", "/", 0.0)

    Scanner(timed).scan_sync(text, list(timed))  # type: ignore[arg-type]  # warm up
    for t in timed.values():
        t.seconds = 0.0

    async def guard_run() -> None:
        guard = StreamGuard(
            Inspector(guardrails, policy, exchange), adapter, Endpoint.CHAT_COMPLETIONS
        )
        state = StreamState()
        for frame in frames:
            event = parse_event(frame)
            adapter.inspect_event(Endpoint.CHAT_COMPLETIONS, event, state)
            await guard.feed(event, state.last)

    started = time.process_time()
    asyncio.run(guard_run())
    guard_total = time.process_time() - started
    guard_detectors = sum(t.seconds for t in timed.values())
    for t in timed.values():
        t.seconds = 0.0
    started = time.process_time()
    Scanner(timed).scan_sync(text, list(timed))  # type: ignore[arg-type]
    once_total = time.process_time() - started
    once_detectors = sum(t.seconds for t in timed.values())
    return {
        "tokens": tokens,
        "kilobytes": len(text.encode()) / 1024,
        "sentences": len(split(text)),
        "guard_detector_s": guard_detectors,
        "once_detector_s": once_detectors,
        "detector_ratio": guard_detectors / once_detectors,
        "guard_total_s": guard_total,
        "once_total_s": once_total,
        "total_ratio": guard_total / once_total,
        "guard_us_per_token": guard_total / tokens * 1e6,
    }


# time to first token -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serve(args: list[str], ready: str) -> Iterator[None]:
    proc = subprocess.Popen([GUARDLINE, *args], stderr=subprocess.DEVNULL)
    try:
        for _ in range(400):
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


def _first_token(url: str, headers: dict[str, str], n: int) -> dict[str, list[float]]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    first_event, first_text = [], []
    with httpx.Client(timeout=30) as client:
        for _ in range(n):
            started = time.perf_counter()
            got_event = got_text = None
            with client.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers
            ) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: {"):
                        continue
                    now = time.perf_counter()
                    got_event = got_event or now
                    if got_text is None and json.loads(line[6:])["choices"][0]["delta"].get(
                        "content"
                    ):
                        got_text = now
            first_event.append((got_event or started) - started)
            first_text.append((got_text or started) - started)
    return {"first_event": first_event, "first_text": first_text}


def ttft(n: int) -> dict[str, dict[str, dict[str, list[float]]]]:
    sim_port, guard_port, monitor_port, bare_port = (_free_port() for _ in range(4))
    sim = f"http://127.0.0.1:{sim_port}"
    root = Path(tempfile.mkdtemp())
    config, bare = root / "guard.yaml", root / "bare.yaml"
    config.write_text(yaml.safe_dump({"policy": GUARD_ALL}))
    off = {"enabled": False}
    bare.write_text(yaml.safe_dump({"detectors": {"pii": off, "toxicity": off, "stereotype": off}}))
    answer = prose(600, seed=5)
    chunks = json.dumps(pieces(answer))
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    proxies = {
        "bare": (bare_port, bare),
        "monitor": (monitor_port, None),
        "guard": (guard_port, config),
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            _serve(
                ["simulate", "--port", str(sim_port), "--log-level", "warning"],
                sim + "/_sim/health",
            )
        )
        for port, cfg in proxies.values():
            args = ["serve", "--port", str(port), "--upstream", sim, "--log-level", "warning"]
            stack.enter_context(
                _serve(
                    args + (["--config", str(cfg)] if cfg else []),
                    f"http://127.0.0.1:{port}/readyz",
                )
            )
        targets = {"direct": sim} | {
            name: f"http://127.0.0.1:{port}" for name, (port, _) in proxies.items()
        }
        paces = {"as fast as possible": (0, 0), "paced (20 ms + 10 ms/token)": (20, 10)}
        for pacing, (first_ms, token_ms) in paces.items():
            headers = {
                "x-sim-chunks": chunks,
                "x-sim-ttft-ms": str(first_ms),
                "x-sim-token-delay-ms": str(token_ms),
            }
            count = n if token_ms == 0 else max(20, n // 10)
            results[pacing] = {t: _first_token(url, headers, count) for t, url in targets.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller corpus and fewer requests")
    args = parser.parse_args()
    detectors = build_detectors(DetectorsSettings())
    size = 50_000 if args.quick else 300_000
    lines = ["Throughput, one thread (KB/s of text per CPU-second):", ""]
    corpora = {"answer-like prose": prose(size)}
    if (SHARED / "presidio_generated_large.json").exists():
        texts = [
            r["full_text"]
            for r in json.loads((SHARED / "presidio_generated_large.json").read_text())
        ]
        corpora["presidio-research sentences (PII in every one)"] = "\n".join(texts)
    lines += [
        "| corpus | " + " | ".join([*detectors, "default stack"]) + " |",
        "|---" * (len(detectors) + 2) + "|",
    ]
    for name, text in corpora.items():
        rates = throughput(detectors, text)
        lines.append(
            f"| {name} ({len(text.encode()) // 1024} KB) | "
            + " | ".join(f"{v:,.0f}" for v in rates.values())
            + " |"
        )
    cost = stream_cost(detectors, 2_000 if args.quick else 20_000)
    lines += [
        "",
        f"A {cost['tokens']:,}-token stream ({cost['kilobytes']:.0f} KB, {cost['sentences']:,} "
        "sentences), every default detector in guard mode, against scanning the same text once:",
        "",
        "| | stream guard | scanned once | ratio |",
        "|---|---|---|---|",
        f"| CPU in detectors (s) | {cost['guard_detector_s']:.3f} | "
        f"{cost['once_detector_s']:.3f} | {cost['detector_ratio']:.2f} |",
        f"| CPU in all (s) | {cost['guard_total_s']:.3f} | {cost['once_total_s']:.3f} | "
        f"{cost['total_ratio']:.2f} |",
        "",
        f"Stream guard, all included: {cost['guard_us_per_token']:.0f} µs per token.",
        "",
        "Time to first token (ms, p50 / p95; one request at a time, back to back):",
        "",
        "| upstream | measured | direct | Guardline, no detectors | monitor | guard "
        "| guard added p50 (vs no detectors / vs direct) |",
        "|---|---|---|---|---|---|---|",
    ]
    for pacing, targets in ttft(60 if args.quick else 300).items():
        for what, label in (("first_event", "first event"), ("first_text", "first text")):
            cells = [targets[t][what] for t in ("direct", "bare", "monitor", "guard")]
            p50 = [statistics.median(c) * 1000 for c in cells]
            p95 = [sorted(c)[int(0.95 * (len(c) - 1))] * 1000 for c in cells]
            cols = " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(p50, p95, strict=True))
            added = f"{p50[3] - p50[1]:.2f} / {p50[3] - p50[0]:.2f}"
            lines.append(f"| {pacing} | {label} | {cols} | {added} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
