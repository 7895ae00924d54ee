"""The comparison's Markdown tables: latency added over the direct call, saturation
throughput, CPU per 1,000 calls, memory over the soak, and the [7/7] targets, each as
ratios against the direct call and against LiteLLM."""

from __future__ import annotations

import math
from typing import Any

from overhead import _pct

DIRECT = "direct"
LITELLM = "LiteLLM"
BARE = "Guardline, no detectors"
MONITOR = "Guardline, monitor (default)"

Results = dict[str, dict[str, Any]]


def report(
    results: Results, plan: Any, *, machine: str, command: str, minutes: float, pin: bool
) -> str:
    placement = (
        "proxy alone on CPU 1; simulator and load generator on CPU 0"
        if pin
        else "no pinning (fewer than 2 CPUs)"
    )
    lines = [
        f"Machine: {machine}.",
        f"Placement: {placement}. Command: `{command}` ({minutes:.0f} min).",
        "",
        *_latency(results, [s for s in plan.latency if not s.body.get("stream")]),
        "",
        *_streams(results, [s for s in plan.latency if s.body.get("stream")]),
        "",
        *_saturation(results, plan.saturation),
        "",
        *_memory(results, plan),
        "",
        *_targets(results, plan),
    ]
    return "\n".join(lines)


def _ms(values: list[float]) -> str:
    return " / ".join("—" if math.isnan(v) else f"{v:.2f}" for v in values)


def _ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "—"
    return f"{a / b:.3f}" if a / b < 0.1 else f"{a / b:.2f}"


def _percentiles(result: dict[str, Any], key: str) -> list[float]:
    return [_pct(result[key], q) for q in (0.5, 0.95, 0.99)]


def _added(results: Results, target: str, scenario: str, key: str) -> list[float]:
    ours = _percentiles(results[target][scenario], key)
    base = _percentiles(results[DIRECT][scenario], key)
    return [a - b for a, b in zip(ours, base, strict=True)]


def _proxies(results: Results) -> list[str]:
    return [t for t in results if t != DIRECT]


def _latency(results: Results, scenarios: list[Any]) -> list[str]:
    return _latency_table(
        results,
        scenarios,
        "latencies",
        "Latency, non-streaming chat, open loop (ms; added = target minus direct at the same "
        "percentile; the last column divides a target's added p50 by LiteLLM's):",
    )


def _streams(results: Results, scenarios: list[Any]) -> list[str]:
    title = "Time to first token, streaming chat (first body byte), open loop (ms):"
    return [
        *_latency_table(results, scenarios, "ttfb", title),
        "",
        *_latency_table(results, scenarios, "latencies", "Whole stream, same runs (ms):"),
    ]


def _latency_table(results: Results, scenarios: list[Any], key: str, title: str) -> list[str]:
    lines = [
        title,
        "",
        "| load | target | p50 / p95 / p99 | added p50 / p95 / p99 | added p50 ÷ LiteLLM's "
        "| errors |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        name = scenario.name
        theirs = _added(results, LITELLM, name, key)[0] if LITELLM in results else math.nan
        for target in results:
            result = results[target][name]
            if target == DIRECT:
                added, versus = "", ""
            else:
                values = _added(results, target, name, key)
                added, versus = _ms(values), _ratio(values[0], theirs)
            lines.append(
                f"| {name} | {target} | {_ms(_percentiles(result, key))} | {added} | {versus} "
                f"| {result['errors']} |"
            )
    return lines


def rate(result: dict[str, Any]) -> float:
    return len(result["latencies"]) / result["elapsed"] if result["latencies"] else 0.0


def _best(results: Results, target: str, scenarios: list[Any]) -> Any:
    return max(scenarios, key=lambda s: rate(results[target][s.name]))


def _saturation(results: Results, scenarios: list[Any]) -> list[str]:
    groups = {
        "non-streaming chat": [s for s in scenarios if not s.body.get("stream")],
        "streaming chat": [s for s in scenarios if s.body.get("stream")],
    }
    lines = [
        "Saturation, closed loop: the best rate over the concurrency levels, per worker. "
        "CPU is the proxy's (one process, all its threads) per 1,000 calls at that level; "
        "busy is its share of its one core (below ~90%, something else set the pace); the "
        "load generator's CPU share shows it was not the limit.",
        "",
        "| calls | target | max calls/s (at connections) | x direct | x LiteLLM "
        "| CPU s per 1,000 calls | proxy core busy | load generator CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, group in groups.items():
        if not group:
            continue
        direct = rate(results[DIRECT][_best(results, DIRECT, group).name])
        theirs = (
            rate(results[LITELLM][_best(results, LITELLM, group).name])
            if LITELLM in results
            else math.nan
        )
        for target in results:
            best = _best(results, target, group)
            result = results[target][best.name]
            calls = rate(result)
            cpu = busy = ""
            if target != DIRECT:
                cpu = f"{result['proxy_cpu_us_per_request'] / 1000:.3f}"
                busy = f"{result['proxy_cpu_seconds'] / result['wall_seconds']:.0%}"
            load = result["cpu_seconds"] / result["wall_seconds"]
            lines.append(
                f"| {label} | {target} | {calls:,.0f} ({best.concurrency}) | "
                f"{_ratio(calls, direct)} | {_ratio(calls, theirs)} | {cpu} | {busy} | {load:.0%} |"
            )
    lines += [
        "",
        "Every level (calls/s, p50 ms):",
        "",
        "| target | " + " | ".join(s.name for s in scenarios) + " |",
        "|---|" + "---|" * len(scenarios),
    ]
    for target in results:
        runs = [results[target][s.name] for s in scenarios]
        cells = [f"{rate(r):,.0f} ({_pct(r['latencies'], 0.5):.1f})" for r in runs]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return lines


def growth(soak: dict[str, Any]) -> float:
    """Resident memory at the end of the soak over that after its first step (warm)."""
    first, last = soak["rss"][1], soak["rss"][-1]
    return float(last / first - 1)


def _memory(results: Results, plan: Any) -> list[str]:
    lines = [
        f"Memory over a soak of non-streaming calls at {plan.soak_concurrency} connections in "
        f"{plan.soak_steps} steps, after every other run above (resident MiB, the process "
        "and its children; growth is from the end of the first step to the end):",
        "",
        "| target | calls | before | after the first step | at the end | growth | peak "
        "| calls/s | CPU s per 1,000 calls | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target in _proxies(results):
        soak = results[target]["soak"]
        mib = [v / 2**20 for v in soak["rss"]]
        lines.append(
            f"| {target} | {soak['requests']:,} | {mib[0]:.1f} | {mib[1]:.1f} | {mib[-1]:.1f} "
            f"| {growth(soak):+.1%} | {max(mib):.1f} | {soak['requests'] / soak['elapsed']:,.0f} "
            f"| {soak['cpu'] / soak['requests'] * 1000:.3f} | {soak['errors']} |"
        )
    lines += ["", "Resident MiB after each step:", ""]
    for target in _proxies(results):
        series = " → ".join(f"{v / 2**20:.0f}" for v in results[target]["soak"]["rss"][1:])
        lines.append(f"- {target}: {series}")
    return lines


def _targets(results: Results, plan: Any) -> list[str]:
    chat = [s for s in plan.latency if not s.body.get("stream")]
    sat = [s for s in plan.saturation if not s.body.get("stream")]
    rows: list[tuple[str, str, bool]] = []
    if LITELLM in results and BARE in results:
        worst = max(
            _added(results, BARE, s.name, "latencies")[0]
            / _added(results, LITELLM, s.name, "latencies")[0]
            for s in chat
        )
        rows.append(
            (
                "Guardline (no detectors) added p50 ≤ 1/5 of LiteLLM's, every rate",
                f"at most {worst:.3f} of LiteLLM's",
                worst <= 0.2,
            )
        )
        ours = rate(results[BARE][_best(results, BARE, sat).name])
        theirs = rate(results[LITELLM][_best(results, LITELLM, sat).name])
        rows.append(
            (
                "Guardline (no detectors) saturation ≥ 5x LiteLLM's",
                f"{ours:,.0f} vs {theirs:,.0f} calls/s: {ours / theirs:.1f}x",
                ours >= 5 * theirs,
            )
        )
    if MONITOR in results:
        worst_ms = max(_added(results, MONITOR, s.name, "latencies")[0] for s in chat)
        rows.append(
            (
                "default detectors, monitor mode: added p50 ≤ 2 ms, every rate",
                f"at most {worst_ms:.2f} ms",
                worst_ms <= 2.0,
            )
        )
    for target in _proxies(results):
        if target == LITELLM:
            continue
        change = growth(results[target]["soak"])
        rows.append(
            (
                f"{target}: memory growth over the soak < 5%",
                f"{change:+.1%}",
                change < 0.05,
            )
        )
    lines = ["Targets ([7/7]):", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in rows]
    return lines
