"""Running ASGI apps under uvicorn on sockets Guardline binds itself.

Binding first turns "address in use" into one clear line, lets port 0 pick a free port
whose number we can print, and lets ``demo`` run the proxy and the simulator in one loop
(so signals are handled here, once, for every server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Coroutine, Generator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from guardline import __version__
from guardline.errors import StartupError
from guardline.proxy.ingress import protocol_class
from guardline.settings import IngressSettings

log = logging.getLogger("guardline")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # serve_all() installs one handler for every server in the loop


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (choose another --port)" if exc.errno == 98 else ""
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    sock.set_inheritable(True)
    return sock


def bound_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(sock: socket.socket) -> None:
    """The startup lines people and scripts look for (the URL of a port 0 bind)."""
    url = bound_url(sock)
    log.info("guardline %s listening on %s", __version__, url)
    log.info("OpenAI SDK base_url=%s/v1 · Anthropic SDK base_url=%s", url, url)


def make_server(
    app: ASGIApp, *, log_level: str = "info", ingress: IngressSettings | None = None
) -> uvicorn.Server:
    """``ingress``: the client-connection limits (head and body deadlines, the connection
    cap; ``guardline.proxy.ingress``); unset, their defaults."""
    config = uvicorn.Config(
        app,
        http=protocol_class(ingress or IngressSettings()),
        ws="none",
        lifespan="on",
        log_config=None,
        # uvicorn's info lines repeat what Guardline prints; keep its warnings and errors.
        log_level=log_level if log_level == "debug" else "warning",
        access_log=False,
        server_header=False,
        date_header=False,
        # Guardline never trusts X-Forwarded-* (it routes by config only); skip the rewrite.
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )
    return _Server(config)


async def serve_all(servers: list[tuple[uvicorn.Server, socket.socket]]) -> None:
    """Serve until SIGINT/SIGTERM. Only a repeated SIGINT (Ctrl+C twice) forces exit: a
    duplicate SIGTERM is normal (GNU make forwards it to its children, and `timeout` or
    Kubernetes may signal the whole process group) and must not cut graceful shutdown short."""
    loop = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        for server, _ in servers:
            if server.should_exit and sig == signal.SIGINT:
                server.force_exit = True
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)
