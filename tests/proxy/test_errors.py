"""Every error case: documented status, provider-format body, the SDK's usual exception."""

from __future__ import annotations

import socket
from typing import Any

import anthropic
import httpx
import openai
import pytest

from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.servers import Running, proxy, proxy_settings

MSG = [{"role": "user", "content": "hello"}]


def _chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MSG, **kwargs)  # type: ignore[arg-type]


def _message(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    return client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MSG, **kwargs)  # type: ignore[arg-type]


def _openai_error(exc: openai.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert {"message", "type", "code"} <= set(body["error"])
    return dict(body["error"])


def _anthropic_error(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.response.json()
    assert body["type"] == "error"
    assert {"type", "message"} <= set(body["error"])
    return dict(body["error"])


# Upstream HTTP errors pass through unchanged -----------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "exc_type"),
    [
        ("429", 429, openai.RateLimitError),
        ("500", 500, openai.InternalServerError),
        ("status=503", 503, openai.InternalServerError),
    ],
)
def test_openai_upstream_errors_pass_through(
    sim: Running[Simulator], gw: Running[Any], fault: str, status: int, exc_type: type[Exception]
) -> None:
    headers = {"x-sim-fault": fault}
    with openai_client(sim.url) as direct, openai_client(gw.url) as client:
        with pytest.raises(exc_type) as expected:
            _chat(direct, extra_headers=headers)
        with pytest.raises(exc_type) as got:
            _chat(client, extra_headers=headers)
    assert isinstance(got.value, openai.APIStatusError)
    assert isinstance(expected.value, openai.APIStatusError)
    assert got.value.status_code == status
    assert got.value.response.content == expected.value.response.content
    if status == 429:
        assert got.value.response.headers["retry-after"] == "1"
    assert got.value.response.headers["x-guardline-request-id"]


def test_anthropic_upstream_rate_limit_passes_through(
    sim: Running[Simulator], gw: Running[Any]
) -> None:
    with anthropic_client(gw.url) as client, pytest.raises(anthropic.RateLimitError) as got:
        _message(client, extra_headers={"x-sim-fault": "429", "x-sim-retry-after": "7"})
    assert got.value.response.headers["retry-after"] == "7"
    assert _anthropic_error(got.value)["type"] == "rate_limit_error"


# Errors Guardline raises -------------------------------------------------------------


def test_upstream_timeout_is_504(sim: Running[Simulator]) -> None:
    settings = proxy_settings(sim.url, upstream={"timeout": {"read": 0.3}})
    with proxy(settings) as gw:
        with openai_client(gw.url) as client, pytest.raises(openai.InternalServerError) as got:
            _chat(client, extra_headers={"x-sim-fault": "hang"})
        assert got.value.status_code == 504
        assert _openai_error(got.value)["code"] == "upstream_timeout"
        with anthropic_client(gw.url) as aclient, pytest.raises(anthropic.APIStatusError) as agot:
            _message(aclient, extra_headers={"x-sim-fault": "hang"})
        assert agot.value.status_code == 504
        assert _anthropic_error(agot.value)["type"] == "timeout_error"
        # The abandoned upstream request was cancelled, not left hanging on the simulator.
        assert eventually(lambda: sim.app.recorder.active == 0)


def test_connect_failure_is_502() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` now.
    with proxy(proxy_settings(f"http://127.0.0.1:{port}")) as gw:
        with openai_client(gw.url) as client, pytest.raises(openai.InternalServerError) as got:
            _chat(client)
        assert got.value.status_code == 502
        assert _openai_error(got.value)["code"] == "upstream_connect_error"
        with (
            anthropic_client(gw.url) as aclient,
            pytest.raises(anthropic.InternalServerError) as agot,
        ):
            _message(aclient)
        assert agot.value.status_code == 502
        assert _anthropic_error(agot.value)["type"] == "api_error"


@pytest.mark.parametrize(
    "content", [b'{"model": "gpt-4o-mini", "messages": [', b"[1, 2]", b'{"model": "\xff\xfe"}', b""]
)
def test_malformed_body_is_400(sim: Running[Simulator], gw: Running[Any], content: bytes) -> None:
    before = sim.app.recorder.total
    with openai_client(gw.url) as client, pytest.raises(openai.BadRequestError) as got:
        client.post(
            "/chat/completions",
            cast_to=object,
            content=content,
            options={"headers": {"content-type": "application/json"}},
        )
    assert got.value.status_code == 400
    assert _openai_error(got.value)["code"] == "invalid_json"
    with anthropic_client(gw.url) as aclient, pytest.raises(anthropic.BadRequestError) as agot:
        aclient.post(
            "/v1/messages",
            cast_to=object,
            content=content,
            options={"headers": {"content-type": "application/json"}},
        )
    assert _anthropic_error(agot.value)["type"] == "invalid_request_error"
    assert sim.app.recorder.total == before  # nothing malformed was forwarded


def test_body_over_limit_is_413(sim: Running[Simulator]) -> None:
    with proxy(proxy_settings(sim.url, max_body_bytes=2000)) as gw:
        big = [{"role": "user", "content": "x" * 5000}]
        with openai_client(gw.url) as client, pytest.raises(openai.APIStatusError) as got:
            client.chat.completions.create(model="gpt-4o-mini", messages=big)  # type: ignore[arg-type]
        assert got.value.status_code == 413
        assert _openai_error(got.value)["code"] == "request_too_large"
        with (
            anthropic_client(gw.url) as aclient,
            pytest.raises(anthropic.RequestTooLargeError) as agot,
        ):
            aclient.messages.create(model="claude-haiku-4-5", max_tokens=5, messages=big)  # type: ignore[arg-type]
        assert _anthropic_error(agot.value)["type"] == "request_too_large"

        # A chunked upload with no Content-Length is cut off at the limit too.
        def chunks() -> Any:
            yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}]}'

        response = httpx.post(gw.url + "/v1/chat/completions", content=chunks())
        assert response.status_code == 413
        assert sim.app.recorder.total == 0


def test_unknown_model_route_is_404(sim: Running[Simulator]) -> None:
    routes = [
        {"provider": "openai", "upstream": "openai", "model_prefix": ["gpt-", "o4"]},
        {"provider": "anthropic", "upstream": "anthropic", "model_prefix": "claude-"},
    ]
    with proxy(proxy_settings(sim.url, routes=routes)) as gw:
        with openai_client(gw.url) as client:
            assert _chat(client).choices[0].message.content
            with pytest.raises(openai.NotFoundError) as got:
                client.chat.completions.create(model="llama-3-70b", messages=MSG)  # type: ignore[arg-type]
        assert _openai_error(got.value)["code"] == "model_not_found"
        assert "llama-3-70b" in _openai_error(got.value)["message"]
        with anthropic_client(gw.url) as aclient, pytest.raises(anthropic.NotFoundError) as agot:
            aclient.messages.create(model="mistral-large", max_tokens=5, messages=MSG)  # type: ignore[arg-type]
        assert _anthropic_error(agot.value)["type"] == "not_found_error"


def test_unknown_route_is_404_in_each_format(gw: Running[Any]) -> None:
    with openai_client(gw.url) as client, pytest.raises(openai.NotFoundError) as got:
        client.get("/../admin", cast_to=object)
    assert _openai_error(got.value)["code"] == "route_not_found"
    with anthropic_client(gw.url) as aclient, pytest.raises(anthropic.NotFoundError) as agot:
        aclient.get("/admin", cast_to=object)
    assert _anthropic_error(agot.value)["type"] == "not_found_error"


def test_unknown_v1_path_passes_through_unscanned(
    sim: Running[Simulator], gw: Running[Any]
) -> None:
    """Any other /v1 path is forwarded as is: here the upstream itself answers 404."""
    with openai_client(gw.url) as client, pytest.raises(openai.NotFoundError) as got:
        client.get("/fine_tuning/jobs", cast_to=object)
    assert _openai_error(got.value)["code"] == "unknown_url"
    assert sim.app.recorder.records[-1].path == "/v1/fine_tuning/jobs"
