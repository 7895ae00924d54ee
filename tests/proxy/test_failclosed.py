"""Guard mode fails closed: the path owns the call, what cannot be parsed is refused, and
strings in fields Guardline has no special knowledge of are scanned like any other.

Raw sockets and raw bytes through real uvicorn; the upstream's answers are the
simulator's canned bytes, so each case is exactly the wire format under test.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from guardline.simulator import Simulator
from tests.servers import Running, proxy, proxy_settings

EMAIL = "taro.yamada@example.jp"
TOXIC = "You are a worthless idiot and a pathetic moron."
GUARD = {
    direction: {
        "pii": {"mode": "guard", "action": "redact"},
        "toxicity": {"mode": "guard", "action": "block"},
    }
    for direction in ("request", "response")
}
CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def guarded(sim: Running[Simulator]) -> Iterator[Running[Any]]:
    with proxy(proxy_settings(sim.url, policy=GUARD)) as server:
        yield server


def can(
    sim: Running[Simulator],
    path: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    content_type: str | None = "application/json",
    status: int = 200,
    chunks: list[bytes] | None = None,
    headers: list[list[str]] | None = None,
) -> None:
    """Queue the simulator's next answer on ``path``: exactly these bytes."""
    given = [["content-type", content_type]] if content_type is not None else []
    spec: dict[str, Any] = {"path": path, "status": status, "headers": given + (headers or [])}
    if chunks is not None:
        spec["chunks_b64"] = [base64.b64encode(c).decode() for c in chunks]
    else:
        data = body if isinstance(body, bytes) else orjson.dumps(body or {})
        spec["body_b64"] = base64.b64encode(data).decode()
    httpx.post(sim.url + "/_sim/canned", json=spec, timeout=10).raise_for_status()


def sse(*events: dict[str, Any] | str, name: bool = False) -> list[bytes]:
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        head = f"event: {event['type']}\n" if name and isinstance(event, dict) else ""
        out.append(f"{head}data: {data}\n\n".encode())
    return out


def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send exactly these bytes; the status and body of the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


def _post_head(path: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def received(sim: Running[Simulator]) -> list[Any]:
    return [r.body for r in sim.app.recorder.records]


# (1) The path owns the call -----------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        b"/v1/chat/completions;x",
        b"/v1/chat/completions.",
        b"/v1/chat/completions/",
        b"/v1/Chat/Completions",
        b"/v1/chat/%63ompletions",
        b"/v1/chat/completions%3bx",
        b"/v1/chat//completions",
        b"/v1/chat/./completions",
        b"/v1/x/../chat/completions",
        b"/v1/messages;v=1",
        b"/v1/Messages",
        b"/v1/messages/count_tokens.",
    ],
)
def test_non_canonical_spellings_of_a_scanned_path_get_404_and_reach_nothing(
    sim: Running[Simulator], guarded: Running[Any], path: bytes
) -> None:
    body = orjson.dumps(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": EMAIL}]}
    )
    status, payload = raw_request(guarded.url, _post_head(path, body), body)
    assert status == 404
    error = orjson.loads(payload)["error"]
    assert error["code"] == "route_not_found"
    assert received(sim) == []


def test_a_header_cannot_turn_a_scanned_endpoint_into_another_vendors(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": EMAIL}]})
    status, payload = raw_request(
        guarded.url,
        _post_head(b"/v1/chat/completions", body, b"anthropic-version: 2023-06-01\r\n"),
        body,
    )
    assert status == 400
    assert orjson.loads(payload)["error"]["code"] == "conflicting_provider"  # OpenAI's format
    body = orjson.dumps(
        {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": EMAIL}]}
    )
    status, payload = raw_request(
        guarded.url, _post_head(b"/v1/messages", body, b"openai-beta: assistants=v2\r\n"), body
    )
    assert status == 400
    answer = orjson.loads(payload)
    assert answer["type"] == "error"  # Anthropic's format
    assert answer["error"]["code"] == "conflicting_provider"
    assert received(sim) == []
    # Without the conflicting header the same call is scanned: the vendor never sees the value.
    status, _ = raw_request(guarded.url, _post_head(b"/v1/messages", body), body)
    assert status == 200
    assert EMAIL not in json.dumps(received(sim))


# (3) What cannot be parsed is refused ------------------------------------------------


def _chat_body(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **extra}],
    }


def _post(url: str, path: str = CHAT, **body: Any) -> httpx.Response:
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", MSG)
    return httpx.post(url + path, json=body, timeout=10)


@pytest.mark.parametrize("content_type", ["Application/JSON", "application/json; charset=UTF-8"])
def test_json_media_types_are_compared_as_the_rfc_says(
    sim: Running[Simulator], guarded: Running[Any], content_type: str
) -> None:
    can(sim, CHAT, _chat_body(f"Mail me at {EMAIL} today."), content_type=content_type)
    response = _post(guarded.url)
    assert response.status_code == 200
    assert EMAIL not in response.text
    assert "<EMAIL_ADDRESS>" in response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/octet-stream"])
def test_an_answer_that_is_not_the_expected_format_is_refused(
    sim: Running[Simulator], guarded: Running[Any], content_type: str | None
) -> None:
    can(sim, CHAT, _chat_body(f"Mail me at {EMAIL} today."), content_type=content_type)
    response = _post(guarded.url)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_protocol_error"
    assert EMAIL not in response.text


@pytest.mark.parametrize("content_type", ["Text/Event-Stream", "text/event-stream;charset=utf-8"])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_event_streams_in_any_spelling_and_framing_are_guarded(
    sim: Running[Simulator], guarded: Running[Any], content_type: str, eol: bytes
) -> None:
    events = sse(
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": f"Mail me at {EMAIL[:9]}"}),
        _chunk({"content": f"{EMAIL[9:]} today. Bye."}),
        _chunk({}, "stop"),
        "[DONE]",
    )
    can(sim, CHAT, chunks=[e.replace(b"\n", eol) for e in events], content_type=content_type)
    response = _post(guarded.url, stream=True)
    assert response.status_code == 200
    text = response.text
    assert EMAIL not in text
    assert EMAIL.partition("@")[0] not in text
    assert "<EMAIL_ADDRESS>" in text
    assert "Bye." in text


def test_a_redirect_is_refused_in_guard_mode(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    can(sim, CHAT, b"", status=307, content_type=None, headers=[["location", "https://elsewhere/"]])
    response = _post(guarded.url)
    assert response.status_code == 502
    assert "location" not in response.headers


def test_upstream_error_bodies_are_scanned(sim: Running[Simulator], guarded: Running[Any]) -> None:
    echo = {
        "error": {"message": f"Invalid content near '{EMAIL}'", "type": "invalid_request_error"}
    }
    can(sim, CHAT, echo, status=400)
    response = _post(guarded.url)
    assert response.status_code == 400
    assert EMAIL not in response.text
    assert "<EMAIL_ADDRESS>" in response.json()["error"]["message"]
    can(
        sim,
        CHAT,
        f"<html>bad gateway for {EMAIL}</html>".encode(),
        status=502,
        content_type="text/html",
    )
    response = _post(guarded.url)
    assert response.status_code == 502
    assert EMAIL not in response.text


def test_endpoints_without_a_known_format_are_scanned_or_refused(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    # count_tokens carries the prompt: its JSON is scanned like any other.
    body = {"model": "claude-x", "messages": [{"role": "user", "content": f"I am {EMAIL}"}]}
    response = httpx.post(
        guarded.url + "/v1/messages/count_tokens",
        json=body,
        headers={"anthropic-version": "2023-06-01"},
        timeout=10,
    )
    assert response.status_code == 200
    assert EMAIL not in json.dumps(received(sim))
    # A batch's requests too.
    batch = {"requests": [{"custom_id": "a1", "params": {**body, "max_tokens": 5}}]}
    can(sim, "/v1/messages/batches", {"id": "msgbatch_1", "type": "message_batch"})
    httpx.post(guarded.url + "/v1/messages/batches", json=batch, timeout=10)
    assert EMAIL not in json.dumps(received(sim))
    # A stored response read back: its JSON answer is scanned.
    can(sim, "/v1/responses/resp_1", {"id": "resp_1", "output_text": f"Mail {EMAIL}."})
    response = httpx.get(guarded.url + "/v1/responses/resp_1", timeout=10)
    assert response.status_code == 200
    assert EMAIL not in response.text
    # What guard mode cannot parse is refused: an upload, a binary download.
    sim.app.recorder.clear()
    response = httpx.post(
        guarded.url + "/v1/files", files={"file": ("a.jsonl", EMAIL.encode())}, timeout=10
    )
    assert response.status_code == 415
    assert received(sim) == []
    can(sim, "/v1/files/file-1/content", EMAIL.encode(), content_type="application/octet-stream")
    response = httpx.get(guarded.url + "/v1/files/file-1/content", timeout=10)
    assert response.status_code == 502
    assert EMAIL not in response.text


def test_a_guard_mode_request_body_is_forwarded_as_the_json_that_was_scanned(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    # Duplicate keys: orjson (like most parsers) keeps the last; a vendor that kept the
    # first would read text Guardline never saw. The vendor gets the re-encoded body.
    raw = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],'
        b' "messages": [{"role": "user", "content": "mail ' + EMAIL.encode() + b' now"}]}'
    )
    response = httpx.post(
        guarded.url + CHAT, content=raw, headers={"content-type": "text/plain"}, timeout=10
    )
    assert response.status_code == 200
    (record,) = sim.app.recorder.records
    assert record.headers["content-type"] == "application/json"
    assert EMAIL not in json.dumps(record.body)


def test_compressed_request_bodies_are_scanned_decoded(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    import gzip

    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": EMAIL}]})
    response = httpx.post(
        guarded.url + CHAT,
        content=gzip.compress(body),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 200
    (record,) = sim.app.recorder.records
    assert "content-encoding" not in record.headers
    assert EMAIL not in json.dumps(record.body)
    response = httpx.post(
        guarded.url + CHAT,
        content=body,
        headers={"content-type": "application/json", "content-encoding": "br"},
        timeout=10,
    )
    assert response.status_code == 415


def test_model_strings_are_names_not_text(sim: Running[Simulator], guarded: Running[Any]) -> None:
    bad = ("gpt-4o\nINFO forged log line", "x" * 300, "model with spaces", f"ft:gpt-4o:{EMAIL}")
    for model in bad:
        response = _post(guarded.url, model=model)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_model"
    assert received(sim) == []
    assert _post(guarded.url, model="claude-3-5-sonnet@20240620").status_code == 200


# (2) Every string is accounted for ----------------------------------------------------


def test_request_fields_no_adapter_lists_reach_the_vendor_scanned(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    response = _post(
        guarded.url,
        user=EMAIL,
        prediction={"type": "content", "content": f"Dear {EMAIL}"},
        metadata={"note": EMAIL, f"who {EMAIL}": "x"},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": f"not {EMAIL}"}],
                "function_call": {"name": "f", "arguments": json.dumps({"to": EMAIL})},
            },
            {"role": "user", "content": "bye", "x_unknown": {"deep": [EMAIL]}},
        ],
    )
    assert response.status_code == 200
    (record,) = sim.app.recorder.records
    assert EMAIL not in json.dumps(record.body)
    assert record.body["user"] == "<EMAIL_ADDRESS>"


def test_logprobs_cannot_spell_a_redacted_value(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    text = f"Mail {EMAIL} now."
    tokens = [text[i : i + 3] for i in range(0, len(text), 3)]
    body = _chat_body(text)
    body["choices"][0]["logprobs"] = {
        "content": [
            {"token": t, "bytes": list(t.encode()), "logprob": -0.1, "top_logprobs": []}
            for t in tokens
        ]
    }
    second = _chat_body("All fine here.")["choices"][0]
    second["index"] = 1
    second["logprobs"] = {
        "content": [{"token": "All", "bytes": [65, 108, 108], "logprob": 0.0, "top_logprobs": []}]
    }
    body["choices"].append(second)
    can(sim, CHAT, body)
    answer = _post(guarded.url).json()
    assert EMAIL not in json.dumps(answer)
    assert answer["choices"][0]["logprobs"] is None  # dropped where the text was rewritten
    assert answer["choices"][1]["logprobs"] == second["logprobs"]  # kept where it was not


def test_reasoning_and_unknown_delta_fields_are_guarded_like_content(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    can(
        sim,
        CHAT,
        chunks=sse(
            _chunk({"role": "assistant", "reasoning_content": f"User is {EMAIL[:6]}"}),
            _chunk({"reasoning_content": f"{EMAIL[6:]}. Answer."}),
            _chunk({"content": "Hello.", "function_call": {"name": "f", "arguments": '{"a": "'}}),
            _chunk({"function_call": {"arguments": EMAIL + '"}'}}),
            _chunk({"audio": {"id": "audio_1", "transcript": f"say {EMAIL}"}}),
            _chunk({}, "stop"),
            "[DONE]",
        ),
        content_type="text/event-stream",
    )
    text = _post(guarded.url, stream=True).text
    assert EMAIL not in text
    assert EMAIL[:6] not in text
    assert "Hello." in text


def test_a_finding_in_signed_thinking_fails_closed(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    thinking = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {
                "type": "thinking",
                "thinking": f"The user is {EMAIL}.",
                "signature": "c2lnbmF0dXJlMTIzNDU2Nzg=",
            },
            {"type": "text", "text": "Hi."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    can(sim, "/v1/messages", thinking)
    body = {"model": "claude-x", "max_tokens": 5, "messages": MSG}
    response = httpx.post(
        guarded.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "guardrail_blocked"
    assert EMAIL not in response.text
    # The same block sent back by a client is refused rather than rewritten.
    back = {**body, "messages": [*MSG, {"role": "assistant", "content": thinking["content"]}]}
    sim.app.recorder.clear()
    response = httpx.post(
        guarded.url + "/v1/messages", json=back, headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 400
    assert received(sim) == []


def test_signed_thinking_can_be_rewritten_when_the_policy_says_so(sim: Running[Simulator]) -> None:
    policy = {**GUARD, "signed_thinking": "redact"}
    events = sse(
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-x",
                "usage": {"input_tokens": 1, "output_tokens": 0},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": f"User is {EMAIL}."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "c2lnbmF0dXJlMTIzNDU2Nzg="},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "send",
                "input": {"to": EMAIL},
            },
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
        name=True,
    )
    with proxy(proxy_settings(sim.url, policy=policy)) as gw:
        can(sim, "/v1/messages", chunks=events, content_type="text/event-stream")
        body = {"model": "claude-x", "max_tokens": 5, "messages": MSG, "stream": True}
        response = httpx.post(
            gw.url + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"}
        )
    assert response.status_code == 200
    assert EMAIL not in response.text
    assert "message_stop" in response.text
    assert "c2lnbmF0dXJlMTIzNDU2Nzg=" in response.text  # the signature passes: not text


def test_sse_comments_and_other_lines_do_not_reach_the_client_in_guard_mode(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    events = [
        f": {EMAIL}\n\n".encode(),
        f"id: 1\nretry: 5\nx-note: {EMAIL}\n".encode() + sse(_chunk({"content": "Hi."}))[0],
        *sse(_chunk({}, "stop"), "[DONE]"),
    ]
    can(sim, CHAT, chunks=events, content_type="text/event-stream")
    text = _post(guarded.url, stream=True).text
    assert EMAIL not in text
    assert "Hi." in text
    assert "[DONE]" in text


def test_query_parameters_and_custom_headers_reach_the_vendor_scanned(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    response = httpx.post(
        guarded.url + CHAT,
        params={"note": f"for {EMAIL}", "api-version": "2024-10-21"},
        json={"model": "gpt-4o-mini", "messages": MSG},
        headers={"x-customer": f"Taro <{EMAIL}>", "authorization": "Bearer sk-secret"},
        timeout=10,
    )
    assert response.status_code == 200
    (record,) = sim.app.recorder.records
    assert EMAIL not in record.query
    assert "api-version=2024-10-21" in record.query
    assert EMAIL not in json.dumps(record.headers)
    assert record.headers["x-customer"] == "Taro <<EMAIL_ADDRESS>>"
    assert record.auth_sha256 is not None  # the key passed, unread


def test_header_values_that_could_hold_a_value_are_scanned_and_sdk_ones_pass(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    phone = "+81-90-1234-5678"
    response = httpx.post(
        guarded.url + CHAT,
        json={"model": "gpt-4o-mini", "messages": MSG},
        headers={"x-callback": f"call {phone}", "x-phone": phone, "x-stainless-os": "Linux"},
        timeout=10,
    )
    assert response.status_code == 200
    (record,) = sim.app.recorder.records
    assert phone not in json.dumps(record.headers)
    assert record.headers["x-stainless-os"] == "Linux"
