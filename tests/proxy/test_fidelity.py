"""With nothing altered, the client receives exactly the bytes the upstream sent."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from guardline.proxy.signing import RequestSigner
from guardline.simulator import Simulator
from tests.servers import Running, as_if_usage_not_asked

MSG = [{"role": "user", "content": "Bytes in, bytes out. Ünïcödé too: 東京 🚀"}]
CASES = [
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG}, {}),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MSG, "stream": True}, {}),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": MSG,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {"x-sim-reply": "Ünïcödé 東京 🚀 split across tokens".encode()},
    ),
    ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "stream": True}, {}),
    (
        "/v1/embeddings",
        {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64"},
        {},
    ),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}, {}),
    ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "stream": True}, {}),
    ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": MSG}, {}),
    (
        "/v1/messages",
        {"model": "claude-haiku-4-5", "max_tokens": 50, "messages": MSG, "stream": True},
        {},
    ),
]


USAGE_PATHS = ("/v1/chat/completions", "/v1/completions")


@pytest.mark.parametrize(("path", "body", "headers"), CASES)
def test_client_gets_upstream_bytes(
    sim: Running[Simulator],
    gw: Running[Any],
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    rid = os.urandom(8).hex()
    with (
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", gw.url + path, json=body, headers={"x-request-id": rid, **headers}
        ) as response,
    ):
        received = b"".join(response.iter_raw())
        response_headers = response.headers
    (record,) = [r for r in sim.app.recorder.records if r.headers.get("x-request-id") == rid]
    assert response.status_code == record.status == 200
    # Streams whose client did not ask for usage are asked for it on the client's behalf
    # (telemetry counts their tokens); the client gets exactly what it would have had.
    injected = path in USAGE_PATHS and body.get("stream") and "stream_options" not in body
    sent = bytes(record.response)
    if injected:
        assert record.body == {**body, "stream_options": {"include_usage": True}}
        assert received == as_if_usage_not_asked(sent) != sent
    else:
        assert record.body == body  # the upstream got the request as the client sent it
        assert received == sent
    # Guardline's own id, not the client's x-request-id (which reached the upstream as sent).
    assert len(RequestSigner.plain_id(response_headers["x-guardline-request-id"])) == 32
    assert RequestSigner.plain_id(response_headers["x-guardline-request-id"]) != rid
    upstream_id = "request-id" if path == "/v1/messages" else "x-request-id"
    assert response_headers[upstream_id].startswith("req_")
    assert response_headers["content-type"].startswith(
        "text/event-stream" if body.get("stream") else "application/json"
    )


def test_models_bytes_unchanged(sim: Running[Simulator], gw: Running[Any]) -> None:
    for headers in ({}, {"anthropic-version": "2023-06-01"}):
        direct = httpx.get(sim.url + "/v1/models", headers=headers).content
        assert httpx.get(gw.url + "/v1/models", headers=headers).content == direct


def test_generated_request_id_when_client_sends_none_or_junk(gw: Running[Any]) -> None:
    body = {"model": "gpt-4o-mini", "messages": MSG}
    ids = set()
    for headers in ({}, {"x-request-id": "bad id with spaces"}, {"x-request-id": "x" * 500}):
        rid = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=headers).headers[
            "x-guardline-request-id"
        ]
        assert len(RequestSigner.plain_id(rid)) == 32
        ids.add(rid)
    assert len(ids) == 3
