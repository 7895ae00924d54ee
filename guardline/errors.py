"""The one exception tree of Guardline.

    GuardlineError
    ├── ConfigError                 bad settings; stops startup with the key and the fix
    ├── StartupError                cannot listen, missing secret env var, ...
    ├── RequestError                the client's request is at fault (4xx, provider-shaped)
    │   ├── AuthenticationError     401  missing or wrong proxy access key
    │   ├── MalformedRequestError   400  body is not a JSON object / not UTF-8
    │   ├── BodyTooLargeError       413  body over ``max_body_bytes``
    │   ├── PermissionDeniedError   403  a forged or expired signed request id (feedback)
    │   ├── RouteNotFoundError      404  unknown path, or no route for the model
    │   └── GuardrailBlockedError   400  a guard-mode policy blocked the request or response
    ├── GuardrailError              503  a guard-mode detector failed: fail closed
    ├── ServerBusyError             503  over ``ingress.max_connections``: shed at the door
    └── UpstreamError               the upstream failed us (5xx, provider-shaped)
        ├── UpstreamTimeoutError    504  connect or read timed out
        ├── UpstreamConnectError    502  connection refused / reset / TLS failure
        ├── UpstreamProtocolError   502  malformed or truncated response or SSE stream
        └── UpstreamBusyError       503  connection pool exhausted (pool timeout)

Upstream HTTP error *responses* (4xx/5xx with a body) are not exceptions: they pass
through unchanged. Transport failures become ``UpstreamError`` at one boundary, the
upstream transport (``guardline.proxy.transport``). Provider adapters turn any
``GuardlineError`` into the provider's own error body or stream error event.
"""

from __future__ import annotations


class GuardlineError(Exception):
    """Base of every error Guardline raises on purpose."""

    status: int = 500
    code: str = "guardline_error"
    # Provider-facing error type names (OpenAI ``error.type``, Anthropic ``error.type``).
    openai_type: str = "server_error"
    anthropic_type: str = "api_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(GuardlineError):
    code = "config_error"


class StartupError(GuardlineError):
    code = "startup_error"


class RequestError(GuardlineError):
    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class AuthenticationError(RequestError):
    status = 401
    code = "invalid_api_key"
    anthropic_type = "authentication_error"


class MalformedRequestError(RequestError):
    status = 400
    code = "invalid_json"


class BodyTooLargeError(RequestError):
    status = 413
    code = "request_too_large"
    anthropic_type = "request_too_large"


class PermissionDeniedError(RequestError):
    status = 403
    code = "permission_denied"
    anthropic_type = "permission_error"


class RouteNotFoundError(RequestError):
    status = 404
    code = "not_found"
    anthropic_type = "not_found_error"


class GuardrailBlockedError(RequestError):
    """Names the detector and category; never the offending text."""

    status = 400
    code = "guardrail_blocked"

    def __init__(self, detector: str, category: str, direction: str) -> None:
        what = "request" if direction == "request" else "response"
        super().__init__(
            f"Blocked by Guardline: the {what} was flagged by the {detector} guardrail "
            f"(category {category})."
        )
        self.detector = detector
        self.category = category


class GuardrailError(GuardlineError):
    """A guard-mode detector raised; the policy fails closed."""

    status = 503
    code = "guardrail_error"

    def __init__(self, detector: str) -> None:
        super().__init__(
            f"Guardline could not check this call: the {detector} guardrail failed, and its "
            "policy blocks what it cannot check."
        )
        self.detector = detector


class ServerBusyError(GuardlineError):
    """Guardline itself is full: a connection over ``ingress.max_connections`` gets this
    (with ``retry-after``) and is closed. Not an upstream failure: the call never left."""

    status = 503
    code = "server_busy"
    anthropic_type = "overloaded_error"

    def __init__(self) -> None:
        super().__init__(
            "Guardline is serving as many connections as it is configured to; retry shortly."
        )


class UpstreamError(GuardlineError):
    status = 502
    code = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"
    anthropic_type = "timeout_error"


class UpstreamConnectError(UpstreamError):
    status = 502
    code = "upstream_connect_error"


class UpstreamProtocolError(UpstreamError):
    status = 502
    code = "upstream_protocol_error"


class UpstreamBusyError(UpstreamError):
    status = 503
    code = "upstream_busy"
    anthropic_type = "overloaded_error"
