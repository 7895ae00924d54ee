"""Real uvicorn servers on loopback port 0, each in its own thread and event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from starlette.types import ASGIApp

from guardline.detectors.base import Detector
from guardline.detectors.guardrails import Guardrails
from guardline.detectors.registry import build_detectors
from guardline.exporters.telemetry import Telemetry
from guardline.proxy.app import create_app
from guardline.proxy.context import ProxyContext
from guardline.server import bind, bound_url, make_server
from guardline.settings import (
    DetectorsSettings,
    IngressSettings,
    Settings,
    SimulatorSettings,
    load_settings,
)
from guardline.simulator import Simulator, create_simulator

App = TypeVar("App", bound=ASGIApp)
T = TypeVar("T")


class Running(Generic[App]):
    """A started server. ``call`` runs a coroutine on the server's own loop."""

    def __init__(self, app: App, url: str, server: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.url = url
        self.server = server
        self.loop = loop
        self.port = int(url.rsplit(":", 1)[1])

    def call(self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(timeout)

    def connections(self) -> int:
        """Client connections the server holds open right now (uvicorn's own count)."""
        return len(self.server.server_state.connections)


@contextmanager
def running(
    app: App,
    host: str = "127.0.0.1",
    ingress: IngressSettings | None = None,
    **config: Any,
) -> Iterator[Running[App]]:
    """``config``: uvicorn Config attributes, e.g. ssl_certfile or timeout_keep_alive;
    ``ingress``: the client-connection limits (default: their defaults)."""
    sock = bind(host, 0)
    server = make_server(app, log_level="warning", ingress=ingress)
    for key, value in config.items():
        setattr(server.config, key, value)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(server.serve([sock]),), daemon=True
    )
    thread.start()
    for _ in range(500):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError("server did not start")
    scheme = "https" if config.get("ssl_certfile") else "http"
    url = bound_url(sock).replace("http", scheme, 1)
    try:
        yield Running(app, url, server, loop)
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()
        sock.close()


@contextmanager
def simulator(
    config: dict[str, Any] | None = None, **settings: Any
) -> Iterator[Running[Simulator]]:
    base: dict[str, Any] = {"ttft_ms": 0, "token_delay_ms": 0}
    app = create_simulator(SimulatorSettings(**{**base, **settings}))
    with running(app, **(config or {})) as sim:
        yield sim


def proxy_settings(
    upstream_url: str, upstream: dict[str, Any] | None = None, **overrides: Any
) -> Settings:
    """Settings sending both families to ``upstream_url``; ``upstream`` adds keys to both."""
    upstreams = {
        name: {"provider": name, "base_url": upstream_url, **(upstream or {})}
        for name in ("openai", "anthropic")
    }
    return load_settings(overrides={"upstreams": upstreams, **overrides})


_DETECTORS: dict[str, Detector] = {}


def default_detectors() -> dict[str, Detector]:
    """The default detectors, built once per test session: they are immutable once
    constructed and take about a second to load (presidio, spaCy, the linear model)."""
    if not _DETECTORS:
        _DETECTORS.update(build_detectors(DetectorsSettings()))
    return _DETECTORS


@contextmanager
def proxy(
    settings: Settings,
    detectors: Mapping[str, Detector] | None = None,
    telemetry: Telemetry | None = None,
) -> Iterator[Running[Any]]:
    """Guardline with ``settings``; detectors default to the shared default set when the
    settings' detector section is the default one."""
    if detectors is None and settings.detectors == DetectorsSettings():
        detectors = default_detectors()
    guardrails = Guardrails(settings, detectors)
    app = create_app(settings, guardrails=guardrails, telemetry=telemetry)
    with running(app, ingress=settings.ingress) as server:
        yield server


def context_of(server: Running[Any]) -> ProxyContext:
    context: ProxyContext = server.app.state.guardline
    return context


def as_if_usage_not_asked(stream: bytes) -> bytes:
    """An OpenAI stream as it is without ``include_usage``: no usage-only chunk, and no
    ``"usage":null`` in the other chunks (what Guardline delivers to a client that did not
    ask, after asking the upstream on its behalf)."""
    out = []
    for event in stream.split(b"\n\n")[:-1]:
        data = event.removeprefix(b"data: ")
        if data != b"[DONE]":
            parsed = json.loads(data)
            if parsed.get("usage") and not parsed["choices"]:
                continue
        out.append(event.replace(b',"usage":null', b"") + b"\n\n")
    return b"".join(out)
