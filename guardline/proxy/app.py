"""The application factory."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from guardline import __version__
from guardline.detectors.guardrails import Guardrails
from guardline.errors import RouteNotFoundError
from guardline.exporters.telemetry import Telemetry
from guardline.proxy.adapters import ADAPTERS, provider_for
from guardline.proxy.context import ProxyContext
from guardline.proxy.endpoint import ProxyEndpoint, send_error
from guardline.proxy.feedback import FeedbackEndpoint, FeedbackMemory
from guardline.proxy.headers import new_request_id
from guardline.proxy.transport import Transport
from guardline.settings import Settings

log = logging.getLogger("guardline")


def create_app(
    settings: Settings,
    *,
    transports: Mapping[str, Transport] | None = None,
    guardrails: Guardrails | None = None,
    telemetry: Telemetry | None = None,
) -> FastAPI:
    """Build the proxy app. ``transports`` replaces upstream pools by name, ``guardrails``
    the detectors built from settings and ``telemetry`` the exporters (tests)."""
    context = ProxyContext(settings, guardrails, telemetry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        context.start(transports)
        # Detector libraries leave ~500k long-lived objects (presidio imports transformers
        # and torch where installed); a full collection over them took 260 ms here and
        # stalled every request in flight. Frozen objects are never scanned again.
        gc.collect()
        gc.freeze()
        for name, upstream in context.upstreams.items():
            log.info(
                "upstream %s: %s %s (%s)",
                name,
                upstream.provider,
                upstream.settings.base_url,
                "key injected from $" + upstream.settings.api_key_env
                if upstream.settings.api_key_env
                else "client key passes through",
            )
        if context.access.enabled:
            log.info("proxy access keys: required (%d configured)", len(settings.access_keys))
        _log_telemetry(context)
        log.info("%s", context.samples.describe())
        try:
            yield
        finally:
            await context.close()

    app = FastAPI(
        title="Guardline",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        # Guardline records its own GenAI telemetry; FastAPI's generic HTTP spans would
        # duplicate it (and carry URLs) whenever a global OTel provider is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.guardline = context

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        """Liveness, plus what is active: upstream pools, requests in flight."""
        return {"version": __version__, **context.health()}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ready = context.started
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus text exposition of every Guardline metric (OpenTelemetry's reader)."""
        page = context.telemetry.scrape()
        if page is None:
            return PlainTextResponse("metrics are switched off (telemetry.prometheus)\n", 404)
        return Response(page, media_type=_PROMETHEUS_TEXT)

    feedback = FeedbackEndpoint(
        context.signer,
        context.telemetry.feedback,
        samples=context.samples.feedback if context.samples.active else None,
        max_body_bytes=_FEEDBACK_MAX_BYTES,
        memory=FeedbackMemory(
            settings.feedback.memory, max_age=context.signer.max_age, clock=context.signer.clock
        ),
    )
    app.router.routes.append(Route("/v1/feedback", feedback, methods=None))
    app.router.routes.append(Route("/v1/{path:path}", ProxyEndpoint(context)))
    app.router.routes.append(Route("/{path:path}", NotFoundEndpoint()))
    return app


_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
_FEEDBACK_MAX_BYTES = 64 * 1024


def _log_telemetry(context: ProxyContext) -> None:
    health = context.telemetry.health()
    if not health.get("enabled"):
        log.info("telemetry: off")
        return
    log.info(
        "telemetry: metrics via %s; traces %s; prices as of %s",
        ", ".join(health["exporters"]) or "nothing",
        "exported" if health["traces"] else "off (no OTLP endpoint)",
        health["prices_as_of"],
    )
    if context.signer.ephemeral:
        log.warning(
            "feedback: $%s is not set, so request ids are signed with a random per-process "
            "secret; feedback only reaches the instance that served the call",
            context.settings.feedback.secret_env,
        )


class NotFoundEndpoint:
    """Unknown routes get a 404 in the format of the SDK that called."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["headers"]
        adapter = ADAPTERS[provider_for(scope["path"], headers)]
        rid = new_request_id()
        err = RouteNotFoundError(
            f"Unknown route {scope['method']} {scope['path']}; Guardline proxies /v1/... paths.",
            code="route_not_found",
        )
        await send_error(send, adapter, err, rid)
