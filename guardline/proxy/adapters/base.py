"""The provider adapter protocol: where everything provider-specific is declared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson

from guardline.errors import GuardlineError, UpstreamProtocolError
from guardline.exchange import Endpoint
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider


@dataclass(slots=True)
class StreamState:
    """What an adapter remembers across the events of one stream."""

    terminal: bool = False
    sequence_number: int = -1
    last: dict[str, Any] | None = None
    """The parsed data of the last event inspected (None for comments and [DONE])."""


class Adapter(Protocol):
    provider: Provider
    endpoints: ClassVar[dict[tuple[str, str], Endpoint]]
    """(method, path) of the endpoints this provider scans."""

    def auth_header(self, key: str) -> tuple[bytes, bytes]:
        """The header that carries an injected upstream key."""
        ...

    def error_body(self, err: GuardlineError, request_id: str) -> bytes: ...

    def stream_error_event(
        self, err: GuardlineError, request_id: str, endpoint: Endpoint, state: StreamState
    ) -> bytes: ...

    def inspect_event(self, endpoint: Endpoint, event: SSEEvent, state: StreamState) -> None:
        """Parse and check one upstream event, updating ``state``.

        Raises UpstreamProtocolError for an event the SDKs could not parse.
        """
        ...


def json_object(data: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(
            "upstream sent a malformed stream event (invalid JSON)"
        ) from None
    if not isinstance(parsed, dict):
        raise UpstreamProtocolError("upstream sent a malformed stream event (not a JSON object)")
    return parsed


def endpoint_for(adapter: Adapter, method: str, path: str) -> Endpoint:
    found = adapter.endpoints.get((method, path))
    if found is not None:
        return found
    if method == "GET" and path.startswith("/v1/models/"):
        return Endpoint.MODELS
    return Endpoint.PASSTHROUGH
