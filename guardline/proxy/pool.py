"""A keep-alive HTTP/1.1 connection pool over asyncio protocols and httptools.

This is the one boundary where transport failures become Guardline errors: every OSError,
TLS error, parser error or timeout leaves here as an ``UpstreamError`` subclass.
Supports TLS, chunked and length-delimited bodies in both directions, backpressure (reading
pauses while the consumer lags), a read-inactivity timeout, and gzip/deflate bodies (the
proxy asks for ``identity``; a server that compresses anyway is decoded here).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterable, Sequence
from typing import cast

import httptools

from guardline.errors import (
    UpstreamBusyError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from guardline.proxy.transport import Body, Header, PoolStats, header_value
from guardline.settings import TimeoutSettings

_HIGH_WATER = 1 << 20  # pause reading once this many body bytes wait for the consumer
_LOW_WATER = 1 << 18
_CLOSE_SECONDS = 2.0  # how long shutdown waits for sockets to finish closing


class _StaleConnectionError(Exception):
    """A reused connection closed before any response byte: safe to retry once."""


class _Connection(asyncio.Protocol):
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.alive = True
        self.gone: asyncio.Future[None] = self._loop.create_future()
        """Done once the socket is really closed (TLS needs a few loop turns to say goodbye)."""
        self.idle_since = 0.0
        # Per-exchange state, reset by begin().
        self._in_flight = False
        self._got_bytes = False
        self._headers_done: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[Header] = []
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        self._exc: BaseException | None = None
        self._reading_paused = False
        self._keep_alive = True
        self._close_delimited = False
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack like one.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if not self.gone.done():
            self.gone.set_result(None)
        self._cancel_timer()
        if self._in_flight and not self.complete:
            if self._close_delimited and self._headers_done and self._headers_done.done():
                self.on_message_complete()
            elif not self._got_bytes:
                self._fail(_StaleConnectionError())
            else:
                self._fail(UpstreamProtocolError("upstream closed the connection mid-response"))
        self._wake_writer()
        self._pool._lost(self)

    def data_received(self, data: bytes) -> None:
        if not self._in_flight:
            # Bytes on an idle connection: the server is confused; never reuse it.
            self.close()
            return
        self._got_bytes = True
        self._last_activity = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream tried to switch protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"malformed HTTP response from upstream: {exc}"))
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the exchange

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    # httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:  # 1xx interim response: keep waiting for the real one
            self.headers = []
            return
        encoding = header_value(self.headers, b"transfer-encoding")
        self._close_delimited = (
            header_value(self.headers, b"content-length") is None
            and (encoding is None or b"chunked" not in encoding.lower())
            and self.status not in (204, 304)
        )
        if self._headers_done is not None and not self._headers_done.done():
            self._headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def on_message_complete(self) -> None:
        if self.status < 200:
            return
        self.complete = True
        self._keep_alive = self._parser.should_keep_alive() and not self._close_delimited
        self._cancel_timer()
        self._wake_reader()

    # exchange -------------------------------------------------------------------------

    async def request(self, head: bytes, body: Body, read_timeout: float) -> None:
        """Write the request; return once response headers arrived."""
        self._in_flight = True
        self._got_bytes = False
        self.complete = False
        self._exc = None
        self.status = 0
        self.headers = []
        self._chunks.clear()
        self._buffered = 0
        self._headers_done = self._loop.create_future()
        self._read_timeout = read_timeout
        self._last_activity = self._loop.time()
        self._timer = self._loop.call_at(self._last_activity + read_timeout, self._on_timer)
        assert self.transport is not None
        if isinstance(body, bytes):
            self.transport.write(head + body)
        else:
            self.transport.write(head)
            await self._write_stream(body, chunked=b"\r\ncontent-length:" not in head.lower())
        await self._headers_done

    async def _write_stream(self, body: AsyncIterable[bytes], *, chunked: bool) -> None:
        assert self.transport is not None
        async for part in body:
            if not part:
                continue
            if self._exc is not None or not self.alive:
                return  # the upstream already answered or went away; stop uploading
            self.transport.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            self._last_activity = self._loop.time()
            if self._write_paused:
                self._drain_waiter = self._loop.create_future()
                await self._drain_waiter
        if chunked and self.alive:
            self.transport.write(b"0\r\n\r\n")

    async def next_chunk(self) -> bytes | None:
        while True:
            if self._chunks:
                if len(self._chunks) == 1:
                    data = self._chunks.popleft()
                else:
                    data = b"".join(self._chunks)
                    self._chunks.clear()
                self._buffered = 0
                if self._reading_paused and self.transport is not None:
                    self._reading_paused = False
                    self._last_activity = self._loop.time()
                    self.transport.resume_reading()
                return data
            if self._exc is not None:
                raise self._exc
            if self.complete:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def reusable(self, now: float, expiry: float) -> bool:
        return self.alive and now - self.idle_since < expiry

    def finish(self) -> bool:
        """End the exchange; True when the connection may go back to the pool."""
        self._in_flight = False
        self._cancel_timer()
        ok = self.alive and self.complete and self._keep_alive and self._exc is None
        if ok:
            self.idle_since = self._loop.time()
            self._chunks.clear()
            self._buffered = 0
        return ok

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.close()

    # internals --------------------------------------------------------------------

    def _on_timer(self) -> None:
        self._timer = None
        if not self._in_flight or self.complete:
            return
        now = self._loop.time()
        if self._reading_paused:  # the consumer is slow, not the upstream
            self._last_activity = now
        due = self._last_activity + self._read_timeout
        if now >= due:
            self._fail(UpstreamTimeoutError(f"upstream sent nothing for {self._read_timeout:g} s"))
            self.close()
        else:
            self._timer = self._loop.call_at(due, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, exc: BaseException) -> None:
        if self._exc is None:
            self._exc = exc
        if self._headers_done is not None and not self._headers_done.done():
            self._headers_done.set_exception(exc)
            self._headers_done.exception()  # mark retrieved: the caller may be gone
        self._wake_reader()
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _wake_writer(self) -> None:
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)


class _PooledResponse:
    __slots__ = ("_conn", "_decoder", "_pool", "_released", "headers", "status")

    def __init__(self, pool: ConnectionPool, conn: _Connection) -> None:
        self._pool = pool
        self._conn = conn
        self._released = False
        self.status = conn.status
        self.headers = conn.headers
        self._decoder: zlib._Decompress | None = None
        encoding = header_value(self.headers, b"content-encoding")
        if encoding is not None and encoding.strip().lower() in (b"gzip", b"deflate", b"x-gzip"):
            # wbits 47: zlib or gzip wrapper, auto-detected
            self._decoder = zlib.decompressobj(47)
            self.headers = [(k, v) for k, v in self.headers if k != b"content-encoding"]

    async def next_chunk(self) -> bytes | None:
        data = await self._conn.next_chunk()
        if self._decoder is None:
            return data
        try:
            if data is None:
                tail = self._decoder.flush()
                return tail or None
            return self._decoder.decompress(data)
        except zlib.error as exc:
            raise UpstreamProtocolError(
                f"undecodable compressed body from upstream: {exc}"
            ) from None

    async def read(self) -> bytes:
        parts = []
        while (chunk := await self.next_chunk()) is not None:
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def drain(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                while await self._conn.next_chunk() is not None:
                    pass
        except (TimeoutError, UpstreamError):
            pass

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._pool._release(self._conn)


class ConnectionPool:
    """Pooled connections to one origin. Implements ``Transport``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None,
        timeout: TimeoutSettings,
        max_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._host = host
        self._port = port
        self._tls = tls
        self._timeout = timeout
        self._max = max_connections
        self._expiry = keepalive_expiry
        default_port = 443 if tls else 80
        host_header = host if ":" not in host else f"[{host}]"
        if port != default_port:
            host_header = f"{host_header}:{port}"
        self._host_line = b"host: " + host_header.encode("idna") + b"\r\n"
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._active: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def stats(self) -> PoolStats:
        return PoolStats(open=self._open, idle=len(self._idle), active=len(self._active))

    async def send(
        self, method: bytes, target: bytes, headers: Sequence[Header], body: Body
    ) -> _PooledResponse:
        lines = [method, b" ", target, b" HTTP/1.1\r\n", self._host_line]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        if isinstance(body, bytes):
            if body or method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
                lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        elif header_value(headers, b"content-length") is None:
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        for attempt in range(2):
            conn, reused = await self._acquire()
            try:
                await conn.request(head, body, self._timeout.read)
            except _StaleConnectionError:
                self._release(conn)
                if reused and attempt == 0 and isinstance(body, bytes):
                    continue
                raise UpstreamConnectError(
                    "upstream closed the connection before answering"
                ) from None
            except BaseException:
                conn.close()
                self._release(conn)
                raise
            if method == b"HEAD":
                conn.complete = True
                conn.close()  # a HEAD response has no body; never reuse a parser that expects one
            return _PooledResponse(self, conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        self._closed = True
        conns = list(self._idle) + list(self._active)
        for conn in conns:
            conn.close()
        self._idle.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamBusyError("upstream pool is closing"))
        if conns:
            await asyncio.wait([c.gone for c in conns], timeout=_CLOSE_SECONDS)

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout.pool
        while True:
            if self._closed:
                raise UpstreamBusyError("upstream pool is closed")
            now = loop.time()
            while self._idle:
                conn = self._idle.pop()  # most recently used first: least likely stale
                if conn.reusable(now, self._expiry):
                    self._active.add(conn)
                    return conn, True
                self._open -= 1
                conn.close()
            if self._open < self._max:
                self._open += 1
                try:
                    conn = await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
                self._active.add(conn)
                return conn, False
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise UpstreamBusyError(
                    f"all {self._max} upstream connections busy for {self._timeout.pool:g} s"
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout.connect):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"connecting to upstream timed out after {self._timeout.connect:g} s"
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamConnectError(
                f"TLS handshake with upstream failed: {exc.reason}"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(
                f"cannot connect to upstream: {exc.strerror or exc.__class__.__name__}"
            ) from None
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn not in self._active:
            return
        self._active.discard(conn)
        if conn.finish() and not self._closed:
            self._idle.append(conn)
        else:
            self._open -= 1
            conn.close()
        self._wake_one()

    def _lost(self, conn: _Connection) -> None:
        # A pooled idle connection the server closed: forget it now.
        if conn in self._idle:
            self._idle.remove(conn)
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
