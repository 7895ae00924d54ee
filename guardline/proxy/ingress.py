"""Client connections under limits: a deadline for the head, one for the body, and a cap.

uvicorn times out only *idle* keep-alive connections, and it re-arms that timer on every
byte: a client sending its request head one byte at a time (or nothing at all) holds a
descriptor for as long as it likes. :func:`protocol_class` gives uvicorn's httptools
protocol with three more rules (``ingress`` settings):

* A request's head must arrive in full within ``head_timeout`` seconds, counted from the
  connection's opening or, on a kept-alive connection, from the first byte of the next
  request (the idle time before that byte is uvicorn's ``timeout_keep_alive``).
* Its body must arrive in full within ``body_timeout`` seconds of the end of the head (a
  pipelined request's body: of the moment its turn comes, as uvicorn reads no further
  until then).
* At most ``max_connections`` connections are admitted at once. The next ones, up to
  ``REFUSAL_BACKLOG`` at a time, are answered 503 ``server_busy`` in the provider's own
  error format once their request has arrived (they are under both deadlines too), with
  ``retry-after`` and ``connection: close``; beyond those, a connection is closed as soon
  as it is accepted. The descriptors held are bounded either way.

A connection past a deadline is aborted (unsent bytes dropped): a request being served
sees ``http.disconnect``, which the proxy records as a client disconnect.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from guardline.errors import ServerBusyError
from guardline.proxy.adapters import ADAPTERS, provider_for
from guardline.proxy.headers import REQUEST_ID, new_request_id
from guardline.settings import IngressSettings

log = logging.getLogger("guardline")

REFUSAL_BACKLOG = 128
"""Connections over the cap that may wait for their request to be answered 503 at once;
past them a new connection is closed unanswered (so a flood cannot exhaust descriptors)."""
RETRY_AFTER_SECONDS = 1
"""The ``retry-after`` of the 503 (the SDKs honour it)."""
RESERVED_DESCRIPTORS = 128
"""Descriptors kept for everything but connections: listening sockets, log and sample
files, Kafka and OpenTelemetry exporters, model files being loaded."""
_WARN_EVERY = 60.0
"""Seconds between two warnings that connections are being refused."""


class Admission(enum.Enum):
    ADMITTED = "admitted"
    REFUSED = "refused"
    """Over the cap: answered 503 when its request has arrived."""
    DROPPED = "dropped"
    """Over the cap and the refusal backlog: closed at once."""


@dataclass
class Gate:
    """The limits of one server and its connection counts (its protocol class holds it)."""

    head_timeout: float
    body_timeout: float
    max_connections: int
    admitted: int = 0
    refusing: int = 0
    refused_total: int = 0
    """Connections answered 503 or dropped since the server started."""
    _warned_at: float = field(default=-math.inf, repr=False)
    _refused_at_warning: int = field(default=0, repr=False)

    def enter(self) -> Admission:
        if self.admitted < self.max_connections:
            self.admitted += 1
            return Admission.ADMITTED
        self.refused_total += 1
        self._warn()
        if self.refusing < REFUSAL_BACKLOG:
            self.refusing += 1
            return Admission.REFUSED
        return Admission.DROPPED

    def leave(self, admission: Admission) -> None:
        if admission is Admission.ADMITTED:
            self.admitted -= 1
        elif admission is Admission.REFUSED:
            self.refusing -= 1

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at < _WARN_EVERY:
            return
        log.warning(
            "at ingress.max_connections=%d: new connections are answered 503 server_busy "
            "(%d since the last warning)",
            self.max_connections,
            self.refused_total - self._refused_at_warning,
        )
        self._warned_at = now
        self._refused_at_warning = self.refused_total


class IngressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a :class:`Gate` (``protocol_class`` sets it)."""

    gate: ClassVar[Gate]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._admission: Admission | None = None
        # The head deadline or the body deadline: never both (a body ends before the next
        # head begins).
        self._deadline: asyncio.TimerHandle | None = None

    # connection ---------------------------------------------------------------------

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self._admission = self.gate.enter()
        if self._admission is Admission.DROPPED:
            transport.abort()
            return
        if self._admission is Admission.REFUSED:
            self.app = _refuse
        self._arm(self.gate.head_timeout, "head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._admission is not None:
            self.gate.leave(self._admission)
            self._admission = None
        super().connection_lost(exc)

    # parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a kept-alive connection's next request
            self._arm(self.gate.head_timeout, "head")

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        if self.cycle is not None and not self._queued(self.cycle):
            self._arm(self.gate.body_timeout, "body")

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request whose turn came now: its body is read from here on.
        cycle = self.cycle
        if (
            self._deadline is None
            and cycle is not None
            and cycle.more_body
            and not cycle.response_complete
            and not self._queued(cycle)
            and not self.transport.is_closing()
        ):
            self._arm(self.gate.body_timeout, "body")

    # deadlines ----------------------------------------------------------------------

    def _queued(self, cycle: RequestResponseCycle) -> bool:
        return any(queued is cycle for queued, _ in self.pipeline)

    def _arm(self, delay: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, self._expired, what, delay)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, what: str, delay: float) -> None:
        self._deadline = None
        if self.client is not None and not self.transport.is_closing():
            log.debug("closed %s:%d: request %s not in after %g s", *self.client, what, delay)
        # Closing too: a close still flushing (uvicorn's 400 to a client that does not
        # read) ends here.
        self.transport.abort()


async def _refuse(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """The application of a connection over the cap: 503 in the provider's format, once
    the request is in (closing on unread bytes would reset the connection, and the client
    could lose the answer)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client left
        more = message["more_body"]
    headers = list(scope["headers"])
    rid = new_request_id()
    body = ADAPTERS[provider_for(scope["path"], headers)].error_body(ServerBusyError(), rid)
    await send(
        {
            "type": "http.response.start",
            "status": ServerBusyError.status,
            "headers": [
                (b"content-type", b"application/json"),
                (REQUEST_ID, rid.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def protocol_class(settings: IngressSettings) -> type[IngressProtocol]:
    """A protocol class for one server (``uvicorn.Config(http=...)``), with its own gate.
    Raises the soft open-file limit as far as the cap needs; lowers the cap, with a
    warning, when the process cannot open that many files."""
    gate = Gate(
        head_timeout=settings.head_timeout,
        body_timeout=settings.body_timeout,
        max_connections=fit_descriptors(settings.max_connections),
    )

    class Protocol(IngressProtocol):
        pass

    Protocol.gate = gate
    return Protocol


def descriptors_needed(max_connections: int) -> int:
    """Open files for ``max_connections`` clients: each may hold an upstream connection
    too, plus the refusal backlog and the reserve."""
    return 2 * max_connections + REFUSAL_BACKLOG + RESERVED_DESCRIPTORS


def fit_descriptors(max_connections: int) -> int:
    """``max_connections``, or what fits in the open-file limit once the soft limit is
    raised (never past the hard one, never lowered)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:  # pragma: no cover - Windows
        return max_connections
    needed = descriptors_needed(max_connections)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (OSError, ValueError):
                pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return max_connections
    fits = max(1, (soft - REFUSAL_BACKLOG - RESERVED_DESCRIPTORS) // 2)
    log.warning(
        "ingress.max_connections=%d needs about %d open files (a client and an upstream "
        "connection each) but this process may open %d (ulimit -n; hard limit %s): serving "
        "at most %d connections. Raise the limit (systemd LimitNOFILE=, docker --ulimit "
        "nofile=) or lower ingress.max_connections.",
        max_connections,
        needed,
        soft,
        "unlimited" if hard == resource.RLIM_INFINITY else hard,
        fits,
    )
    return fits
