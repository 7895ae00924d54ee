"""What the proxy shares across requests: upstreams, router, access keys, observers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from guardline.exchange import Exchange
from guardline.proxy.access import AccessKeys
from guardline.proxy.transport import Transport
from guardline.proxy.upstream import Router, Upstream
from guardline.settings import Settings

log = logging.getLogger("guardline.proxy")

Observer = Callable[[Exchange], None]


class ProxyContext:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.upstreams = {name: Upstream(name, s) for name, s in settings.upstreams.items()}
        self.router = Router(settings.resolved_routes(), self.upstreams)
        self.access = AccessKeys(settings.access_keys)
        self.max_body_bytes = settings.max_body_bytes
        self.inflight = 0
        self.started = False
        self.observers: list[Observer] = []

    def start(self, transports: Mapping[str, Transport] | None = None) -> None:
        for name, upstream in self.upstreams.items():
            upstream.start((transports or {}).get(name))
        self.started = True

    async def close(self) -> None:
        self.started = False
        for upstream in self.upstreams.values():
            await upstream.close()

    def record(self, exchange: Exchange) -> None:
        """Hand a finished exchange to every observer; an observer never breaks a request."""
        for observer in self.observers:
            try:
                observer(exchange)
            except Exception:
                log.exception("exchange observer %r failed", observer)

    def health(self) -> dict[str, Any]:
        upstreams = {}
        for name, upstream in self.upstreams.items():
            entry: dict[str, Any] = {"provider": upstream.provider, "host": upstream.host}
            if self.started:
                stats = upstream.transport.stats()
                entry.update(open=stats.open, idle=stats.idle, active=stats.active)
            upstreams[name] = entry
        return {
            "status": "ok" if self.started else "starting",
            "inflight": self.inflight,
            "access_keys": self.access.enabled,
            "upstreams": upstreams,
        }
