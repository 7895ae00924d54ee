"""Routing by family, path and model prefix; clients never choose the upstream host."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from guardline.proxy.upstream import Upstream
from guardline.settings import UpstreamSettings
from guardline.simulator import Simulator
from tests.conftest import openai_client
from tests.servers import Running, proxy, proxy_settings, simulator

MSG = [{"role": "user", "content": "hi"}]


def test_routes_by_model_prefix_and_path(sim: Running[Simulator]) -> None:
    with simulator() as local:
        upstreams = {
            "openai": {"provider": "openai", "base_url": sim.url},
            "anthropic": {"provider": "anthropic", "base_url": sim.url},
            "local": {"provider": "openai", "base_url": local.url + "/v1"},
        }
        routes = [
            {"provider": "openai", "upstream": "local", "model_prefix": ["llama", "qwen"]},
            {"provider": "openai", "upstream": "local", "paths": "/v1/embeddings"},
            {"provider": "openai", "upstream": "openai"},
            {"provider": "anthropic", "upstream": "anthropic"},
        ]
        with (
            proxy(proxy_settings(sim.url, routes=routes, upstreams=upstreams)) as gw,
            openai_client(gw.url) as client,
        ):
            client.chat.completions.create(model="llama-3.1-8b", messages=MSG)  # type: ignore[arg-type]
            client.chat.completions.create(model="qwen2.5", messages=MSG)  # type: ignore[arg-type]
            client.chat.completions.create(model="gpt-4o", messages=MSG)  # type: ignore[arg-type]
            client.embeddings.create(model="text-embedding-3-small", input="x")
            client.models.list()
        local_calls = [(r.path, (r.body or {}).get("model")) for r in local.app.recorder.records]
        main_calls = [(r.path, (r.body or {}).get("model")) for r in sim.app.recorder.records]
    assert local_calls == [
        ("/v1/chat/completions", "llama-3.1-8b"),
        ("/v1/chat/completions", "qwen2.5"),
        ("/v1/embeddings", "text-embedding-3-small"),
    ]
    assert main_calls == [("/v1/chat/completions", "gpt-4o"), ("/v1/models", None)]


@pytest.mark.parametrize(
    ("base_url", "target"),
    [
        ("https://api.openai.com/v1", b"/v1/chat/completions?x=1"),
        ("https://api.anthropic.com", b"/v1/chat/completions?x=1"),
        ("https://api.groq.com/openai/v1", b"/openai/v1/chat/completions?x=1"),
        ("http://host:8000/proxy/", b"/proxy/v1/chat/completions?x=1"),
    ],
)
def test_base_url_joins_paths(base_url: str, target: bytes) -> None:
    upstream = Upstream("u", UpstreamSettings(provider="openai", base_url=base_url))
    assert upstream.target(b"/v1/chat/completions", b"x=1") == target


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        sock.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        return data


def test_client_cannot_choose_the_upstream_host(sim: Running[Simulator], gw: Running[Any]) -> None:
    """Absolute-form targets, Host and X-Forwarded-Host headers never move the call off the
    configured upstream: every request lands on `sim`, none on `evil`."""
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    with simulator() as evil:
        attempts = [
            b"POST http://127.0.0.1:%d/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            % (evil.port, evil.port),
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % evil.port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Forwarded-Host: 127.0.0.1:%d\r\n"
            % evil.port,
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nForwarded: host=127.0.0.1:%d\r\n"
            % evil.port,
        ]
        for head in attempts:
            request = (
                head
                + b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(body)
                + body
            )
            assert _raw(gw.port, request).startswith(b"HTTP/1.1 200")
        assert evil.app.recorder.total == 0
    assert sim.app.recorder.total == len(attempts)
    assert {r.headers["host"] for r in sim.app.recorder.records} == {f"127.0.0.1:{sim.port}"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1//chat/completions",
        "/v1/chat/completions/",
        "/v1/Chat/Completions",
        "/v1/chat%2Fcompletions",
        "/v1/chat%2fcompletions",
        "/v1/./chat/completions",
        "/v1/x/../chat/completions",
        "/v1/%2e%2e/admin",
        "/v1/models%00",
        "/v1\\chat\\completions",
    ],
)
def test_non_canonical_paths_are_refused(
    sim: Running[Simulator], gw: Running[Any], path: str
) -> None:
    """A spelling the upstream might normalise to a scanned endpoint must not slip past the
    proxy's endpoint classification as an unscanned pass-through."""
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    response = _raw(gw.port, request)
    assert response.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), response[:200]
    assert sim.app.recorder.total == 0


def test_passthrough_streams_request_body_and_keeps_method(
    sim: Running[Simulator], gw: Running[Any]
) -> None:
    """Unknown /v1 paths are forwarded unscanned with method, query and body intact."""

    def parts() -> Any:
        yield b'{"purpose": '
        yield b'"fine-tune"}'

    response = httpx.post(
        gw.url + "/v1/files?limit=3", content=parts(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 404  # the simulator does not serve /v1/files
    record = sim.app.recorder.records[-1]
    assert (record.method, record.path, record.query, record.body) == (
        "POST",
        "/v1/files",
        "limit=3",
        {"purpose": "fine-tune"},
    )
    assert httpx.delete(gw.url + "/v1/files/file-1").status_code == 404
    assert sim.app.recorder.records[-1].method == "DELETE"
