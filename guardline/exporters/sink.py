"""Where sample records go: the ``Sink`` protocol, and the in-memory fake beside it.

A sink never blocks the request path and never raises into it: ``submit`` queues (or
counts a drop, loudly), ``flush`` waits for what was queued, ``close`` flushes and stops.
JSON Lines datasets and Kafka are sinks; third parties register more under the
``guardline.sinks`` entry-point group.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class Sink(Protocol):
    name: str

    def submit(self, record: dict[str, Any]) -> bool:
        """Queue one record; False when it could not be taken (counted, never raised)."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        ...

    def close(self) -> None: ...

    def health(self) -> dict[str, Any]: ...

    def counts(self) -> tuple[int, dict[str, int]]:
        """Records made durable so far, and records dropped by reason (for metrics)."""
        ...


class FlushMarker:
    """Put in a sink's queue behind the records a ``flush`` waits for; its writer sets
    ``done`` once they are written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


STOP = object()
"""Put in a sink's queue by ``close``: its writer stops after what came before."""


class InMemorySink:
    """Keeps every record (tests)."""

    name = "memory"

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.closed = False
        self._lock = threading.Lock()

    def submit(self, record: dict[str, Any]) -> bool:
        with self._lock:
            if self.closed:
                return False
            self.records.append(record)
        return True

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def health(self) -> dict[str, Any]:
        return {"records": len(self.records), "closed": self.closed}

    def counts(self) -> tuple[int, dict[str, int]]:
        return len(self.records), {}
