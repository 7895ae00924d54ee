"""POST /v1/feedback: body parsing, the endpoint driven as a real ASGI app, one counted
feedback per call (a later post replaces the earlier; the memory that knows is bounded),
and request ids that stay unique when clients reuse an ``x-request-id``."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from guardline.errors import MalformedRequestError
from guardline.exchange import Exchange
from guardline.exporters import names as n
from guardline.proxy.feedback import Feedback, FeedbackEndpoint, FeedbackMemory, parse_feedback
from guardline.proxy.signing import Attribution, RequestSigner
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.servers import Running, context_of, proxy, proxy_settings

NOW = 1_750_000_000.0
SECRET = b"k" * 32
ATTRIBUTION = Attribution(
    "req-42", int(NOW), "openai", "chat.completions", "gpt-4o-mini", "support", "openai"
)


def _body(**fields: Any) -> bytes:
    return orjson.dumps({"request_id": "tok", "outcome": "accepted", **fields})


# parse_feedback ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_body(), Feedback("accepted", None, None, None)),
        (
            _body(outcome="edited", score=0.5, retained_fraction=0.25, comment="too long"),
            Feedback("edited", 0.5, 0.25, "too long"),
        ),
        (
            _body(outcome="rejected", score=0, retained_fraction=1),
            Feedback("rejected", 0.0, 1.0, None),
        ),
        (
            _body(score=None, retained_fraction=None, comment=None),
            Feedback("accepted", None, None, None),
        ),
        (_body(comment="é" * 2000), Feedback("accepted", None, None, "é" * 2000)),
    ],
)
def test_valid_feedback_parses(body: bytes, expected: Feedback) -> None:
    token, feedback = parse_feedback(body)
    assert token == "tok"
    assert feedback == expected
    assert isinstance(feedback.score, float | None)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b"{not json", "JSON"),
        (b"", "JSON"),
        (b"NaN", "JSON"),
        (b'{"request_id": "t", "outcome": "accepted", "score": 1e400}', "JSON"),
        (b"[]", "object"),
        (b'"accepted"', "object"),
        (orjson.dumps({"outcome": "accepted"}), "'request_id'"),
        (_body(request_id=None), "'request_id'"),
        (_body(request_id=""), "'request_id'"),
        (_body(request_id=42), "'request_id'"),
        (_body(request_id=["tok"]), "'request_id'"),
        (orjson.dumps({"request_id": "tok"}), "'outcome'"),
        (_body(outcome="liked"), "'outcome'"),
        (_body(outcome="Accepted"), "'outcome'"),
        (_body(outcome=1), "'outcome'"),
        (_body(score="0.5"), "'score'"),
        (_body(score=True), "'score'"),
        (_body(score=-0.01), "'score'"),
        (_body(score=1.5), "'score'"),
        (_body(score=[0.5]), "'score'"),
        (_body(retained_fraction=2), "'retained_fraction'"),
        (_body(retained_fraction=-1), "'retained_fraction'"),
        (_body(retained_fraction=False), "'retained_fraction'"),
        (_body(retained_fraction={}), "'retained_fraction'"),
        (_body(comment=5), "'comment'"),
        (_body(comment="x" * 2001), "'comment'"),
        (_body(rating=5), "'rating'"),
        (_body(Outcome="accepted"), "'Outcome'"),
    ],
)
def test_malformed_feedback_is_400_naming_the_field(body: bytes, names: str) -> None:
    with pytest.raises(MalformedRequestError) as info:
        parse_feedback(body)
    assert info.value.status == 400
    assert names in info.value.message


def test_errors_never_quote_the_comment() -> None:
    secret = "my card is 4111 1111 1111 1111"
    with pytest.raises(MalformedRequestError) as info:
        parse_feedback(_body(comment=secret, score=7))
    assert secret not in info.value.message
    assert secret not in repr(parse_feedback(_body(comment=secret))[1])


# FeedbackEndpoint -------------------------------------------------------------------


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Attribution, Feedback]] = []
        self.replaced: list[Feedback | None] = []
        self.fail = fail

    def __call__(
        self, attribution: Attribution, feedback: Feedback, replaced: Feedback | None
    ) -> None:
        self.calls.append((attribution, feedback))
        self.replaced.append(replaced)
        if self.fail:
            raise RuntimeError(f"cannot store {feedback.comment}")


def _signer(secret: bytes = SECRET) -> RequestSigner:
    return RequestSigner(secret, max_age=3600.0, clock=lambda: NOW + 60)


def _call(
    endpoint: FeedbackEndpoint,
    method: str = "POST",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=endpoint)
        async with httpx.AsyncClient(transport=transport, base_url="http://guardline") as client:
            return await client.request(method, "/v1/feedback", content=body, headers=headers)

    return asyncio.run(main())


def test_feedback_is_attributed_by_another_instance_sharing_the_secret() -> None:
    token = _signer().sign(ATTRIBUTION)  # "replica one" served the call
    sink = Sink()
    endpoint = FeedbackEndpoint(_signer(), sink)  # "replica two" gets the feedback
    body = orjson.dumps(
        {"request_id": token, "outcome": "edited", "score": 0.8, "retained_fraction": 0.5}
    )
    response = _call(endpoint, body=body, headers={"x-request-id": "fb-1"})
    assert response.status_code == 202
    assert response.json() == {"status": "accepted", "request_id": "req-42", "replaced": False}
    assert response.headers["content-type"] == "application/json"
    # Guardline's own id for the post, never the client's x-request-id.
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-guardline-request-id"])
    assert sink.calls == [(ATTRIBUTION, Feedback("edited", 0.8, 0.5, None))]
    assert sink.replaced == [None]


def _openai_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert {"message", "type", "param", "code"} <= set(body["error"])
    return dict(body["error"])


def _anthropic_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["type"] == "error"
    assert "request_id" in body
    return dict(body["error"])


def test_forged_id_is_403_in_openai_format() -> None:
    sink = Sink()
    token = _signer(b"x" * 32).sign(ATTRIBUTION)
    response = _call(
        FeedbackEndpoint(_signer(), sink), body=_body(request_id=token, comment="secret words")
    )
    assert response.status_code == 403
    error = _openai_error(response)
    assert (error["type"], error["code"]) == ("invalid_request_error", "request_id_forged")
    assert sink.calls == []


def test_forged_id_is_403_in_anthropic_format() -> None:
    sink = Sink()
    token = _signer(b"x" * 32).sign(ATTRIBUTION)
    response = _call(
        FeedbackEndpoint(_signer(), sink),
        body=_body(request_id=token),
        headers={"anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 403
    error = _anthropic_error(response)
    assert (error["type"], error["code"]) == ("permission_error", "request_id_forged")
    assert sink.calls == []


def test_expired_id_is_403() -> None:
    token = RequestSigner(SECRET, max_age=3600.0, clock=lambda: NOW - 7200).issue(
        "old", provider="openai", route="responses", model="m", app=None, upstream=None
    )
    response = _call(FeedbackEndpoint(_signer(), Sink()), body=_body(request_id=token))
    assert response.status_code == 403
    assert _openai_error(response)["code"] == "request_id_expired"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "invalid_json"),
        (_body(request_id="not-a-signed-id"), "request_id_invalid"),
        (_body(outcome="meh"), "invalid_feedback"),
    ],
)
def test_malformed_is_400(body: bytes, code: str) -> None:
    sink = Sink()
    response = _call(FeedbackEndpoint(_signer(), sink), body=body)
    assert response.status_code == 400
    assert _openai_error(response)["code"] == code
    response = _call(
        FeedbackEndpoint(_signer(), sink), body=body, headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 400
    assert _anthropic_error(response)["type"] == "invalid_request_error"
    assert sink.calls == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_are_405(method: str) -> None:
    sink = Sink()
    response = _call(FeedbackEndpoint(_signer(), sink), method=method)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert _openai_error(response)["code"] == "method_not_allowed"
    response = _call(
        FeedbackEndpoint(_signer(), sink), method=method, headers={"anthropic-version": "1"}
    )
    assert response.status_code == 405
    assert _anthropic_error(response)["code"] == "method_not_allowed"
    assert sink.calls == []


def test_body_over_the_limit_is_413() -> None:
    sink = Sink()
    endpoint = FeedbackEndpoint(_signer(), sink, max_body_bytes=100)
    token = _signer().sign(ATTRIBUTION)
    response = _call(endpoint, body=_body(request_id=token, comment="x" * 200))
    assert response.status_code == 413
    assert _openai_error(response)["code"] == "request_too_large"
    assert sink.calls == []


def test_body_over_the_limit_without_content_length_is_413() -> None:
    sink = Sink()
    endpoint = FeedbackEndpoint(_signer(), sink, max_body_bytes=100)

    async def chunks() -> Any:
        for _ in range(5):
            yield b"x" * 30

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=endpoint)
        async with httpx.AsyncClient(transport=transport, base_url="http://guardline") as client:
            return await client.post("/v1/feedback", content=chunks())

    response = asyncio.run(main())
    assert response.status_code == 413
    assert sink.calls == []


def test_failing_sink_is_500_and_logged_without_the_comment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Sink(fail=True)
    token = _signer().sign(ATTRIBUTION)
    comment = "call me at +1 555 0100"
    with caplog.at_level(logging.ERROR, logger="guardline.proxy"):
        response = _call(
            FeedbackEndpoint(_signer(), sink), body=_body(request_id=token, comment=comment)
        )
    assert response.status_code == 500
    assert _openai_error(response)["code"] == "feedback_error"
    assert len(sink.calls) == 1
    assert "req-42" in caplog.text
    assert "RuntimeError" in caplog.text
    assert comment not in caplog.text
    assert comment not in response.text


# One counted feedback per call ------------------------------------------------------


def _post_to(endpoint: FeedbackEndpoint, token: str, outcome: str, **extra: Any) -> httpx.Response:
    return _call(endpoint, body=orjson.dumps({"request_id": token, "outcome": outcome, **extra}))


def test_a_later_post_replaces_the_earlier_and_hands_it_to_the_sink() -> None:
    token = _signer().sign(ATTRIBUTION)
    sink = Sink()
    endpoint = FeedbackEndpoint(_signer(), sink)
    first = _post_to(endpoint, token, "rejected", score=0.1, comment="this is wrong")
    assert first.json()["replaced"] is False
    second = _post_to(endpoint, token, "accepted", retained_fraction=0.9)
    assert second.status_code == 202
    assert second.json() == {"status": "accepted", "request_id": "req-42", "replaced": True}
    third = _post_to(endpoint, token, "accepted", retained_fraction=0.9)  # a client's retry
    assert third.json()["replaced"] is True
    # The sink gets each post with the one it replaced (outcome and numbers, no text).
    assert sink.replaced == [
        None,
        Feedback("rejected", 0.1, None, None),
        Feedback("accepted", None, 0.9, None),
    ]
    other = _signer().sign(dataclasses.replace(ATTRIBUTION, request_id="req-43"))
    assert _post_to(endpoint, other, "accepted").json()["replaced"] is False


def test_a_post_the_sink_failed_to_record_replaces_nothing() -> None:
    token = _signer().sign(ATTRIBUTION)
    sink = Sink(fail=True)
    endpoint = FeedbackEndpoint(_signer(), sink)
    assert _post_to(endpoint, token, "rejected").status_code == 500
    sink.fail = False
    retry = _post_to(endpoint, token, "rejected")
    assert retry.status_code == 202
    assert retry.json()["replaced"] is False  # the failed post was never counted
    assert sink.replaced == [None, None]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _attribution(rid: str, issued: float = NOW) -> Attribution:
    return Attribution(rid, int(issued), "openai", "chat.completions", "m", None, None)


def test_the_memory_is_bounded_by_count() -> None:
    memory = FeedbackMemory(3, max_age=3600.0, clock=Clock(NOW))
    for i in range(10):
        memory.remember(_attribution(f"r{i}"), Feedback("accepted", None, None, "text"))
    assert len(memory) == 3
    assert [memory.last(f"r{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3
    # Posting again makes an id the most recent: the least recently posted goes first.
    memory.remember(_attribution("r7"), Feedback("rejected", 0.5, None, "changed my mind"))
    memory.remember(_attribution("r10"), Feedback("accepted", None, None, None))
    assert memory.last("r8") is None
    assert memory.last("r7") == Feedback("rejected", 0.5, None, None)  # never the text
    assert len(memory) == 3
    off = FeedbackMemory(0, max_age=3600.0)
    off.remember(_attribution("r1"), Feedback("accepted", None, None, None))
    assert len(off) == 0
    assert off.last("r1") is None


def test_the_memory_forgets_ids_whose_feedback_window_has_closed() -> None:
    clock = Clock(NOW)
    memory = FeedbackMemory(100, max_age=3600.0, clock=clock)
    memory.remember(_attribution("old", issued=NOW - 3000), Feedback("rejected", None, None, None))
    memory.remember(_attribution("new", issued=NOW), Feedback("rejected", None, None, None))
    clock.now = NOW + 599
    assert memory.last("old") is not None
    clock.now = NOW + 601  # "old" was issued 3601 s ago: its id can take no more feedback
    assert memory.last("old") is None
    assert len(memory) == 1
    memory.remember(_attribution("other", issued=NOW), Feedback("accepted", None, None, None))
    clock.now = NOW + 3601  # and now the others: forgotten as the next post comes in
    memory.remember(_attribution("late", issued=NOW + 3601), Feedback("accepted", None, None, None))
    assert len(memory) == 1
    assert memory.last("late") is not None


def test_a_forgotten_id_counts_again() -> None:
    """What happens past the memory (or on another replica): both posts count."""
    sink = Sink()
    endpoint = FeedbackEndpoint(
        _signer(), sink, memory=FeedbackMemory(1, max_age=3600.0, clock=lambda: NOW + 60)
    )
    one = _signer().sign(ATTRIBUTION)
    two = _signer().sign(_attribution("req-2"))
    assert _post_to(endpoint, one, "rejected").json()["replaced"] is False
    assert _post_to(endpoint, two, "rejected").json()["replaced"] is False
    assert _post_to(endpoint, one, "accepted").json()["replaced"] is False
    assert sink.replaced == [None, None, None]


# On the running proxy -------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Draft a two-line status update."}]


def _chat(url: str, headers: dict[str, str]) -> str:
    raw = openai_client(url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
    )
    return raw.headers["x-guardline-request-id"]


def _claude(url: str, headers: dict[str, str]) -> str:
    raw = anthropic_client(url).messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES, extra_headers=headers
    )
    return raw.headers["x-guardline-request-id"]


def test_clients_sharing_an_x_request_id_get_distinct_ids_and_keep_theirs_for_correlation(
    sim: Running[Simulator], gw: Running[Any], exchanges: list[Exchange]
) -> None:
    shared = {"x-request-id": "order-7:retry.1"}
    tokens = [_chat(gw.url, shared), _chat(gw.url, shared), _claude(gw.url, shared)]
    plain = [RequestSigner.plain_id(token) for token in tokens]
    assert len(set(tokens)) == len(set(plain)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in plain)
    signer = context_of(gw).signer
    assert [signer.verify(token).request_id for token in tokens] == plain
    assert eventually(lambda: len(exchanges) == 3)
    assert [x.request_id for x in exchanges] == plain
    assert [x.client_request_id for x in exchanges] == ["order-7:retry.1"] * 3
    # Forwarded upstream as the client sent it, on every call.
    sent = [r.headers.get("x-request-id") for r in sim.app.recorder.records]
    assert sent == ["order-7:retry.1"] * 3
    # Feedback on one call is attributed to that call only.
    post = {"request_id": tokens[0], "outcome": "rejected"}
    answer = httpx.post(gw.url + "/v1/feedback", json=post)
    assert answer.json() == {"status": "accepted", "request_id": plain[0], "replaced": False}
    post = {"request_id": tokens[1], "outcome": "accepted"}
    assert httpx.post(gw.url + "/v1/feedback", json=post).json()["replaced"] is False
    # Errors and unknown routes answer with a fresh id of Guardline's too.
    for path in ("/v1/chat/completions", "/nowhere"):
        error = httpx.post(gw.url + path, content=b"{", headers=shared)
        assert error.status_code in {400, 404}
        assert error.headers["x-guardline-request-id"] not in {"order-7:retry.1", *plain}


def test_a_call_without_a_sane_x_request_id_has_no_client_id(
    gw: Running[Any], exchanges: list[Exchange]
) -> None:
    for headers in ({}, {"x-request-id": "spaces are not sane"}, {"x-request-id": "x" * 129}):
        _chat(gw.url, headers)
    assert eventually(lambda: len(exchanges) == 3)
    assert [x.client_request_id for x in exchanges] == [None, None, None]


def _feedback_metrics(url: str) -> tuple[dict[str, float], dict[str, float]]:
    """From ``/metrics``: feedback posts and posts replaced, by outcome."""
    page = httpx.get(url + "/metrics").text
    posts: dict[str, float] = {}
    replaced: dict[str, float] = {}
    into = {n.FEEDBACK.samples[0]: posts, n.FEEDBACK_SUPERSEDED.samples[0]: replaced}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name in into:
                outcome = sample.labels["guardline_feedback_outcome"]
                into[sample.name][outcome] = into[sample.name].get(outcome, 0) + sample.value
    return posts, replaced


def _counted(url: str) -> dict[str, float]:
    """Each outcome's counted feedback: posts minus the posts replaced (zeros left out)."""
    posts, replaced = _feedback_metrics(url)
    counted = {k: v - replaced.get(k, 0) for k, v in posts.items()}
    return {k: v for k, v in counted.items() if v}


def test_posting_twice_counts_once_in_metrics_with_the_later_outcome(gw: Running[Any]) -> None:
    first, second = _chat(gw.url, {}), _chat(gw.url, {})

    def post(token: str, outcome: str, **extra: Any) -> dict[str, Any]:
        body = {"request_id": token, "outcome": outcome, **extra}
        response = httpx.post(gw.url + "/v1/feedback", json=body)
        assert response.status_code == 202
        return dict(response.json())

    assert post(first, "rejected", score=0.0)["replaced"] is False
    assert post(second, "rejected")["replaced"] is False
    assert _counted(gw.url) == {"rejected": 2}  # acceptance 0 of 2
    assert post(first, "accepted", score=1.0)["replaced"] is True
    assert _counted(gw.url) == {"accepted": 1, "rejected": 1}  # acceptance 1 of 2
    assert post(first, "accepted", score=1.0)["replaced"] is True  # a retry changes nothing
    assert _counted(gw.url) == {"accepted": 1, "rejected": 1}
    assert post(second, "edited")["replaced"] is True
    assert _counted(gw.url) == {"accepted": 1, "edited": 1}
    # Both counters only ever grow: 5 posts, 3 of them replaced by a later one.
    posts, replaced = _feedback_metrics(gw.url)
    assert posts == {"rejected": 2, "accepted": 2, "edited": 1}
    assert replaced == {"rejected": 2, "accepted": 1}


def test_feedback_memory_comes_from_the_settings(sim: Running[Simulator]) -> None:
    settings = proxy_settings(sim.url, feedback={"memory": 0})
    with proxy(settings) as gw:
        token = _chat(gw.url, {})
        for outcome in ("rejected", "accepted"):
            body = {"request_id": token, "outcome": outcome}
            assert httpx.post(gw.url + "/v1/feedback", json=body).json()["replaced"] is False
        assert _counted(gw.url) == {"rejected": 1, "accepted": 1}  # off: every post counts
