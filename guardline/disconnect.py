"""Cancelling a request's work when its client goes away.

ASGI servers report a disconnect only through ``receive()``; uvicorn's ``send()`` is then
silently a no-op, so a handler that only sends would stream into the void (and keep its
upstream call open) until the upstream finished. One watcher task per request listens
instead and cancels the handler's task.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive


class DisconnectWatch:
    __slots__ = ("_receive", "_task", "_watcher", "disconnected", "finished")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.disconnected = False
        self.finished = False
        """Set before the final body message: from then on, a disconnect is the normal end."""

    def start(self) -> None:
        """Start watching; call once the request body has been read."""
        if self._watcher is None:
            self._task = asyncio.current_task()
            self._watcher = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()

    def absorb(self, exc: asyncio.CancelledError) -> None:
        """Swallow a cancellation this watch caused; re-raise any other."""
        if not self.disconnected:
            raise exc
        if self._task is not None:
            self._task.uncancel()

    async def _run(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if not self.finished and self._task is not None:
                    self.disconnected = True
                    self._task.cancel()
                return
