"""The ASGI endpoint every ``/v1/...`` call goes through.

Raw ASGI rather than a FastAPI handler: bodies are parsed once with orjson, headers stay
bytes, and nothing on this path validates vendor payloads with pydantic.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from guardline import logs
from guardline.disconnect import DisconnectWatch
from guardline.errors import (
    BodyTooLargeError,
    GuardlineError,
    GuardrailBlockedError,
    MalformedRequestError,
    RequestError,
    UpstreamProtocolError,
)
from guardline.exchange import Endpoint, Exchange, Outcome
from guardline.exporters.content import redacted_content
from guardline.proxy.adapters import ADAPTERS, Adapter, TextRef, fields, provider_for
from guardline.proxy.context import ProxyContext
from guardline.proxy.envelope import Envelope
from guardline.proxy.guard import StreamGuard
from guardline.proxy.headers import (
    REQUEST_ID,
    client_headers,
    client_request_id,
    new_request_id,
    upstream_headers,
)
from guardline.proxy.inspection import FINDINGS_HEADER, Inspector, findings_header
from guardline.proxy.media import Media, media
from guardline.proxy.paths import SCANNED, Call, classify
from guardline.proxy.relay import relay_events
from guardline.proxy.transport import Body, Header, UpstreamResponse, header_value

log = logging.getLogger("guardline.proxy")

_JSON = (b"content-type", b"application/json")
_SCANNED = frozenset(endpoint for _, endpoint in SCANNED.values())
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# Headers some servers read as the real method: a GET could become a POST upstream.
_METHOD_OVERRIDES = frozenset({b"x-http-method-override", b"x-http-method", b"x-method-override"})
# A guard-mode request body is forwarded as the JSON Guardline scanned, re-encoded.
_REENCODED = frozenset({b"content-type", b"content-encoding"})
_APP = b"x-guardline-app"
_APP_OK = re.compile(rb"[A-Za-z0-9._\-]{1,64}")
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


async def send_json(
    send: Send, status: int, body: bytes, rid: str, extra: Sequence[Header] = ()
) -> None:
    """Answer with a complete JSON body and Guardline's request id."""
    headers = [_JSON, (REQUEST_ID, rid.encode()), (b"content-length", str(len(body)).encode())]
    headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(
    send: Send, adapter: Adapter, err: GuardlineError, rid: str, extra: Sequence[Header] = ()
) -> None:
    """Answer with ``err`` as the provider's own error body."""
    await send_json(send, err.status, adapter.error_body(err, rid), rid, extra)


class ClientDisconnectedError(Exception):
    """The client went away while its request body was being read."""


async def body_chunks(
    receive: Receive, headers: list[Header], limit: int, what: str = "Request"
) -> AsyncIterator[bytes]:
    """A request body as it arrives, cut off at ``limit`` bytes (BodyTooLargeError naming
    ``what``); ClientDisconnectedError when the client goes away."""
    length = header_value(headers, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(what, limit)
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnectedError
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(what, limit)
        more = message.get("more_body", False)
        if chunk:
            yield chunk


class ProxyEndpoint:
    def __init__(self, context: ProxyContext) -> None:
        self._context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _Call(self._context, scope, receive, send).run()


class _Call:
    """One request. Also the relay's ``Downstream``."""

    __slots__ = (
        "adapter",
        "ctx",
        "envelope",
        "exchange",
        "input_texts",
        "inspector",
        "output_texts",
        "parsed",
        "receive",
        "refused",
        "scope",
        "send",
        "started",
        "watch",
    )

    def __init__(self, ctx: ProxyContext, scope: Scope, receive: Receive, send: Send) -> None:
        self.ctx = ctx
        self.scope = scope
        self.receive = receive
        self.send = send
        headers = scope["headers"]
        path: str = scope["path"]
        method: str = scope["method"]
        raw_path: bytes = scope.get("raw_path") or path.encode()
        self.refused: GuardlineError | None = None
        try:
            call = classify(method, path, raw_path, headers)
        except GuardlineError as err:  # answered in run(), in the path's format
            call = Call(provider_for(path, headers), Endpoint.PASSTHROUGH)
            self.refused = err
        self.adapter = ADAPTERS[call.provider]
        self.exchange = Exchange(
            request_id=new_request_id(),
            provider=call.provider,
            endpoint=call.endpoint,
            method=method,
            path=path,
            received=time.perf_counter(),
            client_request_id=client_request_id(headers),
        )
        self.started = False  # response headers sent
        self.watch = DisconnectWatch(receive)
        self.parsed: dict[str, Any] | None = None
        self.inspector: Inspector | None = None
        self.envelope: Envelope | None = None
        """Guard mode: the query and headers, scanned with the body."""
        # Only when spans record (redacted) content or samples are kept.
        self.input_texts: list[str] | None = None
        self.output_texts: list[str] | None = None

    async def run(self) -> None:
        ctx = self.ctx
        exchange = self.exchange
        ctx.inflight += 1
        logged_as = logs.request_id.set(exchange.request_id)
        logged_client = logs.client_request_id.set(exchange.client_request_id)
        try:
            await self._proxy()
        except asyncio.CancelledError as exc:
            self.watch.absorb(exc)  # the client left: not an error of ours
            exchange.outcome = Outcome.CLIENT_DISCONNECT
        except ClientDisconnectedError:
            exchange.outcome = Outcome.CLIENT_DISCONNECT
        except GuardlineError as err:
            await self._fail(err)
        finally:
            self.watch.stop()
            ctx.inflight -= 1
            if exchange.done is None:
                exchange.done = time.perf_counter()
            if self.inspector is not None:
                await self.inspector.drain()  # monitor findings belong to this exchange
            content = None
            if self.input_texts is not None:
                outputs = self.output_texts or []
                if exchange.stream:  # one text, so PII split across chunks is found
                    outputs = ["".join(outputs)]
                if ctx.telemetry.records_content:
                    content = await redacted_content(ctx.guardrails, self.input_texts, outputs)
                if ctx.samples.active:
                    await self._sample(outputs)
            reply = exchange.reply
            if reply.model is not None and not self._recordable(reply.model):
                reply.model = None  # the upstream's word: recorded only when it is a name
            ctx.record(exchange, content)
            logs.request_id.reset(logged_as)
            logs.client_request_id.reset(logged_client)

    async def _sample(self, outputs: list[str]) -> None:
        assert self.input_texts is not None
        try:
            await self.ctx.samples.exchange(
                self.exchange, self.input_texts, outputs, trace=self._trace_ids()
            )
        except Exception:  # a sample is never worth a failed request
            log.exception("samples failed on request %s", self.exchange.request_id)

    def _trace_ids(self) -> tuple[str, str] | None:
        """The exchange's span ids (hex), else those of the client's ``traceparent``."""
        span = self.exchange.trace
        if span is not None:
            context = span.get_span_context()
            return f"{context.trace_id:032x}", f"{context.span_id:016x}"
        parent = header_value(self.scope["headers"], b"traceparent")
        if parent is not None and (match := _TRACEPARENT.fullmatch(parent)):
            return match.group(1).decode(), match.group(2).decode()
        return None

    async def _proxy(self) -> None:
        ctx = self.ctx
        scope = self.scope
        exchange = self.exchange
        headers: list[Header] = scope["headers"]
        consumed, app = ctx.access.check(headers)
        if self.refused is not None:
            raise self.refused
        consumed |= _METHOD_OVERRIDES
        exchange.app = app or _app_header(headers)
        added: list[Header] = []
        body: Body
        if exchange.endpoint in _SCANNED:
            body, reencoded = await self._scanned_request(headers)
        else:
            body, reencoded = await self._other_request(headers)
        if reencoded:  # the vendor gets exactly the JSON that was scanned
            consumed |= _REENCODED
            added.append(_JSON)
        upstream = ctx.router.select(self.adapter.provider, exchange.path, exchange.model)
        exchange.upstream = upstream.name
        added = [*upstream.added_headers, *added]
        trace_headers = ctx.telemetry.begin(exchange, headers, upstream.host)
        if trace_headers:  # the exchange's span is the upstream call's parent
            consumed |= _TRACE_HEADERS
            added = [*added, *trace_headers]
        query: bytes = scope["query_string"]
        sent = headers
        if self.envelope is not None:
            sent, query = self.envelope.headers(headers), self.envelope.query()
        out = upstream_headers(sent, drop=consumed, auth=upstream.auth, added=added)
        if not isinstance(body, bytes) and (length := header_value(headers, b"content-length")):
            out.append((b"content-length", length))
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        target = upstream.target(raw_path, query)
        exchange.upstream_sent = time.perf_counter()
        response = await upstream.transport.send(scope["method"].encode(), target, out, body)
        exchange.first_byte = time.perf_counter()
        exchange.status = response.status
        if response.status >= 400:
            exchange.outcome = Outcome.UPSTREAM_ERROR
        try:
            await self._respond(response)
        finally:
            await response.aclose()

    async def _scanned_request(self, headers: list[Header]) -> tuple[bytes, bool]:
        """Read, parse and scan a request to an endpoint with a known format. Returns the
        body to forward and whether it was re-encoded as JSON (guard mode always is)."""
        ctx = self.ctx
        exchange = self.exchange
        raw = await self._read_body(headers)
        body = raw
        if exchange.method == "POST":
            self._parse(_decoded(raw, headers, ctx.max_body_bytes))
        self.watch.start()
        parsed = self.parsed
        if parsed is None:
            return body, False
        policy = ctx.guardrails.policies.resolve(
            self.adapter.provider, exchange.path, exchange.model, exchange.app
        )
        exchange.policy = policy
        inspector = self.inspector = Inspector(ctx.guardrails, policy, exchange)
        refs = self.adapter.request_texts(exchange.endpoint, parsed)
        exchange.input_chars = sum(len(ref.get()) for ref in refs)
        exchange.regenerated = ctx.conversations.regenerated(
            exchange.provider, exchange.endpoint.value, exchange.app, parsed
        )
        if ctx.telemetry.records_content or ctx.samples.active:
            # As sent, before any guardrail: a blocked prompt is a sample too.
            self.input_texts = [ref.get() for ref in refs]
            self.output_texts = []
        guarding = inspector.guarding("request")
        extra = self._envelope(headers) if guarding else ()
        # Every string of the body; redacted before it leaves for the vendor.
        changed = await inspector.guard_body("request", parsed, self.adapter.provider, extra)
        if ctx.inject_usage and exchange.stream and _ask_for_usage(exchange, parsed):
            changed = True
        if guarding or changed:  # re-encoded: its content type and encoding are ours
            return orjson.dumps(parsed), True
        return body, False

    async def _other_request(self, headers: list[Header]) -> tuple[Body, bool]:
        """A call to an endpoint without a known format. Passed through as it streams,
        unless a guard-mode rule covers it: then its JSON is read and every string in it
        scanned, and a body Guardline cannot parse is refused."""
        ctx = self.ctx
        exchange = self.exchange
        policy = ctx.guardrails.policies.resolve(
            self.adapter.provider, exchange.path, None, exchange.app
        )
        guarding = policy.names("request", "guard")
        if policy.names("response", "guard") or guarding:
            exchange.policy = policy
            self.inspector = Inspector(ctx.guardrails, policy, exchange)
        if not guarding:
            body: Body = self._body_stream(headers) if _has_body(headers) else b""
            if not body:
                self.watch.start()
            return body, False
        raw = await self._read_body(headers)
        self.watch.start()
        assert self.inspector is not None
        extra = self._envelope(headers)
        if not raw:
            await self.inspector.guard_texts("request", extra)
            return raw, False
        kind = media(header_value(headers, b"content-type"))
        if kind not in (Media.JSON, Media.NONE):
            raise _unscannable(
                "Guardline's guard mode scans JSON request bodies; this one is "
                f"{(header_value(headers, b'content-type') or b'').decode('latin-1')[:80]!r}. "
                "Send it through a route whose policy monitors instead."
            )
        self._parse(_decoded(raw, headers, ctx.max_body_bytes))
        assert self.parsed is not None
        await self.inspector.guard_body("request", self.parsed, self.adapter.provider, extra)
        return orjson.dumps(self.parsed), True

    def _envelope(self, headers: list[Header]) -> list[TextRef]:
        self.envelope = Envelope(headers, self.scope["query_string"])
        return self.envelope.texts()

    async def _respond(self, response: UpstreamResponse) -> None:
        if self.inspector is not None and self.inspector.guarding("response"):
            await self._respond_guarded(response)
            return
        exchange = self.exchange
        kind = media(header_value(response.headers, b"content-type"))
        if kind is Media.SSE:
            exchange.stream = True
            out = client_headers(response.headers, self.client_id())
            if exchange.endpoint is Endpoint.PASSTHROUGH:
                await self._relay_chunks(response, out)
            else:
                await self._relay_stream(response, out)
        elif exchange.endpoint is Endpoint.PASSTHROUGH:
            await self._relay_chunks(response, client_headers(response.headers, self.client_id()))
        else:
            data = await response.read()
            exchange.upstream_done = time.perf_counter()
            if response.status < 300 and kind is Media.JSON:
                parsed = _json_body(data)
                self.adapter.observe_response(exchange.endpoint, parsed, exchange.reply)
                if self.inspector is not None:
                    if self.output_texts is not None:  # as received
                        refs = self.adapter.response_texts(exchange.endpoint, parsed)
                        self.output_texts += [ref.get() for ref in refs]
                    # Monitor mode: watched in the background, never changed.
                    await self.inspector.guard_body("response", parsed, self.adapter.provider)
            await self._answer(response.status, response.headers, data)

    async def _respond_guarded(self, response: UpstreamResponse) -> None:
        """Guard mode: only what was scanned reaches the client. Redirects, bodies the
        pool could not decode and 2xx answers that are neither the JSON nor the event
        stream they should be are refused (502); error bodies are scanned too."""
        exchange = self.exchange
        inspector = self.inspector
        assert inspector is not None
        status = response.status
        kind = media(header_value(response.headers, b"content-type"))
        if 300 <= status < 400:
            raise UpstreamProtocolError(
                f"The upstream answered with a redirect ({status}); guard mode does not let "
                "a client be sent elsewhere."
            )
        if header_value(response.headers, b"content-encoding") not in (None, b"identity"):
            raise UpstreamProtocolError(
                "The upstream answered in a content encoding Guardline does not decode; "
                "guard mode forwards only what it can scan."
            )
        if kind is Media.SSE and status < 300:
            exchange.stream = True
            await self._relay_stream(response, client_headers(response.headers, self.client_id()))
            return
        data = await response.read()
        exchange.upstream_done = time.perf_counter()
        provider = self.adapter.provider
        if status >= 300:
            data = await self._guard_error_body(data, kind)
        elif kind is Media.JSON:
            parsed = _json_body(data)
            if exchange.endpoint is not Endpoint.PASSTHROUGH:
                self.adapter.observe_response(exchange.endpoint, parsed, exchange.reply)
                if self.output_texts is not None:  # as received, before any guardrail
                    refs = self.adapter.response_texts(exchange.endpoint, parsed)
                    self.output_texts += [ref.get() for ref in refs]
            if await inspector.guard_body("response", parsed, provider):
                data = orjson.dumps(parsed)
        elif data:
            given = header_value(response.headers, b"content-type") or b"none"
            raise UpstreamProtocolError(
                "The upstream's answer is neither JSON nor an event stream (content type "
                f"{given.decode('latin-1')[:80]!r}); guard mode forwards only what it can scan."
            )
        await self._answer(status, response.headers, data)

    async def _guard_error_body(self, data: bytes, kind: Media) -> bytes:
        """An upstream error body, scanned: vendors' errors may quote the prompt."""
        inspector = self.inspector
        assert inspector is not None
        if kind is Media.JSON:
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                changed = await inspector.guard_body(
                    "response", {"body": parsed}, self.adapter.provider
                )
                return orjson.dumps(parsed) if changed else data
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise UpstreamProtocolError(
                "The upstream sent an error body that is not UTF-8 text; guard mode "
                "forwards only what it can scan."
            ) from None
        box = {"text": text}
        if await inspector.guard_texts("response", [TextRef(box, "text")]):
            return box["text"].encode()
        return data

    async def _relay_stream(self, response: UpstreamResponse, out: list[Header]) -> None:
        exchange = self.exchange
        guard = None
        if self.inspector is not None and response.status < 300:
            guard = StreamGuard(
                self.inspector, self.adapter, exchange.endpoint, self.ctx.guardrails.max_hold
            )
        if guard is not None and not guard.active:
            guard = None
        telemetry = self.ctx.telemetry
        telemetry.stream_opened(exchange)
        try:
            await relay_events(
                response,
                self,
                headers=out,
                adapter=self.adapter,
                endpoint=exchange.endpoint,
                exchange=exchange,
                guard=guard,
                # An active guard keeps the text already: not extracted twice.
                texts=self.output_texts if guard is None else None,
            )
        finally:
            telemetry.stream_closed(exchange)
            if guard is not None and self.output_texts is not None:
                self.output_texts += guard.texts()

    async def _answer(self, status: int, headers: list[Header], data: bytes) -> None:
        out = client_headers(headers, self.client_id(), len(data))
        await self.start(status, out)
        await self.body(data)
        await self.end()

    async def _relay_chunks(self, response: UpstreamResponse, headers: list[Header]) -> None:
        await self.start(response.status, headers)
        while (chunk := await response.next_chunk()) is not None:
            await self.body(chunk)
        self.exchange.upstream_done = time.perf_counter()
        await self.end()

    # Downstream ---------------------------------------------------------------------

    async def start(self, status: int, headers: list[Header]) -> None:
        self.started = True
        if self.exchange.findings:  # what guard-mode scanning found before the first byte
            headers.append((FINDINGS_HEADER, findings_header(self.exchange.findings)))
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes) -> None:
        first = self.exchange.first_chunk is None
        if first:
            self.exchange.first_chunk = time.perf_counter()
        await self.send({"type": "http.response.body", "body": data, "more_body": True})
        if first and self.inspector is not None:
            self.inspector.release()

    async def end(self) -> None:
        self.watch.finished = True
        if self.exchange.done is None:
            self.exchange.done = time.perf_counter()  # the client has it all; drains follow
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})

    def client_id(self) -> str:
        """The request id the client gets: signed, with the labels feedback needs, on the
        endpoints feedback is about; the plain id elsewhere."""
        exchange = self.exchange
        if exchange.endpoint not in _SCANNED:
            return exchange.request_id
        if exchange.signed_id is None:
            exchange.signed_id = self.ctx.signer.issue(
                exchange.request_id,
                provider=exchange.provider,
                route=exchange.endpoint.value,
                model=exchange.model,
                app=exchange.app,
                upstream=exchange.upstream,
            )
        return exchange.signed_id

    # internals ------------------------------------------------------------------------

    async def _fail(self, err: GuardlineError) -> None:
        exchange = self.exchange
        exchange.outcome = (
            Outcome.BLOCKED if isinstance(err, GuardrailBlockedError) else Outcome.ERROR
        )
        exchange.error_code = err.code
        if err.status >= 500:
            log.warning(
                "%s %s via %s failed: %s (%s) request_id=%s",
                exchange.method,
                exchange.path,
                exchange.upstream,
                err.code,
                err.message,
                exchange.request_id,
            )
        if self.started:
            # Bytes already went out (a pass-through body): returning without completing
            # the response makes the server close the connection, so the client sees a
            # truncated body rather than a clean end.
            return
        exchange.status = err.status
        self.started = self.watch.finished = True
        extra = [(FINDINGS_HEADER, findings_header(exchange.findings))] if exchange.findings else []
        await send_error(self.send, self.adapter, err, self.client_id(), extra)
        exchange.done = time.perf_counter()

    async def _read_body(self, headers: list[Header]) -> bytes:
        chunks = body_chunks(self.receive, headers, self.ctx.max_body_bytes)
        parts = [chunk async for chunk in chunks]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _body_stream(self, headers: list[Header]) -> AsyncIterator[bytes]:
        """The body for a pass-through upload, streamed to the upstream as it arrives."""
        async for chunk in body_chunks(self.receive, headers, self.ctx.max_body_bytes):
            yield chunk
        self.watch.start()

    def _recordable(self, model: str) -> bool:
        return fields.MODEL.check(model, {}) and self.ctx.guardrails.recordable(model)

    def _parse(self, body: bytes) -> None:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequestError(
                f"We could not parse the JSON body of your request ({exc.msg})."
            ) from None
        if not isinstance(parsed, dict):
            raise MalformedRequestError("The request body must be a JSON object.")
        model = parsed.get("model")
        if model is not None and not (isinstance(model, str) and self._recordable(model)):
            # Recorded in logs, spans, metrics and samples: only a name, never free text.
            raise MalformedRequestError(
                "'model' must be a model name: up to 256 letters, digits and . _ : / + - "
                "(and an @version suffix), holding no personal data.",
                code="invalid_model",
            )
        self.exchange.model = model
        self.exchange.stream = parsed.get("stream") is True
        self.parsed = parsed


def _ask_for_usage(exchange: Exchange, parsed: dict[str, Any]) -> bool:
    """Ask an OpenAI-format stream for its usage when the client did not: without it a
    streamed call reports no tokens (and would be priced at nothing). True if asked."""
    if exchange.endpoint not in (Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS):
        return False
    options = parsed.get("stream_options")
    if options is None:
        options = {}
    elif not isinstance(options, dict) or options.get("include_usage") is True:
        return False  # the client asked (it gets usage unchanged), or sent something odd
    parsed["stream_options"] = {**options, "include_usage": True}
    exchange.strip_usage = True
    return True


def _decoded(body: bytes, headers: list[Header], limit: int) -> bytes:
    """A request body without its content encoding (gzip or deflate), so what is scanned
    is what the vendor would read; 415 for any other encoding, 413 past ``limit``."""
    encoding = header_value(headers, b"content-encoding")
    if encoding is None or encoding.strip().lower() in (b"", b"identity"):
        return body
    if encoding.strip().lower() not in (b"gzip", b"x-gzip", b"deflate"):
        raise _unscannable(
            f"Guardline does not decode content-encoding {encoding.decode('latin-1')[:40]!r}; "
            "send the body uncompressed, gzip or deflate."
        )
    decoder = zlib.decompressobj(47)  # zlib or gzip wrapper, auto-detected
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error:
        raise MalformedRequestError("The request body is not valid gzip or deflate data.") from None
    if len(out) > limit or decoder.unconsumed_tail:
        raise _too_large("Request", limit)
    return out


def _unscannable(message: str) -> RequestError:
    err = RequestError(message, code="unsupported_media_type")
    err.status = 415
    return err


def _json_body(data: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError("The upstream sent a malformed JSON response.") from None
    if not isinstance(parsed, dict):
        raise UpstreamProtocolError("The upstream sent a JSON response that is not an object.")
    return parsed


def _app_header(headers: list[Header]) -> str | None:
    value = header_value(headers, _APP)
    return value.decode() if value is not None and _APP_OK.fullmatch(value) else None


def _has_body(headers: list[Header]) -> bool:
    length = header_value(headers, b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return header_value(headers, b"transfer-encoding") is not None


def _too_large(what: str, limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(f"{what} body is larger than the proxy's limit of {limit} bytes.")
