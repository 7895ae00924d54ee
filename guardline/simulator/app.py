"""The upstream simulator: an ASGI app speaking the OpenAI and Anthropic wire formats.

A test and demo tool, not a model. It answers deterministically for a prompt and seed,
paces streams like a model, plays scripted content and injects faults (see
``guardline.simulator.scenario``), and records what it received and sent. Its admin API
under ``/_sim/`` is unauthenticated: bind it to loopback.

Canned answers (``POST /_sim/canned``) replay exact bytes instead: the next request to the
path (any method), recorded as usual, gets that status, those headers and that body, sent
as one write or as the given chunks. They take precedence over scenarios and faults:

    {"path": "/v1/chat/completions", "status": 200,
     "headers": [["content-type", "text/event-stream"]],
     "chunks_b64": ["ZGF0YTog...", "..."], "chunk_delay_ms": 10}

``body_b64`` (one write, with a Content-Length unless the headers frame it) instead of
``chunks_b64`` (one write each, chunked unless the headers say otherwise). Answers queue
first in, first out per path; ``GET /_sim/canned`` counts them, ``DELETE`` drops them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.types import Receive, Scope, Send

from guardline.disconnect import DisconnectWatch
from guardline.settings import SimulatorSettings
from guardline.simulator import anthropic, openai
from guardline.simulator.recorder import Record, Recorder
from guardline.simulator.reply import Frame, Reply, decide
from guardline.simulator.scenario import Plan, Planner
from guardline.simulator.text import prompt_text

log = logging.getLogger("guardline.simulator")

_JSON = (b"content-type", b"application/json")
_SSE = (b"content-type", b"text/event-stream; charset=utf-8")
_NO_CACHE = (b"cache-control", b"no-cache")
_MALFORMED = {
    False: b'data: {"choices": [{"delta": {"content": "broken\n\n',
    True: b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"te\n\n',
}
# Required fields per (provider is anthropic, path).
_REQUIRED = {
    (False, "/v1/chat/completions"): ("model", "messages"),
    (False, "/v1/completions"): ("model", "prompt"),
    (False, "/v1/responses"): ("model", "input"),
    (False, "/v1/embeddings"): ("model", "input"),
    (True, "/v1/messages"): ("model", "messages", "max_tokens"),
    (True, "/v1/messages/count_tokens"): ("model", "messages"),
}


class SimulatedFaultError(Exception):
    """Raised to make the server drop the connection, as a crashing upstream would."""


@dataclass(frozen=True, slots=True)
class Canned:
    """An exact answer for the next request to a path."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    chunks: tuple[bytes, ...]
    """The body writes, in order; one for a ``body_b64`` answer."""
    delay_ms: float = 0.0
    """Pause between two writes."""

    @property
    def stream(self) -> bool:
        return any(
            k.lower() == b"content-type" and v.lower().startswith(b"text/event-stream")
            for k, v in self.headers
        )


_CANNED_KEYS = frozenset({"path", "status", "headers", "body_b64", "chunks_b64", "chunk_delay_ms"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_canned(raw: bytes) -> tuple[str, Canned]:
    """The path and answer of a ``POST /_sim/canned`` body; ValueError says what is wrong."""
    try:
        spec = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(spec) - _CANNED_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown}; allowed: {sorted(_CANNED_KEYS)}")
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith("/") or "?" in path:
        raise ValueError("'path' must be a request path such as '/v1/chat/completions'")
    if path.startswith("/_sim/"):
        raise ValueError("'path' cannot be an admin path (/_sim/...)")
    status = spec.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("'status' must be an integer from 100 to 599")
    given = spec.get("headers", [])
    if not isinstance(given, list):
        raise ValueError("'headers' must be a list of [name, value] string pairs")
    headers: list[tuple[bytes, bytes]] = []
    for item in given:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
            and _TOKEN.fullmatch(item[0])
            and not any(c in item[1] for c in "\r\n\0")
        ):
            raise ValueError(
                "'headers' must be a list of [name, value] string pairs: "
                f"a token name and a value without CR, LF or NUL (got {item!r})"
            )
        try:
            headers.append((item[0].encode("latin-1"), item[1].encode("latin-1")))
        except UnicodeEncodeError:
            raise ValueError(f"header {item[0]!r}: the value must be Latin-1") from None
    if ("body_b64" in spec) == ("chunks_b64" in spec):
        raise ValueError("give exactly one of 'body_b64' and 'chunks_b64'")
    whole = "body_b64" in spec
    encoded = [spec["body_b64"]] if whole else spec["chunks_b64"]
    if not isinstance(encoded, list) or not all(isinstance(c, str) for c in encoded):
        raise ValueError("'body_b64' must be a string and 'chunks_b64' a list of strings")
    try:
        chunks = tuple(base64.b64decode(c, validate=True) for c in encoded)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None
    delay = spec.get("chunk_delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60_000:
        raise ValueError("'chunk_delay_ms' must be a number of milliseconds from 0 to 60000")
    if delay and whole:
        raise ValueError("'chunk_delay_ms' applies to 'chunks_b64' only")
    names = {name.lower() for name, _ in headers}
    if whole and not names & {b"content-length", b"transfer-encoding"}:
        headers.append((b"content-length", str(len(chunks[0])).encode()))
    return path, Canned(status, tuple(headers), chunks, float(delay))


class _Answer:
    """Sends a response while recording its exact bytes."""

    __slots__ = ("id_header", "record", "send", "watch")

    def __init__(
        self, send: Send, record: Record, watch: DisconnectWatch, is_anthropic: bool
    ) -> None:
        self.send = send
        self.record = record
        self.watch = watch
        # Both vendors tag every response with their own request id.
        name = b"request-id" if is_anthropic else b"x-request-id"
        self.id_header = (name, b"req_" + os.urandom(12).hex().encode())

    async def start(
        self, status: int, headers: list[tuple[bytes, bytes]], *, request_id: bool = True
    ) -> None:
        self.record.status = status
        if request_id:
            headers = [*headers, self.id_header]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, *, more: bool = True) -> None:
        self.record.response += data
        if not more:
            self.watch.finished = True
            self.record.completed = True
        await self.send({"type": "http.response.body", "body": data, "more_body": more})

    async def json(
        self, status: int, payload: Any, extra: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        data = orjson.dumps(payload)
        headers = [_JSON, (b"content-length", str(len(data)).encode()), *extra]
        await self.start(status, headers)
        await self.body(data, more=False)


class Simulator:
    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.planner = Planner(settings)
        self.recorder = Recorder(settings.record_limit)
        self.canned: dict[str, deque[Canned]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        raw = await _read_body(receive)
        path: str = scope["path"]
        if path.startswith("/_sim/"):
            await self._admin(scope, raw, send)
            return
        body: Any = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
        record = self.recorder.start(
            scope["method"], path, scope["query_string"].decode("latin-1"), scope["headers"], body
        )
        watch = DisconnectWatch(receive)
        answer = _Answer(send, record, watch, _is_anthropic(path, scope["headers"]))
        canned = self._next_canned(path)
        self.recorder.active += 1
        watch.start()
        try:
            if canned is None:
                await self._serve(scope, raw, body, answer)
            else:
                await self._play(canned, answer)
        except asyncio.CancelledError as exc:
            watch.absorb(exc)
            record.disconnected = True
            if record.stream:
                self.recorder.streams_disconnected += 1
        finally:
            watch.stop()
            self.recorder.active -= 1
            if record.stream:
                self.recorder.active_streams -= 1
                if record.completed:
                    self.recorder.streams_completed += 1

    def _next_canned(self, path: str) -> Canned | None:
        queue = self.canned.get(path)
        if not queue:
            return None
        canned = queue.popleft()
        if not queue:
            del self.canned[path]
        return canned

    async def _play(self, canned: Canned, answer: _Answer) -> None:
        """Send a canned answer exactly: no request id, no framing but the server's own."""
        if canned.stream:
            answer.record.stream = True
            self.recorder.active_streams += 1
        await answer.start(canned.status, list(canned.headers), request_id=False)
        *writes, last = canned.chunks or (b"",)
        for data in writes:
            await answer.body(data)
            if canned.delay_ms:
                await asyncio.sleep(canned.delay_ms / 1000)
        await answer.body(last, more=False)

    async def _serve(self, scope: Scope, raw: bytes, body: Any, answer: _Answer) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        headers = {k.decode("latin-1"): v.decode("utf-8", "replace") for k, v in scope["headers"]}
        is_anthropic = _is_anthropic(path, scope["headers"])
        wire = anthropic if is_anthropic else openai
        if method == "GET" and path == "/v1/models":
            await answer.json(200, wire.models())
            return
        if method == "GET" and path.startswith("/v1/models/"):
            await answer.json(200, wire.model(path.removeprefix("/v1/models/")))
            return
        required = _REQUIRED.get((is_anthropic, path))
        if method != "POST" or required is None:
            message = f"Unknown request URL: {method} {path}."
            await answer.json(404, wire.error_body(404, message, "unknown_url"))
            return
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            await answer.json(400, wire.error_body(400, message))
            return
        missing = [field for field in required if field not in body]
        if missing:
            message = f"Missing required parameter: '{missing[0]}'."
            await answer.json(400, wire.error_body(400, message, "missing_required_parameter"))
            return
        try:
            plan = self.planner.plan(prompt_text(body)[1], headers)
        except ValueError as exc:
            await answer.json(400, wire.error_body(400, str(exc)))
            return
        if await self._pre_fault(plan, answer, is_anthropic):
            return
        seed = self.settings.seed
        if path == "/v1/embeddings":
            await answer.json(200, openai.embeddings(body, seed=seed))
            return
        reply = decide(body, plan, seed=seed)
        if path == "/v1/messages/count_tokens":
            await answer.json(200, anthropic.count_tokens(reply))
            return
        render: dict[str, tuple[Callable[[Reply], Any], Callable[[Reply], list[Frame]]]] = {
            "/v1/chat/completions": (openai.chat, openai.chat_stream),
            "/v1/completions": (openai.completion, openai.completion_stream),
            "/v1/responses": (
                lambda r: openai.response(r, body),
                lambda r: openai.response_stream(r, body),
            ),
            "/v1/messages": (anthropic.message, anthropic.message_stream),
        }
        whole, streamed = render[path]
        if body.get("stream") is True:
            await self._stream(streamed(reply), plan, answer, is_anthropic)
        else:
            await self._whole(whole(reply), plan, answer)

    async def _pre_fault(self, plan: Plan, answer: _Answer, is_anthropic: bool) -> bool:
        """Faults before any response byte; True when the request was answered by one."""
        wire = anthropic if is_anthropic else openai
        if plan.fault == "status" and plan.status is not None:
            extra = []
            if plan.status == 429:
                extra.append((b"retry-after", str(plan.retry_after).encode()))
            message = f"Simulated upstream error {plan.status}."
            await answer.json(plan.status, wire.error_body(plan.status, message), extra)
            return True
        if plan.fault == "slow":
            await asyncio.sleep(plan.delay_ms / 1000)
        elif plan.fault == "hang":
            await asyncio.Event().wait()  # until the client gives up
        return False

    async def _whole(self, payload: Any, plan: Plan, answer: _Answer) -> None:
        if plan.ttft_ms:
            await asyncio.sleep(plan.ttft_ms / 1000)
        data = orjson.dumps(payload)
        if plan.fault == "malformed":
            data = data[: len(data) // 2]
        elif plan.fault == "stall":
            await asyncio.Event().wait()
        headers = [_JSON, (b"content-length", str(len(data)).encode())]
        if plan.fault in ("truncate", "disconnect"):
            await answer.start(200, headers)
            await answer.body(data[: len(data) // 2])
            raise SimulatedFaultError("simulated disconnect mid-body")
        await answer.start(200, headers)
        await answer.body(data, more=False)

    async def _stream(
        self,
        frames: list[Frame],
        plan: Plan,
        answer: _Answer,
        is_anthropic: bool,
    ) -> None:
        answer.record.stream = True
        self.recorder.active_streams += 1
        await answer.start(200, [_SSE, _NO_CACHE])
        if plan.ttft_ms:
            await asyncio.sleep(plan.ttft_ms / 1000)
        delay = plan.token_delay_ms / 1000
        fault_at = _fault_index(frames, plan) if plan.fault in _STREAM_FAULTS else None
        pending: list[bytes] = []
        sent_content = 0
        for index, frame in enumerate(frames):
            if index == fault_at:
                if pending:
                    await answer.body(b"".join(pending))
                await self._stream_fault(plan, answer, is_anthropic)
                return
            if frame.content and sent_content and delay:
                if pending:
                    await answer.body(b"".join(pending))
                    pending = []
                await asyncio.sleep(delay)
            pending.append(frame.data)
            if frame.content:
                sent_content += 1
                await answer.body(b"".join(pending))
                pending = []
        await answer.body(b"".join(pending), more=False)

    async def _stream_fault(self, plan: Plan, answer: _Answer, is_anthropic: bool) -> None:
        if plan.fault == "malformed":
            await answer.body(_MALFORMED[is_anthropic])
            await answer.body(b"", more=False)
        elif plan.fault == "truncate":
            await answer.body(b"", more=False)
        elif plan.fault == "stall":
            await asyncio.Event().wait()
        else:  # disconnect
            raise SimulatedFaultError("simulated disconnect mid-stream")

    async def _admin(self, scope: Scope, raw: bytes, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        status = 200
        payload: dict[str, Any] = {}
        if path == "/_sim/requests" and method == "GET":
            query = parse_qs(scope["query_string"].decode())
            wanted = query.get("path", [None])[0]
            items = [r.as_json() for r in self.recorder.records if wanted in (None, r.path)]
            payload = {"requests": items}
        elif path == "/_sim/requests" and method == "DELETE":
            self.recorder.clear()
            payload = {"cleared": True}
        elif path == "/_sim/stats":
            payload = self.recorder.stats()
        elif path == "/_sim/scenario" and method in ("PUT", "POST"):
            try:
                self.planner.set_scenario(str(orjson.loads(raw)["scenario"]))
                payload = {"scenario": self.planner.base.scenario}
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                status, payload = 400, {"error": f"expected {{'scenario': name}}: {exc}"}
        elif path == "/_sim/scenario":
            payload = {"scenario": self.planner.base.scenario}
        elif path == "/_sim/canned" and method == "POST":
            try:
                target, canned = parse_canned(raw)
            except ValueError as exc:
                status, payload = 400, {"error": f"POST /_sim/canned: {exc}"}
            else:
                self.canned.setdefault(target, deque()).append(canned)
                payload = {"queued": self._canned_counts()}
        elif path == "/_sim/canned" and method == "DELETE":
            dropped = sum(self._canned_counts().values())
            self.canned.clear()
            payload = {"cleared": True, "dropped": dropped}
        elif path == "/_sim/canned" and method == "GET":
            payload = {"queued": self._canned_counts()}
        elif path == "/_sim/health":
            payload = {"status": "ok"}
        else:
            status, payload = 404, {"error": f"unknown admin path {path}"}
        data = orjson.dumps(payload)
        headers = [_JSON, (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    def _canned_counts(self) -> dict[str, int]:
        return {path: len(queue) for path, queue in self.canned.items()}


_STREAM_FAULTS = frozenset({"malformed", "truncate", "disconnect", "stall"})


def _fault_index(frames: list[Frame], plan: Plan) -> int:
    """Index of the frame before which a mid-stream fault strikes: after ``fault_after``
    content frames, or right after the last one when there are fewer."""
    seen = 0
    last_content = 0
    for index, frame in enumerate(frames):
        if frame.content:
            if seen == plan.fault_after:
                return index
            seen += 1
            last_content = index
    return last_content + 1


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(parts)
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _is_anthropic(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    return path.startswith("/v1/messages") or any(k == b"anthropic-version" for k, _ in headers)


def create_simulator(settings: SimulatorSettings | None = None) -> Simulator:
    return Simulator(settings or SimulatorSettings())
