"""Ingress limits on raw sockets against real uvicorn: head and body deadlines, the
connection cap and its provider-shaped 503, keep-alive under the deadlines."""

from __future__ import annotations

import gc
import json
import logging
import socket
import time
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from guardline.exchange import Exchange, Outcome
from guardline.proxy import ingress
from guardline.simulator import Simulator
from tests.conftest import eventually
from tests.servers import Running, context_of, proxy, proxy_settings, simulator

CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
MESSAGES = json.dumps(
    {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
)
SLACK = 3.0
"""Generous extra seconds for "closed within about the timeout" on a busy machine."""


def request(path: str, body: str | None = None, headers: dict[str, str] | None = None) -> bytes:
    method = "GET" if body is None else "POST"
    lines = [f"{method} {path} HTTP/1.1", "host: guardline.test"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines += ["content-type: application/json", f"content-length: {len(body.encode())}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or "").encode()


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(sock: socket.socket) -> Response:
    """One response with a content-length (what every answer in these tests has)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    assert len(rest) == length, "bytes after the response"
    return Response(int(status_line.split()[1]), headers, rest)


def closed_by_server(sock: socket.socket, wait: float = 0.05) -> bool:
    """True once the server closed (EOF or reset) without a word; False while the
    connection is open."""
    sock.settimeout(wait)
    try:
        data = sock.recv(65536)
        assert data == b"", f"the server answered instead of closing: {data!r}"
        return True
    except (TimeoutError, BlockingIOError):
        return False
    except ConnectionError:
        return True
    finally:
        sock.settimeout(10)


def trickle_until_closed(sock: socket.socket, data: bytes, limit: float) -> float:
    """Send ``data`` a byte every 50 ms (over and over) until the server closes the
    connection; the seconds that took. Fails after ``limit`` seconds."""
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < limit:
        try:
            sock.send(data[i % len(data) : i % len(data) + 1])
        except ConnectionError:
            return time.monotonic() - start
        i += 1
        if closed_by_server(sock):
            return time.monotonic() - start
    pytest.fail(f"the server kept the connection open for {limit} s")


@contextmanager
def connect(server: Running[Any]) -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


@contextmanager
def guardline(sim: Running[Simulator], **limits: Any) -> Iterator[Running[Any]]:
    with proxy(proxy_settings(sim.url, ingress=limits)) as gw:
        yield gw


def exchanges_of(gw: Running[Any]) -> list[Exchange]:
    seen: list[Exchange] = []
    context_of(gw).observers.append(seen.append)
    return seen


def gate_of(gw: Running[Any]) -> ingress.Gate:
    gate: ingress.Gate = gw.server.config.http_protocol_class.gate
    return gate


def assert_works(sock: socket.socket) -> None:
    sock.sendall(request("/v1/chat/completions", CHAT))
    response = read_response(sock)
    assert response.status == 200, response.body
    assert response.json()["object"] == "chat.completion"


# (a) the head deadline ----------------------------------------------------------------


def test_a_head_sent_slowly_is_closed_after_head_timeout_others_are_served(
    sim: Running[Simulator],
) -> None:
    with guardline(sim, head_timeout=0.5) as gw, connect(gw) as slow:
        slow.send(b"POST /v1/chat/completions HTTP/1.1\r\n")
        with connect(gw) as normal:  # served while the slow one trickles
            assert_works(normal)
        took = trickle_until_closed(slow, b"x-slow: abcdefgh\r\n", limit=0.5 + SLACK)
        assert took >= 0.3  # the deadline, not something else, closed it
        with connect(gw) as normal:
            assert_works(normal)


def test_a_connection_that_sends_nothing_is_closed_after_head_timeout(
    sim: Running[Simulator],
) -> None:
    with guardline(sim, head_timeout=0.5) as gw, connect(gw) as silent:
        assert eventually(lambda: closed_by_server(silent), timeout=0.5 + SLACK)
        assert eventually(lambda: gw.connections() == 0)


def test_a_head_completed_in_time_is_served(sim: Running[Simulator]) -> None:
    """Sent in pieces, but complete within the deadline: the deadline is for the whole head,
    and the body has its own."""
    with guardline(sim, head_timeout=2, body_timeout=2) as gw, connect(gw) as sock:
        data = request("/v1/chat/completions", CHAT)
        head_end = data.index(b"\r\n\r\n") + 4
        for piece in (data[:10], data[10:head_end], data[head_end:]):
            sock.sendall(piece)
            time.sleep(0.2)
        assert read_response(sock).status == 200


# (b) the body deadline ----------------------------------------------------------------


def test_b_stalled_body_is_closed_and_recorded_as_client_disconnect(
    sim: Running[Simulator],
) -> None:
    with guardline(sim, head_timeout=5, body_timeout=0.5) as gw, connect(gw) as sock:
        seen = exchanges_of(gw)
        data = request("/v1/chat/completions", CHAT)
        head_end = data.index(b"\r\n\r\n") + 4
        sock.sendall(data[: head_end + 10])  # the head and ten bytes of the body
        start = time.monotonic()
        assert eventually(lambda: closed_by_server(sock), timeout=0.5 + SLACK)
        assert time.monotonic() - start >= 0.3
        assert eventually(lambda: seen and seen[-1].outcome is Outcome.CLIENT_DISCONNECT)
        assert len(seen) == 1
        assert eventually(lambda: gw.connections() == 0)


def test_b_deadlines_do_not_cut_a_slow_response() -> None:
    """The body deadline ends with the body: an answer that takes longer is not cut."""
    with (
        simulator(ttft_ms=800) as slow_sim,
        guardline(slow_sim, head_timeout=0.3, body_timeout=0.3) as gw,
        connect(gw) as sock,
    ):
        assert_works(sock)


# (c) many slow heads --------------------------------------------------------------------


def test_c_200_slow_header_connections_are_all_closed(sim: Running[Simulator]) -> None:
    count = 200
    with guardline(sim, head_timeout=1) as gw, ExitStack() as stack:
        socks = [stack.enter_context(connect(gw)) for _ in range(count)]
        for sock in socks:
            sock.send(b"GET /v1/models HTTP/1.1\r\n")
        assert eventually(lambda: gw.connections() == count)
        start = time.monotonic()
        open_socks = list(socks)
        while open_socks and time.monotonic() - start < 1 + SLACK:
            for sock in list(open_socks):
                try:
                    sock.send(b"x")
                except ConnectionError:
                    open_socks.remove(sock)
                    continue
                if closed_by_server(sock, wait=0):
                    open_socks.remove(sock)
            time.sleep(0.05)
        assert not open_socks, f"{len(open_socks)} of {count} connections still open"
        assert eventually(lambda: gw.connections() == 0)
        gate = gate_of(gw)
        assert (gate.admitted, gate.refusing) == (0, 0)
        with connect(gw) as sock:
            assert_works(sock)


# (d) the connection cap -------------------------------------------------------------------


def test_d_connection_over_the_cap_gets_a_provider_shaped_503(
    sim: Running[Simulator],
) -> None:
    with guardline(sim, max_connections=2) as gw, connect(gw) as first, connect(gw) as second:
        assert eventually(lambda: gw.connections() == 2)

        with connect(gw) as third:
            third.sendall(request("/v1/chat/completions", CHAT))
            busy = read_response(third)
            assert busy.status == 503
            assert busy.headers["retry-after"] == "1"
            assert busy.headers["connection"] == "close"
            assert busy.headers["content-type"] == "application/json"
            error = busy.json()
            assert set(error) == {"error"}
            assert error["error"]["code"] == "server_busy"
            assert error["error"]["type"] == "server_error"
            assert error["error"]["param"] is None
            assert error["error"]["message"]
            assert eventually(lambda: closed_by_server(third))

        for path, body, headers in (
            ("/v1/messages", MESSAGES, {}),
            ("/v1/models", None, {"anthropic-version": "2023-06-01"}),
        ):
            with connect(gw) as over:
                over.sendall(request(path, body, headers))
                busy = read_response(over)
                assert busy.status == 503
                assert busy.headers["retry-after"] == "1"
                assert busy.headers["connection"] == "close"
                error = busy.json()
                assert error["type"] == "error"
                assert error["error"]["type"] == "overloaded_error"
                assert error["error"]["code"] == "server_busy"
                assert error["error"]["message"]
                assert error["request_id"] == busy.headers["x-guardline-request-id"]
                assert eventually(lambda: closed_by_server(over))

        assert_works(first)
        assert_works(second)
        assert_works(first)  # and they stay kept alive

    with guardline(sim, max_connections=1) as gw:
        with connect(gw) as only:
            assert_works(only)
        assert eventually(lambda: gw.connections() == 0)
        with connect(gw) as next_one:  # a closed connection frees its place
            assert_works(next_one)


def test_d_slow_connections_over_the_cap_are_still_under_the_head_deadline(
    sim: Running[Simulator],
) -> None:
    with (
        guardline(sim, max_connections=1, head_timeout=0.5) as gw,
        connect(gw) as admitted,
        connect(gw) as over,
    ):
        admitted.send(b"GET /v1/models HTTP/1.1\r\n")  # admitted, then slow: closed too
        over.send(b"GET /v1/models HTTP/1.1\r\n")
        assert eventually(lambda: closed_by_server(over), timeout=0.5 + SLACK)
        assert eventually(lambda: closed_by_server(admitted), timeout=0.5 + SLACK)
        assert eventually(lambda: gw.connections() == 0)
        assert (gate_of(gw).admitted, gate_of(gw).refusing) == (0, 0)


def test_d_past_the_refusal_backlog_connections_are_closed_unanswered(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingress, "REFUSAL_BACKLOG", 1)
    with (
        guardline(sim, max_connections=1) as gw,
        connect(gw) as admitted,
        connect(gw) as refused,
    ):
        assert eventually(lambda: gw.connections() == 2)
        with connect(gw) as dropped:
            assert eventually(lambda: closed_by_server(dropped))
        refused.sendall(request("/v1/chat/completions", CHAT))
        assert read_response(refused).status == 503
        assert_works(admitted)


# (e) keep-alive ----------------------------------------------------------------------------


def test_e_keep_alive_reuse_works_and_a_later_slow_head_is_closed(
    sim: Running[Simulator],
) -> None:
    with guardline(sim, head_timeout=0.5) as gw, connect(gw) as sock:
        assert_works(sock)
        # Idle longer than head_timeout (but within uvicorn's 5 s keep-alive): the head
        # deadline starts with the next request's first byte.
        time.sleep(1.0)
        assert_works(sock)
        assert gw.connections() == 1
        sock.send(b"GET /v1/models HTTP/1.1\r\nx-slow: ")
        took = trickle_until_closed(sock, b"a", limit=0.5 + SLACK)
        assert took >= 0.3


# leaks, limits -----------------------------------------------------------------------------


def test_no_protocol_timer_or_count_outlives_its_connection(sim: Running[Simulator]) -> None:
    """Every connection's deadline is cancelled when it ends: a pending timer would keep
    its protocol (and transport) alive."""
    with guardline(sim, head_timeout=30, body_timeout=30, max_connections=2) as gw:
        refs: list[weakref.ref[Any]] = []
        with connect(gw) as served, connect(gw) as slow, connect(gw) as refused:
            slow.send(b"GET /v1/models HTTP/1.1\r\n")
            assert eventually(lambda: gw.connections() == 3)
            refs += [weakref.ref(protocol) for protocol in gw.server.server_state.connections]
            assert_works(served)
            refused.sendall(request("/v1/chat/completions", CHAT))
            assert read_response(refused).status == 503
        assert eventually(lambda: gw.connections() == 0)
        gate = gate_of(gw)
        assert (gate.admitted, gate.refusing) == (0, 0)

        def collected() -> bool:
            gw.call(_collect)
            return all(ref() is None for ref in refs)

        assert eventually(collected)


async def _collect() -> None:
    gc.collect()


def test_cap_is_lowered_to_what_the_descriptor_limit_fits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    resource = pytest.importorskip("resource")
    calls: list[tuple[int, int]] = []
    limits = {"soft": 1024, "hard": 1024}
    monkeypatch.setattr(resource, "getrlimit", lambda _: (limits["soft"], limits["hard"]))
    monkeypatch.setattr(resource, "setrlimit", lambda _, value: calls.append(value))

    needed = ingress.descriptors_needed(1024)
    with caplog.at_level(logging.WARNING, logger="guardline"):
        fits = ingress.fit_descriptors(1024)
    assert fits < 1024
    assert ingress.descriptors_needed(fits) <= 1024
    assert "ingress.max_connections=1024" in caplog.text
    assert calls == []  # the hard limit is the soft one: nothing to raise

    calls.clear()
    caplog.clear()
    limits["hard"] = 1 << 20
    assert ingress.fit_descriptors(1024) == 1024
    assert calls == [(needed, 1 << 20)]  # only as far as needed
    assert not caplog.text

    calls.clear()
    limits["soft"] = 1 << 16
    assert ingress.fit_descriptors(1024) == 1024
    assert calls == []  # never lowered
