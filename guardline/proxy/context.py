"""What the proxy shares across requests: upstreams, router, access keys, observers."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from guardline.detectors.guardrails import Guardrails
from guardline.exchange import Exchange
from guardline.exporters.cost import PriceTable
from guardline.exporters.samples import Samples
from guardline.exporters.telemetry import NullTelemetry, OTelTelemetry, Telemetry
from guardline.proxy.access import AccessKeys
from guardline.proxy.conversation import Conversations
from guardline.proxy.signing import RequestSigner
from guardline.proxy.transport import Transport
from guardline.proxy.upstream import Router, Upstream
from guardline.settings import Settings

log = logging.getLogger("guardline.proxy")

Observer = Callable[[Exchange], None]


class ProxyContext:
    def __init__(
        self,
        settings: Settings,
        guardrails: Guardrails | None = None,
        telemetry: Telemetry | None = None,
        samples: Samples | None = None,
    ) -> None:
        self.settings = settings
        self.guardrails = guardrails or Guardrails(settings)
        if telemetry is None:
            telemetry = (
                OTelTelemetry(settings.telemetry) if settings.telemetry.enabled else NullTelemetry()
            )
        self.telemetry = telemetry
        telemetry.detectors(
            {name: d.backend for name, d in self.guardrails.scanner.detectors.items()}
        )
        self.samples = samples or Samples(
            settings.samples,
            self.guardrails,
            prices=getattr(telemetry, "prices", None)
            or PriceTable.load(settings.telemetry.prices_file),
        )
        telemetry.samples(self.samples.stats)
        self.signer = RequestSigner.from_settings(settings.feedback)
        feedback = settings.feedback
        self.conversations = Conversations(
            window=feedback.regeneration_window, memory=feedback.regeneration_memory
        )
        self.inject_usage = telemetry.enabled and settings.telemetry.inject_stream_usage
        self.upstreams = {name: Upstream(name, s) for name, s in settings.upstreams.items()}
        self.router = Router(settings.resolved_routes(), self.upstreams)
        self.access = AccessKeys(settings.access_keys)
        self.max_body_bytes = settings.max_body_bytes
        self.inflight = 0
        self.started = False
        self.observers: list[Observer] = []
        if log.isEnabledFor(logging.DEBUG):
            self.observers.append(_log_exchange)

    def start(self, transports: Mapping[str, Transport] | None = None) -> None:
        for name, upstream in self.upstreams.items():
            upstream.start((transports or {}).get(name))
        self.started = True

    async def close(self) -> None:
        self.started = False
        for upstream in self.upstreams.values():
            await upstream.close()
        self.guardrails.close()
        self.samples.close()  # before telemetry: its last export counts what they did
        self.telemetry.shutdown()

    def record(self, exchange: Exchange, content: tuple[str, str] | None = None) -> None:
        """Hand a finished exchange to telemetry and every observer; neither ever breaks
        a request."""
        try:
            self.telemetry.finish(exchange, content)
        except Exception:
            log.exception("telemetry failed to record request %s", exchange.request_id)
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
            "detectors": self.guardrails.health(),
            "telemetry": self.telemetry.health(),
            "feedback": {"shared_secret": not self.signer.ephemeral},
            "samples": self.samples.health(),
            "worker": {"pid": os.getpid()},
        }


def _log_exchange(exchange: Exchange) -> None:
    """One access-log line per exchange at debug level: never content, headers or keys."""
    took = (exchange.done or exchange.received) - exchange.received
    log.debug(
        "%s %s %s status=%s outcome=%s model=%s upstream=%s stream=%s took_ms=%.1f request_id=%s"
        " client_request_id=%s",
        exchange.method,
        exchange.path,
        exchange.endpoint.value,
        exchange.status,
        exchange.outcome.value,
        exchange.model,
        exchange.upstream,
        exchange.stream,
        took * 1000,
        exchange.request_id,
        exchange.client_request_id or "-",
    )
