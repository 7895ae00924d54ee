"""The upstream connection pool: TLS, keep-alive, stale connections, decoding, limits."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import trustme

from guardline.errors import UpstreamBusyError, UpstreamProtocolError
from guardline.proxy.pool import ConnectionPool
from guardline.settings import TimeoutSettings
from guardline.simulator import Simulator
from tests.conftest import eventually, openai_client
from tests.servers import Running, context_of, proxy, proxy_settings, simulator

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    root = tmp_path_factory.mktemp("tls")
    files = {"ca": root / "ca.pem", "cert": root / "cert.pem", "key": root / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


def test_tls_upstream_with_configured_ca(tls_files: dict[str, Path]) -> None:
    tls = {"ssl_certfile": str(tls_files["cert"]), "ssl_keyfile": str(tls_files["key"])}
    with simulator(config=tls) as sim:
        url = sim.url.replace("127.0.0.1", "localhost")
        assert url.startswith("https://")
        with (
            proxy(proxy_settings(url, upstream={"ca_bundle": str(tls_files["ca"])})) as gw,
            openai_client(gw.url) as client,
        ):
            assert client.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices  # type: ignore[arg-type]
        # Without the CA the certificate is not trusted: a clear 502, never plain text.
        with proxy(proxy_settings(url)) as gw, openai_client(gw.url) as client:
            with pytest.raises(openai.InternalServerError) as got:
                client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
            assert got.value.status_code == 502
            assert "TLS handshake" in got.value.response.json()["error"]["message"]
        assert sim.app.recorder.total == 1


def test_server_closing_idle_connections_is_harmless() -> None:
    with simulator(config={"timeout_keep_alive": 0.3}) as sim:
        settings = proxy_settings(sim.url, upstream={"keepalive_expiry": 60})
        with proxy(settings) as gw, openai_client(gw.url) as client:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
            pool = context_of(gw).upstreams["openai"].transport
            # The server closes the idle connection; the pool notices and forgets it.
            assert eventually(lambda: pool.stats().open == 0)
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
        assert sim.app.recorder.total == 2


# Protocol-level cases against a raw HTTP/1.1 peer (the pool is an HTTP client; these are
# the byte sequences real servers produce, not an LLM stand-in).

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def _pool(port: int, **kwargs: Any) -> ConnectionPool:
    options: dict[str, Any] = {
        "max_connections": 10,
        "keepalive_expiry": 60.0,
        "timeout": TimeoutSettings(read=2),
    }
    options.update(kwargs)
    return ConnectionPool("127.0.0.1", port, tls=None, **options)


def _with_peer(handler: Handler, test: Callable[[int, list[int]], Awaitable[None]]) -> list[int]:
    """Run ``test(port, connections)`` against a raw server running ``handler``."""
    connections: list[int] = []

    async def main() -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections.append(len(connections))
            try:
                await handler(reader, writer, len(connections))
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await test(port, connections)
            await asyncio.sleep(0.01)  # let closed transports finish closing

    asyncio.run(main())
    return connections


OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def test_stale_reused_connection_is_retried_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await _read_request(reader)
        writer.write(OK)
        await writer.drain()
        await _read_request(reader)  # a second request on this connection: hang up unanswered
        writer.transport.abort()

    async def test(port: int, connections: list[int]) -> None:
        pool = _pool(port)
        for _ in range(2):
            response = await pool.send(b"POST", b"/v1/x", [], b"{}")
            assert (response.status, await response.read()) == (200, b"{}")
            await response.aclose()
        await pool.aclose()

    assert len(_with_peer(handler, test)) == 2


def test_connection_closed_mid_body_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await _read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"partial":')
        await writer.drain()
        writer.transport.abort()

    async def test(port: int, connections: list[int]) -> None:
        pool = _pool(port)
        response = await pool.send(b"POST", b"/v1/x", [], b"{}")
        with pytest.raises(UpstreamProtocolError):
            await response.read()
        await response.aclose()
        assert pool.stats().open == 0
        await pool.aclose()

    _with_peer(handler, test)


def test_gzip_body_is_decoded() -> None:
    payload = b'{"text": "' + b"compressible " * 1000 + b'"}'
    packed = gzip.compress(payload)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await _read_request(reader)
        head = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
        writer.write(head)
        for i in range(0, len(packed), 100):
            part = packed[i : i + 100]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def test(port: int, connections: list[int]) -> None:
        pool = _pool(port)
        response = await pool.send(b"POST", b"/v1/x", [], b"{}")
        assert await response.read() == payload
        assert all(name != b"content-encoding" for name, _ in response.headers)
        await response.aclose()
        await pool.aclose()

    _with_peer(handler, test)


def test_pool_limit_waits_then_reports_busy() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await _read_request(reader)
            writer.write(OK)
            await writer.drain()

    async def test(port: int, connections: list[int]) -> None:
        pool = _pool(port, max_connections=1, timeout=TimeoutSettings(pool=0.2))
        held = await pool.send(b"GET", b"/v1/x", [], b"")
        started = time.monotonic()
        with pytest.raises(UpstreamBusyError):
            await pool.send(b"GET", b"/v1/x", [], b"")
        assert time.monotonic() - started >= 0.2
        # Releasing the held connection lets the next caller through, on the same connection.
        await held.read()
        waiting = asyncio.create_task(pool.send(b"GET", b"/v1/x", [], b""))
        await asyncio.sleep(0.05)
        await held.aclose()
        response = await waiting
        assert response.status == 200
        await response.aclose()
        assert pool.stats().open == 1
        await pool.aclose()

    assert len(_with_peer(handler, test)) == 1


def test_large_body_with_slow_reader_arrives_intact() -> None:
    """Backpressure: reading pauses while the consumer lags; nothing is lost or reordered."""
    blob = bytes(range(256)) * 40_000  # ~10 MB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(blob))
        writer.write(blob)
        await writer.drain()

    async def test(port: int, connections: list[int]) -> None:
        pool = _pool(port)
        response = await pool.send(b"GET", b"/v1/x", [], b"")
        parts = []
        while (chunk := await response.next_chunk()) is not None:
            parts.append(chunk)
            assert len(chunk) <= 4 << 20  # never the whole body buffered at once
            await asyncio.sleep(0.001)
        await response.aclose()
        await pool.aclose()
        assert b"".join(parts) == blob

    _with_peer(handler, test)


def test_pool_serves_many_calls_over_few_connections(
    sim: Running[Simulator], gw: Running[Any]
) -> None:
    with openai_client(gw.url) as client:
        for _ in range(20):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    assert context_of(gw).upstreams["openai"].transport.stats().open == 1
    assert len({r.headers.get("host") for r in sim.app.recorder.records}) == 1
