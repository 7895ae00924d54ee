"""Online acceptance signals: feedback by signed request id, and what the proxy sees itself."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from guardline.exporters import names as n
from guardline.proxy.signing import RequestSigner
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.exporters.telemetry_kit import Observed, observed
from tests.servers import Running, proxy_settings, simulator

MESSAGES = [{"role": "user", "content": "Draft a polite reminder about the invoice."}]


def _serve(url: str, model: str = "gpt-4o-mini", app: str = "support-bot") -> str:
    raw = openai_client(url).chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, extra_headers={"x-guardline-app": app}
    )
    return raw.headers["x-guardline-request-id"]


def _post(url: str, rid: str, outcome: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/feedback", json={"request_id": rid, "outcome": outcome, **extra})


def _counted(obs: Observed, spec: n.Instrument = n.FEEDBACK, **labels: str) -> float:
    """Posts minus the posts a later one on the same request id replaced."""
    return obs.total(spec, **labels) - obs.total(n.SUPERSEDED[spec], **labels)


def _acceptance(obs: Observed, **labels: str) -> float:
    accepted = _counted(obs, **{n.FEEDBACK_OUTCOME: "accepted"}, **labels)
    return accepted / _counted(obs, **labels)


def test_accepted_and_rejected_feedback_move_the_acceptance_rate(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDLINE_FEEDBACK_SECRET", "test-secret-of-sufficient-length")
    with observed(proxy_settings(sim.url)) as obs:
        ids = [_serve(obs.url) for _ in range(4)]
        for rid, outcome in zip(ids, ["accepted", "accepted", "accepted", "rejected"], strict=True):
            assert _post(obs.url, rid, outcome).status_code == 202
        assert _acceptance(obs, **{n.APP: "support-bot"}) == pytest.approx(0.75)
        # The user changes their mind: the later post replaces the earlier, 2 of 4 now.
        assert _post(obs.url, ids[0], "rejected").status_code == 202
        assert _acceptance(obs, **{n.APP: "support-bot"}) == pytest.approx(0.5)
        assert obs.total(n.FEEDBACK) == 5  # every post, so the counters only grow
        assert obs.total(n.FEEDBACK_SUPERSEDED, **{n.FEEDBACK_OUTCOME: "accepted"}) == 1
        assert _post(obs.url, ids[1], "edited", retained_fraction=0.25).status_code == 202
        assert obs.hist_sum(n.RETAINED, **{n.APP: "support-bot"}) == pytest.approx(0.25)
        assert _post(obs.url, ids[1], "edited", retained_fraction=0.75).status_code == 202
        assert _acceptance(obs, **{n.APP: "support-bot"}) == pytest.approx(0.25)
        # Retention too counts each call's latest post: 0.75, not the mean of both.
        assert _counted(obs, n.RETAINED) == 1
        retained = obs.hist_sum(n.RETAINED) - obs.hist_sum(n.RETAINED_SUPERSEDED)
        assert retained == pytest.approx(0.75)


def test_feedback_at_another_replica_is_attributed_by_the_signed_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GUARDLINE_FEEDBACK_SECRET", "shared-between-replicas-only")
    with (
        simulator() as sim_a,
        simulator() as sim_b,
        observed(proxy_settings(sim_a.url)) as replica_a,
        observed(proxy_settings(sim_b.url)) as replica_b,
    ):
        rid = _serve(replica_a.url, model="gpt-4.1-mini-2025-04-14", app="checkout")
        claude = anthropic_client(replica_a.url).messages.with_raw_response.create(
            model="claude-haiku-4-5",
            max_tokens=50,
            messages=MESSAGES,
            extra_headers={"x-guardline-app": "notes"},
        )
        assert _post(replica_b.url, rid, "accepted").status_code == 202
        claude_id = claude.headers["x-guardline-request-id"]
        assert _post(replica_b.url, claude_id, "rejected").status_code == 202
        points = {
            (
                p.attributes[n.REQUEST_MODEL],
                p.attributes[n.APP],
                p.attributes[n.PROVIDER_NAME],
                p.attributes[n.ROUTE],
                p.attributes[n.FEEDBACK_OUTCOME],
            ): p.value
            for p in replica_b.points(n.FEEDBACK)
        }
        assert points == {
            ("gpt-4.1-mini", "checkout", "openai", "chat.completions", "accepted"): 1,
            ("claude-haiku-4-5", "notes", "anthropic", "messages", "rejected"): 1,
        }
        assert replica_a.points(n.FEEDBACK) == []  # nothing shared but the secret


def test_forged_and_malformed_ids_are_refused(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDLINE_FEEDBACK_SECRET", "the-real-secret-of-this-fleet")
    with observed(proxy_settings(sim.url)) as obs:
        rid = _serve(obs.url)
        plain, payload, mac = rid.split("~")
        tampered = f"{plain}~{payload}~{'A' * len(mac)}"
        response = _post(obs.url, tampered, "accepted")
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "request_id_forged"
        assert _post(obs.url, "not-a-signed-id", "accepted").status_code == 400
        bad = _post(obs.url, rid, "loved-it")
        assert bad.status_code == 400
        assert "outcome" in bad.json()["error"]["message"]
        # Signed with another secret, carrying made-up labels.
        other = RequestSigner(b"an-attacker-guessing-secrets", max_age=60)
        fake = other.issue(
            "x1",
            provider="openai",
            route="chat.completions",
            model="gpt-5",
            app="evil",
            upstream=None,
        )
        assert _post(obs.url, fake, "accepted").status_code == 403
        assert obs.points(n.FEEDBACK) == []


def test_feedback_with_an_id_from_an_unshared_secret_is_forged(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    with observed(proxy_settings(sim.url)) as replica_a:
        rid = _serve(replica_a.url)  # random per-process secret
    with observed(proxy_settings(sim.url)) as replica_b:
        assert _post(replica_b.url, rid, "accepted").status_code == 403


def test_a_regenerate_is_detected(obs_default: Observed) -> None:
    obs = obs_default
    client = openai_client(obs.url)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    follow_up = [
        *MESSAGES,
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "Shorter, please."},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=follow_up)
    assert eventually(lambda: obs.total(n.REQUESTS) == 2)
    assert obs.total(n.SIGNALS, **{n.SIGNAL: "regenerated"}) == 0
    # The user asks for another answer: the same conversation, without the last reply.
    client.chat.completions.create(model="gpt-4o-mini", messages=follow_up, temperature=1.2)
    assert eventually(lambda: obs.total(n.SIGNALS, **{n.SIGNAL: "regenerated"}) == 1)
    spans = eventually(lambda: [s for s in obs.finished() if s.attributes.get(n.REGENERATED)])
    assert len(spans) == 1


@pytest.fixture
def obs_default(sim: Running[Simulator]) -> Any:
    with observed(proxy_settings(sim.url)) as obs:
        yield obs
