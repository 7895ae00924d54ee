"""POST /v1/feedback: body parsing, and the endpoint driven as a real ASGI app."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
import pytest

from guardline.errors import MalformedRequestError
from guardline.proxy.feedback import Feedback, FeedbackEndpoint, parse_feedback
from guardline.proxy.signing import Attribution, RequestSigner

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
        self.fail = fail

    def __call__(self, attribution: Attribution, feedback: Feedback) -> None:
        self.calls.append((attribution, feedback))
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
    assert response.json() == {"status": "accepted", "request_id": "req-42"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-guardline-request-id"] == "fb-1"
    assert sink.calls == [(ATTRIBUTION, Feedback("edited", 0.8, 0.5, None))]


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
