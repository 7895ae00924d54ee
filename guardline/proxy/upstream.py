"""Named upstreams and the router that picks one for a request."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from guardline.errors import RouteNotFoundError, StartupError
from guardline.proxy.adapters import ADAPTERS
from guardline.proxy.pool import ConnectionPool
from guardline.proxy.transport import Header, Transport
from guardline.settings import Provider, RouteSettings, UpstreamSettings, env_secret


class Upstream:
    """One configured upstream: its transport, the headers it adds, where paths land."""

    def __init__(self, name: str, settings: UpstreamSettings) -> None:
        self.name = name
        self.provider: Provider = settings.provider
        self.settings = settings
        parts = urlsplit(settings.base_url)
        self.host = parts.hostname or ""
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        base_path = parts.path.rstrip("/").encode()
        # A base ending in /v1 replaces Guardline's /v1; any other base prefixes it.
        self._prefix = base_path[:-3] if base_path.endswith(b"/v1") else base_path
        self.added_headers: list[Header] = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in settings.headers.items()
        ]
        self.auth: Header | None = None
        if settings.api_key_env:
            key = env_secret(settings.api_key_env)
            if key is None:
                raise StartupError(
                    f"upstreams.{name}.api_key_env: environment variable "
                    f"{settings.api_key_env} is not set; export it or remove api_key_env"
                )
            self.auth = ADAPTERS[self.provider].auth_header(key)
        self._transport: Transport | None = None

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise RuntimeError(f"upstream {self.name!r} is not started (app lifespan not run)")
        return self._transport

    def start(self, transport: Transport | None = None) -> None:
        """Create the pooled transport; must run inside the event loop (app lifespan)."""
        if transport is None:
            tls_context = None
            if self.tls:
                tls_context = ssl.create_default_context(
                    cafile=str(self.settings.ca_bundle) if self.settings.ca_bundle else None
                )
            transport = ConnectionPool(
                self.host,
                self.port,
                tls=tls_context,
                timeout=self.settings.timeout,
                max_connections=self.settings.max_connections,
                keepalive_expiry=self.settings.keepalive_expiry,
            )
        self._transport = transport

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()

    def target(self, raw_path: bytes, query: bytes) -> bytes:
        """The request target on this upstream for a validated ``/v1/...`` path."""
        target = self._prefix + raw_path
        return target + b"?" + query if query else target


class Router:
    """First matching route wins: provider family, then optional path and model prefixes."""

    def __init__(self, routes: Sequence[RouteSettings], upstreams: Mapping[str, Upstream]) -> None:
        self._routes = [(r, upstreams[r.upstream]) for r in routes]

    def select(self, provider: Provider, path: str, model: str | None) -> Upstream:
        for route, upstream in self._routes:
            if route.provider != provider:
                continue
            if route.paths and not path.startswith(route.paths):
                continue
            if route.model_prefix and (model is None or not model.startswith(route.model_prefix)):
                continue
            return upstream
        if model is not None:
            raise RouteNotFoundError(
                f"The model `{model}` does not exist or is not routed by this proxy.",
                code="model_not_found",
            )
        raise RouteNotFoundError(f"No upstream is configured for {provider} calls to {path}.")
