"""The Alertmanager webhook receiver on a real server: authentication, validation,
idempotency across repeats, resolved notifications, and job status."""

from __future__ import annotations

import base64
import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from guardline.errors import ConfigError
from guardline.reeval.jobs import Job, JobStore
from guardline.reeval.receiver import Receiver, create_receiver_app
from guardline.settings import ReevalSettings
from tests.servers import running

TOKEN = "s3cret-reeval-token"

FIRING: dict[str, Any] = {
    "receiver": "guardline-reeval",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "GuardlineToxicitySpike",
                "severity": "warning",
                "reeval": "toxicity",
            },
            "annotations": {"summary": "Guardline: toxicity findings in 64% of calls"},
            "startsAt": "2026-11-21T14:17:23.715Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:40959/graph?g0.expr=x",
            "fingerprint": "7a0c82dd76caa70c",
        }
    ],
    "groupLabels": {"alertname": "GuardlineToxicitySpike"},
    "commonLabels": {"alertname": "GuardlineToxicitySpike"},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:59227",
    "version": "4",
    "groupKey": '{}:{alertname="GuardlineToxicitySpike"}',
    "truncatedAlerts": 0,
}


class Hook:
    def __init__(self, url: str, store: JobStore, submitted: list[str]) -> None:
        self.url = url
        self.store = store
        self.submitted = submitted

    def post(self, body: Any, token: str | None = TOKEN, **headers: str) -> httpx.Response:
        if token is not None:
            headers.setdefault("authorization", f"Bearer {token}")
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.post(self.url + "/v1/reeval/alerts", content=content, headers=headers)

    def get(self, path: str, token: str = TOKEN) -> httpx.Response:
        return httpx.get(self.url + path, headers={"authorization": f"Bearer {token}"})


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[Hook]:
    monkeypatch.setenv("GUARDLINE_REEVAL_TOKEN", TOKEN)
    store = JobStore(tmp_path)
    submitted: list[str] = []
    receiver = Receiver(ReevalSettings(**settings), store, lambda job: submitted.append(job.id))
    with running(create_receiver_app(receiver)) as server:
        yield Hook(server.url, store, submitted)


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    yield from _serve(tmp_path, monkeypatch)


def test_a_firing_alert_starts_one_job_with_its_window(hook: Hook) -> None:
    response = hook.post(FIRING)
    assert response.status_code == 202
    started = response.json()["started"]
    assert len(started) == 1
    assert hook.submitted == started
    job = hook.store.get(started[0])
    assert (job.evaluation, job.state) == ("toxicity", "queued")
    assert job.since == "2026-11-21T13:47:23.715000+00:00"  # 30 min before startsAt
    assert job.trigger["alertname"] == "GuardlineToxicitySpike"
    assert job.trigger["labels"]["reeval"] == "toxicity"


def test_repeats_and_retries_start_no_second_job(hook: Hook) -> None:
    """Alertmanager re-sends the same firing (repeat_interval, group changes, retries):
    same fingerprint and startsAt, the same job; a new firing is a new job."""
    first = hook.post(FIRING).json()["started"]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(hook.post(FIRING).json())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r["started"] == [] and r["repeated"] == first for r in results)
    assert hook.submitted == first
    assert hook.store.get(first[0]).notifications == 9
    again = copy.deepcopy(FIRING)
    again["alerts"][0]["startsAt"] = "2026-11-21T18:00:00Z"  # it resolved and fired again
    second = hook.post(again).json()["started"]
    assert len(second) == 1
    assert second != first
    assert len(hook.store.all()) == 2


def test_resolved_is_recorded_not_run(hook: Hook) -> None:
    job_id = hook.post(FIRING).json()["started"][0]
    resolved = copy.deepcopy(FIRING)
    resolved["status"] = "resolved"
    resolved["alerts"][0].update(status="resolved", endsAt="2026-11-21T15:00:00Z")
    answer = hook.post(resolved).json()
    assert answer["resolved"] == [job_id]
    assert answer["started"] == []
    assert hook.store.get(job_id).resolved is not None
    assert hook.submitted == [job_id]


def test_alerts_without_an_evaluation_are_ignored(hook: Hook) -> None:
    other = copy.deepcopy(FIRING)
    other["alerts"][0]["labels"] = {"alertname": "GuardlineHighErrorRate"}
    answer = hook.post(other).json()
    assert answer["ignored"] == ["GuardlineHighErrorRate"]
    assert hook.submitted == []


def test_triggers_choose_the_evaluation_and_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = {"alertnames": ["GuardlineBlockRateSpike"], "evaluation": "blocks", "window": 600}
    for hook in _serve(tmp_path, monkeypatch, triggers=[trigger]):
        toxic = hook.post(FIRING).json()
        assert toxic["ignored"] == ["GuardlineToxicitySpike"]  # no trigger of its own now
        blocks = copy.deepcopy(FIRING)
        blocks["alerts"][0]["labels"] = {"alertname": "GuardlineBlockRateSpike"}
        job = hook.store.get(hook.post(blocks).json()["started"][0])
        assert job.evaluation == "blocks"
        assert job.since == "2026-11-21T14:07:23.715000+00:00"


@pytest.mark.parametrize(
    ("token", "extra"),
    [
        (None, {}),
        ("wrong", {}),
        (None, {"authorization": "Basic " + base64.b64encode(b"x:" + TOKEN.encode()).decode()}),
        (None, {"authorization": TOKEN}),
    ],
    ids=["none", "wrong-token", "basic-when-bearer", "no-scheme"],
)
def test_unauthenticated_calls_are_refused(
    hook: Hook, token: str | None, extra: dict[str, str]
) -> None:
    response = hook.post(FIRING, token=token, **extra)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["type"] == "authentication_error"
    assert TOKEN not in response.text
    assert hook.store.all() == []
    assert hook.submitted == []
    assert hook.get("/v1/reeval/jobs", token="wrong").status_code == 401


def test_basic_auth_as_alertmanager_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for hook in _serve(tmp_path, monkeypatch, username="alertmanager"):
        good = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
        bad = base64.b64encode(f"someone:{TOKEN}".encode()).decode()
        assert hook.post(FIRING, token=None, authorization=f"Basic {bad}").status_code == 401
        assert hook.post(FIRING, token=None, authorization=f"Basic {good}").status_code == 202


def _broken(change: str) -> bytes:
    body = copy.deepcopy(FIRING)
    alert = body["alerts"][0]
    if change == "version":
        body["version"] = "3"
    elif change == "no-alertname":
        del alert["labels"]["alertname"]
    elif change == "no-fingerprint":
        del alert["fingerprint"]
    elif change == "naive-time":
        alert["startsAt"] = "2026-11-21T14:17:23"
    elif change == "label-not-string":
        alert["labels"]["severity"] = 3
    elif change == "alerts-not-list":
        body["alerts"] = {"a": 1}
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (_broken("version"), "version"),
        (_broken("no-alertname"), "alertname"),
        (_broken("no-fingerprint"), "alerts.0.fingerprint"),
        (_broken("naive-time"), "time zone"),
        (_broken("label-not-string"), "alerts.0.labels.severity"),
        (_broken("alerts-not-list"), "alerts"),
    ],
)
def test_malformed_payloads_get_a_clear_400(hook: Hook, body: bytes, where: str) -> None:
    response = hook.post(body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert where in error["message"]
    assert error["message"].startswith("not an Alertmanager v4 payload: ")
    assert hook.store.all() == []


def test_a_huge_body_is_refused(hook: Hook) -> None:
    response = hook.post(b"{" + b" " * (2 << 20) + b"}")
    assert response.status_code == 413


def test_job_status_and_unknown_routes(hook: Hook) -> None:
    job_id = hook.post(FIRING).json()["started"][0]
    listing = hook.get("/v1/reeval/jobs").json()["jobs"]
    assert [j["id"] for j in listing] == [job_id]
    one = hook.get(f"/v1/reeval/jobs/{job_id}").json()
    assert (one["state"], one["progress"], one["report"]) == ("queued", 0.0, None)
    assert hook.get("/v1/reeval/jobs/j-nope").status_code == 404
    assert hook.get("/v1/reeval/jobs/..%2f..%2fetc").status_code == 404
    report = hook.get(f"/v1/reeval/jobs/{job_id}/report")
    assert report.status_code == 404
    assert "no report yet" in report.json()["error"]["message"]
    assert hook.get("/v1/nothing").json()["error"]["type"] == "not_found_error"
    assert httpx.get(hook.url + "/v1/reeval/alerts").status_code == 405


def test_the_receiver_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDLINE_REEVAL_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="GUARDLINE_REEVAL_TOKEN"):
        Receiver(ReevalSettings(), JobStore(tmp_path), lambda job: None)


def test_jobs_survive_in_the_store(tmp_path: Path) -> None:
    """A second store on the same directory (a restarted receiver, a worker) sees the
    job and cannot create it again."""
    job = Job(id="j-abc", evaluation="toxicity", since="a", until="b", trigger={})
    assert JobStore(tmp_path).create(job)
    again = JobStore(tmp_path)
    assert not again.create(job)
    assert [j.id for j in again.unfinished()] == ["j-abc"]
