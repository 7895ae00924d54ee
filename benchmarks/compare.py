"""Guardline against the field: the same load direct to the simulator, through Guardline
(no detectors; the default detectors in monitor mode; every default detector in guard
mode) and through LiteLLM's proxy, in one run on one machine.

    make bench-compare        # installs LiteLLM into .venv-litellm first (make bench-setup)
    .venv/bin/python benchmarks/compare.py --litellm .venv-litellm/bin/litellm [--quick]

Placement as in ``overhead.py``: on 2+ CPUs the proxy under test has CPU 1 to itself (one
worker; its helper threads share that core), the simulator and the load generator
(``loadgen.py``, its own process) share CPU 0. Proxies run one at a time, each against
the same simulator, and get the same requests: a system and a user message (~560
characters), answered with the simulator's default ~290-character reply, whole or as a
52-chunk stream with no simulated think time, so every millisecond measured is
processing. Each proxy then serves a soak of ``--soak`` requests in ten steps, its
resident memory read after each. Tables go to stdout as Markdown (``compare_tables.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml
from compare_tables import DIRECT, LITELLM, rate, report
from overhead import GUARDLINE, Scenario, _cpu_model, _free_port, _load, _load_measured, _serve

from guardline import __version__

HERE = Path(__file__).resolve().parent
MASTER_KEY = "sk-bench-0123456789abcdef"
"""LiteLLM refuses to start without a master key (and refuses well-known ones); every
target gets the same Authorization header, which the simulator ignores."""
SYSTEM = (
    "You are the support assistant of a small online shop that sells kitchen equipment. "
    "Answer in a friendly, concise way, in at most three sentences, and never invent order "
    "details you were not given."
)
USER = (
    "Hello! I bought a stainless steel kettle from you last week and it already makes a "
    "rattling noise when the water starts to boil. Is that normal for this model, or should "
    "I send it back? If I return it, how long does the refund usually take, and do I need "
    "the original box?"
)
CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "max_tokens": 256,
    "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
}
STREAM: dict[str, Any] = {**CHAT, "stream": True}
PATH = "/v1/chat/completions"
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}

_OFF = {"enabled": False}
_GUARD = {
    "pii": {"mode": "guard", "action": "redact"},
    "toxicity": {"mode": "guard", "action": "block"},
    "stereotype": {"mode": "guard", "action": "flag"},
}
GUARDLINE_CONFIGS: dict[str, dict[str, Any]] = {
    "Guardline, no detectors": {"detectors": {"pii": _OFF, "toxicity": _OFF, "stereotype": _OFF}},
    "Guardline, monitor (default)": {},
    "Guardline, guard": {"policy": {"request": _GUARD, "response": _GUARD}},
}
LITELLM_ENV = {
    # the bundled cost map and the other bundled data: no fetch from GitHub at start
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOG": "ERROR",  # also turns uvicorn's access log off, as Guardline's is
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true",
}


@dataclass
class Plan:
    latency: list[Scenario]
    saturation: list[Scenario]
    soak: int
    soak_steps: int = 10
    soak_concurrency: int = 32


def _plan(quick: bool, soak: int | None) -> Plan:
    # Open-loop rates stay well under LiteLLM's ~110 req/s (one worker, one core) so its
    # latency is processing, not queueing; 10 streams/s is a third of its stream capacity.
    rates = [25, 75] if quick else [25, 50, 75]
    latency = [Scenario(f"chat, {r} req/s", PATH, CHAT, AUTH, rate=r) for r in rates]
    latency.append(Scenario("chat stream, 10 streams/s", PATH, STREAM, AUTH, rate=10))
    chat_levels, stream_levels = ([1, 32], [8]) if quick else ([1, 8, 32, 64], [1, 8, 32])
    saturation = [
        Scenario(f"chat, {c} connections", PATH, CHAT, AUTH, concurrency=c) for c in chat_levels
    ] + [
        Scenario(f"chat stream, {c} connections", PATH, STREAM, AUTH, concurrency=c)
        for c in stream_levels
    ]
    return Plan(latency, saturation, soak or (10_000 if quick else 100_000))


@dataclass
class Proxy:
    name: str
    url: str
    process: psutil.Process


def rss(process: psutil.Process) -> int:
    """Resident bytes of the process and its children (uvicorn workers, if any)."""
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with suppress(psutil.NoSuchProcess):  # it ended meanwhile
            total += child.memory_info().rss
    return int(total)


@contextmanager
def _guardline(
    name: str, config: dict[str, Any], sim_url: str, root: Path, cpu: int | None
) -> Iterator[Proxy]:
    port = _free_port()
    work = root / f"guardline-{len(list(root.glob('guardline-*')))}"
    work.mkdir()
    (work / "guardline.yaml").write_text(yaml.safe_dump(config))
    args = ["serve", "--port", str(port), "--upstream", sim_url, "--log-level", "warning"]
    args += ["--config", str(work / "guardline.yaml")]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GUARDLINE_FEEDBACK_SECRET": "bench"}  # no warning about it
    with _serve(args, url + "/readyz", cpu, env=env, cwd=work, log=work / "log") as proc:
        yield Proxy(name, url, psutil.Process(proc.pid))


@contextmanager
def _litellm(binary: Path, sim_url: str, root: Path, cpu: int | None) -> Iterator[Proxy]:
    port = _free_port()
    config = {
        "model_list": [
            {
                "model_name": CHAT["model"],
                "litellm_params": {
                    "model": "openai/" + CHAT["model"],
                    "api_base": sim_url + "/v1",
                    "api_key": "sk-simulator",
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},  # and no database_url: no DB
    }
    work = root / "litellm"
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    # Only what it needs: its CLI also reads PORT, HOST, DEBUG, NUM_WORKERS... from the
    # environment, and `import litellm` loads a .env file.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work), **LITELLM_ENV}
    args = ["--config", str(work / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)]
    args += ["--num_workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with _serve(
        args,
        url + "/health/liveliness",
        cpu,
        program=str(binary),
        env=env,
        cwd=work,
        log=work / "log",
        timeout=120,
    ) as proc:
        yield Proxy(LITELLM, url, psutil.Process(proc.pid))


def _warm(url: str, n: int = 20) -> None:
    """A few calls before measuring: LiteLLM's first call takes ~1 s (lazy imports)."""
    with httpx.Client(timeout=30) as client:
        for body in (CHAT, STREAM):
            for _ in range(n):
                client.post(url + PATH, json=body, headers=AUTH).raise_for_status()


def _soak(proxy: Proxy, plan: Plan, cpu: int | None) -> dict[str, Any]:
    """``plan.soak`` calls in ``plan.soak_steps`` steps; resident memory after each."""
    step = Scenario(
        "soak",
        PATH,
        CHAT,
        AUTH,
        concurrency=plan.soak_concurrency,
        requests=plan.soak // plan.soak_steps,
    )
    memory = [rss(proxy.process)]
    before = proxy.process.cpu_times()
    done = errors = 0
    elapsed = 0.0
    for _ in range(plan.soak_steps):
        result = _load(proxy.url, step, 24 * 3600, 0, cpu)
        done += len(result["latencies"])
        errors += result["errors"]
        elapsed += result["elapsed"]
        memory.append(rss(proxy.process))
        print(f"    soak: {done:,} calls, {memory[-1] / 2**20:.1f} MiB", file=sys.stderr)
    after = proxy.process.cpu_times()
    used = (after.user + after.system) - (before.user + before.system)
    return {"rss": memory, "requests": done, "errors": errors, "elapsed": elapsed, "cpu": used}


def _measure(proxy: Proxy | None, url: str, plan: Plan, args: Any) -> dict[str, Any]:
    load_cpu = args.load_cpu
    out: dict[str, Any] = {}
    for scenario in [*plan.latency, *plan.saturation]:
        if proxy is None:
            out[scenario.name] = _load(url, scenario, args.duration, args.warmup, load_cpu)
        else:
            out[scenario.name] = _load_measured(
                proxy.process,
                url,
                scenario,
                duration=args.duration,
                warmup=args.warmup,
                cpu=load_cpu,
            )
        print(f"  {scenario.name}: {rate(out[scenario.name]):,.0f}/s", file=sys.stderr)
    if proxy is not None:
        out["soak"] = _soak(proxy, plan, load_cpu)
    return out


def _litellm_version(binary: Path) -> str:
    python = binary.with_name("python")
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def machine(litellm: str | None) -> str:
    memory = psutil.virtual_memory().total / 2**30
    parts = [
        f"{os.cpu_count()} CPUs ({_cpu_model()}), {memory:.0f} GiB",
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"Guardline {__version__} (one uvicorn worker, uvloop + httptools)",
    ]
    if litellm:
        parts.append(f"LiteLLM {litellm} (`litellm --num_workers 1`, uvloop + httptools, no DB)")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_litellm = Path(__file__).resolve().parents[1] / ".venv-litellm" / "bin" / "litellm"
    parser.add_argument(
        "--litellm",
        type=Path,
        default=default_litellm,
        help="LiteLLM's CLI (make bench-setup installs it); missing: LiteLLM is left out",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per run")
    parser.add_argument("--soak", type=int, help="calls in each proxy's soak (default 100,000)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer, shorter runs")
    parser.add_argument(
        "--litellm-soak", type=int, help="calls in LiteLLM's soak (default: --soak's)"
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        type=Path,
        default=HERE / "results" / "compare.json",
        help="raw results, rewritten after each target (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 4.0, 1.0
    pin = (os.cpu_count() or 1) >= 2
    sim_cpu, proxy_cpu, args.load_cpu = (0, 1, 0) if pin else (None, None, None)
    plan = _plan(args.quick, args.soak)
    litellm = args.litellm.resolve() if args.litellm.exists() else None  # servers run elsewhere
    if litellm is None:
        print(f"LiteLLM not found at {args.litellm} (make bench-setup): left out", file=sys.stderr)
    version = _litellm_version(litellm) if litellm else None
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="guardline-compare-") as tmp:
        root = Path(tmp)
        sim_port = _free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        sim_args = ["simulate", "--port", str(sim_port), "--ttft-ms", "0", "--token-delay-ms", "0"]
        sim_args += ["--log-level", "warning"]
        with _serve(sim_args, sim_url + "/_sim/health", sim_cpu, cwd=root):
            print(DIRECT, file=sys.stderr)
            _warm(sim_url)
            results[DIRECT] = _measure(None, sim_url, plan, args)
            _save(args.json, results)
            for name, config in GUARDLINE_CONFIGS.items():
                print(name, file=sys.stderr)
                with _guardline(name, config, sim_url, root, proxy_cpu) as proxy:
                    _warm(proxy.url)
                    results[name] = _measure(proxy, proxy.url, plan, args)
                _save(args.json, results)
            if litellm:
                print(LITELLM, file=sys.stderr)
                with _litellm(litellm, sim_url, root, proxy_cpu) as proxy:
                    _warm(proxy.url)
                    theirs = replace(plan, soak=args.litellm_soak or plan.soak)
                    results[LITELLM] = _measure(proxy, proxy.url, theirs, args)
                _save(args.json, results)
    command = " ".join([Path(sys.executable).name, *sys.argv])
    minutes = (time.monotonic() - started) / 60
    print(
        report(results, plan, machine=machine(version), command=command, minutes=minutes, pin=pin)
    )


def _save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results))


if __name__ == "__main__":
    if not Path(GUARDLINE).exists():
        sys.exit(f"{GUARDLINE} not found: run `make setup` first")
    main()
