"""The upstream simulator: determinism, usage, scripted content, pacing, faults, records."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from guardline.simulator import Simulator
from tests.servers import Running, simulator

CHAT = "/v1/chat/completions"


def _chat(url: str, content: str = "hello", **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **body}
    headers = body.pop("headers", None) or {}
    payload.pop("headers", None)
    return httpx.post(url + CHAT, json=payload, headers=headers, timeout=10)


def _events(response: httpx.Response) -> list[Any]:
    out = []
    for block in response.text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else orjson.loads(data))
    return out


def _text(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def test_same_prompt_and_seed_same_answer() -> None:
    with simulator(seed=7) as a, simulator(seed=7) as b, simulator(seed=8) as c:
        assert _text(_chat(a.url)) == _text(_chat(b.url))
        assert _text(_chat(a.url)) != _text(_chat(c.url))
        assert _text(_chat(a.url, "other prompt")) != _text(_chat(a.url))


def test_streamed_text_equals_whole_text(sim: Running[Simulator]) -> None:
    whole = _text(_chat(sim.url))
    events = _events(_chat(sim.url, stream=True))
    streamed = "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if e != "[DONE]" and e["choices"]
    )
    assert streamed == whole
    assert events[-1] == "[DONE]"


def test_include_usage_behaviour(sim: Running[Simulator]) -> None:
    plain = _events(_chat(sim.url, stream=True))
    assert all("usage" not in e for e in plain[:-1])
    asked = _events(_chat(sim.url, stream=True, stream_options={"include_usage": True}))
    usage_chunk = asked[-2]
    assert usage_chunk["choices"] == []
    assert (
        usage_chunk["usage"]["completion_tokens"]
        == _chat(sim.url).json()["usage"]["completion_tokens"]
    )
    assert all(e["usage"] is None for e in asked[:-2])
    assert asked[-1] == "[DONE]"


def test_max_tokens_cuts_and_says_so(sim: Running[Simulator]) -> None:
    body = _chat(sim.url, max_tokens=3).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    anthropic = httpx.post(
        sim.url + "/v1/messages",
        json={
            "model": "claude-haiku-4-5",
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "hi"}],
        },
    ).json()
    assert (anthropic["stop_reason"], anthropic["usage"]["output_tokens"]) == ("max_tokens", 2)


def test_scripted_content_by_header_tag_and_runtime_switch(sim: Running[Simulator]) -> None:
    assert "4111 1111 1111 1111" in _text(_chat(sim.url, headers={"x-sim-scenario": "pii"}))
    assert "idiot" in _text(_chat(sim.url, "please [sim:toxic] now"))
    assert _text(_chat(sim.url, "x", headers={"x-sim-reply": "exactly this"})) == "exactly this"
    assert (
        _text(_chat(sim.url, "echo me", headers={"x-sim-scenario": "echo"})) == "You said: echo me"
    )
    chunks = ["My card is 4111 ", "1111 1111", " 1111."]
    events = _events(
        _chat(sim.url, stream=True, headers={"x-sim-chunks": orjson.dumps(chunks).decode()})
    )
    assert [e["choices"][0]["delta"]["content"] for e in events[1:4]] == chunks
    assert httpx.put(sim.url + "/_sim/scenario", json={"scenario": "stereotype"}).status_code == 200
    assert "Women are too emotional" in _text(_chat(sim.url))
    assert httpx.put(sim.url + "/_sim/scenario", json={"scenario": "nope"}).status_code == 400
    assert _chat(sim.url, headers={"x-sim-scenario": "nope"}).status_code == 400


def test_script_file_rules(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        """
- match: "(?i)refund"
  scenario: pii
- match: "angry"
  reply: "Calm down."
- match: "crash"
  fault: "500"
"""
    )
    with simulator(script=script) as sim:
        assert "IBAN" in _text(_chat(sim.url, "I want a REFUND"))
        assert _text(_chat(sim.url, "I am angry")) == "Calm down."
        assert _chat(sim.url, "crash please").status_code == 500
        assert _text(_chat(sim.url, "hello")) not in ("Calm down.",)


def test_tool_calls(sim: Running[Simulator]) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    body = _chat(sim.url, tools=tools, headers={"x-sim-tool-call": '{"city": "Oslo"}'}).json()
    call = body["choices"][0]["message"]["tool_calls"][0]["function"]
    assert (call["name"], orjson.loads(call["arguments"])) == ("get_weather", {"city": "Oslo"})
    assert body["choices"][0]["finish_reason"] == "tool_calls"


def test_pacing_honours_ttft_and_token_delay() -> None:
    with simulator(ttft_ms=150, token_delay_ms=40) as sim:
        chunks = ["a", "b", "c", "d", "e", "f"]
        started = time.monotonic()
        with httpx.stream(
            "POST",
            sim.url + CHAT,
            json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
            headers={"x-sim-chunks": orjson.dumps(chunks).decode()},
        ) as response:
            arrivals = [time.monotonic() - started for _ in response.iter_raw()]
    # Lower bounds only: the simulator must wait at least as long as configured.
    assert arrivals[0] >= 0.14 or len(arrivals) == 1
    assert arrivals[-1] >= 0.15 + 0.04 * (len(chunks) - 1) - 0.02


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("500", 500), ("status=529", 529)])
def test_status_faults_in_each_format(sim: Running[Simulator], fault: str, status: int) -> None:
    openai_error = _chat(sim.url, headers={"x-sim-fault": fault})
    assert openai_error.status_code == status
    assert set(openai_error.json()["error"]) >= {"message", "type", "code"}
    anthropic_error = httpx.post(
        sim.url + "/v1/messages",
        json={"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-sim-fault": fault},
    )
    assert anthropic_error.json()["type"] == "error"
    if status == 429:
        assert openai_error.headers["retry-after"] == "1"
    if status == 529:
        assert anthropic_error.json()["error"]["type"] == "overloaded_error"


def test_slow_fault_waits() -> None:
    with simulator() as sim:
        started = time.monotonic()
        _chat(sim.url, headers={"x-sim-fault": "slow", "x-sim-delay-ms": "300"})
        assert time.monotonic() - started >= 0.29


def test_non_stream_malformed_and_truncated_bodies(sim: Running[Simulator]) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(_chat(sim.url, headers={"x-sim-fault": "malformed"}).content)
    with pytest.raises(httpx.RemoteProtocolError):
        _chat(sim.url, headers={"x-sim-fault": "disconnect"})


def test_validation_and_unknown_paths(sim: Running[Simulator]) -> None:
    missing = httpx.post(sim.url + CHAT, json={"model": "m"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_required_parameter"
    unknown = httpx.get(sim.url + "/v1/nothing-here")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_url")


def test_recorder_never_keeps_keys(sim: Running[Simulator]) -> None:
    _chat(sim.url, headers={"authorization": "Bearer sk-secret-recorded"})
    (record,) = httpx.get(sim.url + "/_sim/requests").json()["requests"]
    assert record["auth_sha256"] == hashlib.sha256(b"sk-secret-recorded").hexdigest()
    assert "sk-secret-recorded" not in orjson.dumps(record).decode()
    assert httpx.delete(sim.url + "/_sim/requests").json() == {"cleared": True}
    assert httpx.get(sim.url + "/_sim/requests").json() == {"requests": []}
    assert httpx.get(sim.url + "/_sim/stats").json()["requests_total"] == 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _can(url: str, **spec: Any) -> httpx.Response:
    return httpx.post(url + "/_sim/canned", json=spec, timeout=10)


def test_canned_answer_is_sent_exactly_and_the_request_recorded(sim: Running[Simulator]) -> None:
    body = b'{"id": "x", "choices": [], "odd":\t"spacing kept"}'
    queued = _can(
        sim.url,
        path=CHAT,
        status=203,
        headers=[["content-type", "application/json"], ["x-custom", "yes"]],
        body_b64=_b64(body),
    )
    assert queued.json() == {"queued": {CHAT: 1}}
    response = _chat(sim.url, "canned please", headers={"x-sim-fault": "500"})
    assert (response.status_code, response.content) == (203, body)
    assert response.headers["x-custom"] == "yes"
    assert response.headers["content-length"] == str(len(body))
    assert "x-request-id" not in response.headers  # exactly the canned headers
    (record,) = httpx.get(sim.url + "/_sim/requests").json()["requests"]
    assert record["body"]["messages"][0]["content"] == "canned please"
    assert record["headers"]["x-sim-fault"] == "500"
    assert (record["status"], base64.b64decode(record["response_b64"])) == (203, body)
    assert record["completed"] is True
    # Consumed: the next request gets the simulator's own answer again.
    assert httpx.get(sim.url + "/_sim/canned").json() == {"queued": {}}
    assert _chat(sim.url).status_code == 200


def test_canned_chunks_arrive_as_separate_writes_with_delay(sim: Running[Simulator]) -> None:
    chunks = [b'data: {"a": 1}\n\n', b'data: {"a"', b": 2}\n\n", b"data: [DONE]\n\n"]
    _can(
        sim.url,
        path=CHAT,
        headers=[["content-type", "text/event-stream"]],
        chunks_b64=[_b64(c) for c in chunks],
        chunk_delay_ms=60,
    )
    started = time.monotonic()
    payload = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    with httpx.stream("POST", sim.url + CHAT, json=payload, timeout=10) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        received = list(response.iter_raw())
    assert time.monotonic() - started >= 0.06 * (len(chunks) - 1) - 0.02
    assert b"".join(received) == b"".join(chunks)
    assert len(received) >= 2  # the pauses keep the writes apart
    stats = httpx.get(sim.url + "/_sim/stats").json()
    assert (stats["streams_completed"], stats["active_streams"]) == (1, 0)
    (record,) = httpx.get(sim.url + "/_sim/requests").json()["requests"]
    assert record["stream"] is True
    assert base64.b64decode(record["response_b64"]) == b"".join(chunks)


def test_canned_queue_is_fifo_per_path_any_method_any_path(sim: Running[Simulator]) -> None:
    for n in (1, 2):
        _can(sim.url, path=CHAT, body_b64=_b64(b"chat %d" % n))
    _can(sim.url, path="/v1/files", status=404, body_b64=_b64(b"no files"))
    assert httpx.get(sim.url + "/_sim/canned").json() == {"queued": {CHAT: 2, "/v1/files": 1}}
    assert httpx.get(sim.url + "/v1/files").content == b"no files"
    assert httpx.delete(sim.url + CHAT + "?q=1").content == b"chat 1"  # any method, no body
    assert httpx.post(sim.url + CHAT, content=b"not json").content == b"chat 2"
    records = httpx.get(sim.url + "/_sim/requests").json()["requests"]
    assert [(r["method"], r["path"], r["body"]) for r in records] == [
        ("GET", "/v1/files", None),
        ("DELETE", CHAT, None),
        ("POST", CHAT, None),
    ]
    _can(sim.url, path=CHAT, body_b64=_b64(b"dropped"))
    _can(sim.url, path=CHAT, chunks_b64=[])
    assert httpx.delete(sim.url + "/_sim/canned").json() == {"cleared": True, "dropped": 2}
    assert httpx.get(sim.url + "/_sim/canned").json() == {"queued": {}}
    assert _text(_chat(sim.url))


def test_canned_empty_chunks_and_given_framing(sim: Running[Simulator]) -> None:
    _can(sim.url, path=CHAT, status=204, chunks_b64=[])
    empty = _chat(sim.url)
    assert (empty.status_code, empty.content) == (204, b"")
    _can(
        sim.url,
        path=CHAT,
        headers=[["Content-Length", "4"]],
        chunks_b64=[_b64(b"ab"), _b64(b"cd")],
    )
    framed = _chat(sim.url)
    assert (framed.content, framed.headers["content-length"]) == (b"abcd", "4")
    assert "transfer-encoding" not in framed.headers


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ([], "JSON object"),
        ({"path": CHAT}, "exactly one of"),
        ({"path": CHAT, "body_b64": "", "chunks_b64": []}, "exactly one of"),
        ({"body_b64": ""}, "'path'"),
        ({"path": "v1/chat", "body_b64": ""}, "'path'"),
        ({"path": CHAT + "?x=1", "body_b64": ""}, "'path'"),
        ({"path": "/_sim/requests", "body_b64": ""}, "admin"),
        ({"path": CHAT, "status": 99, "body_b64": ""}, "'status'"),
        ({"path": CHAT, "status": "200", "body_b64": ""}, "'status'"),
        ({"path": CHAT, "status": True, "body_b64": ""}, "'status'"),
        ({"path": CHAT, "headers": {"a": "b"}, "body_b64": ""}, "'headers'"),
        ({"path": CHAT, "headers": [["a"]], "body_b64": ""}, "'headers'"),
        ({"path": CHAT, "headers": [["bad name", "v"]], "body_b64": ""}, "'headers'"),
        ({"path": CHAT, "headers": [["x", "a\r\nb: c"]], "body_b64": ""}, "'headers'"),
        ({"path": CHAT, "headers": [["x", "\u2603"]], "body_b64": ""}, "Latin-1"),
        ({"path": CHAT, "body_b64": "not base64!"}, "base64"),
        ({"path": CHAT, "body_b64": ["eA=="]}, "must be a string"),
        ({"path": CHAT, "chunks_b64": "eA=="}, "list of strings"),
        ({"path": CHAT, "chunks_b64": ["eA=="], "chunk_delay_ms": -1}, "chunk_delay_ms"),
        ({"path": CHAT, "body_b64": "eA==", "chunk_delay_ms": 5}, "chunks_b64' only"),
        ({"path": CHAT, "body_b64": "", "bodyb64": ""}, "unknown keys ['bodyb64']"),
    ],
)
def test_canned_admin_body_is_validated(sim: Running[Simulator], spec: Any, complaint: str) -> None:
    response = httpx.post(sim.url + "/_sim/canned", json=spec)
    assert response.status_code == 400
    assert complaint in response.json()["error"]
    assert httpx.get(sim.url + "/_sim/canned").json() == {"queued": {}}


def test_canned_admin_body_must_be_json(sim: Running[Simulator]) -> None:
    response = httpx.post(sim.url + "/_sim/canned", content=b"{nope")
    assert (response.status_code, "not JSON" in response.json()["error"]) == (400, True)


def test_canned_stream_client_leaving_is_recorded_as_a_disconnect(
    sim: Running[Simulator],
) -> None:
    _can(
        sim.url,
        path=CHAT,
        headers=[["content-type", "text/event-stream"]],
        chunks_b64=[_b64(b"data: 1\n\n"), _b64(b"data: 2\n\n")],
        chunk_delay_ms=5000,
    )
    with httpx.stream("POST", sim.url + CHAT, json={}, timeout=10) as response:
        assert next(response.iter_raw()) == b"data: 1\n\n"
    for _ in range(200):
        stats = httpx.get(sim.url + "/_sim/stats").json()
        if stats["streams_disconnected"]:
            break
        time.sleep(0.02)
    assert (stats["streams_disconnected"], stats["active_streams"]) == (1, 0)
    (record,) = httpx.get(sim.url + "/_sim/requests").json()["requests"]
    assert (record["disconnected"], record["completed"]) == (True, False)
