"""The Exchange: one request/response through the proxy, enriched as it moves."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from guardline.detectors.base import Finding


class Endpoint(enum.Enum):
    """The endpoints Guardline understands; anything else under /v1 is PASSTHROUGH."""

    CHAT_COMPLETIONS = "chat.completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    MODELS = "models"
    MESSAGES = "messages"
    PASSTHROUGH = "passthrough"


class Outcome(enum.Enum):
    OK = "ok"
    UPSTREAM_ERROR = "upstream_error"  # the upstream answered 4xx/5xx (passed through)
    ERROR = "error"  # Guardline answered with an error of its own
    BLOCKED = "blocked"  # a guard-mode policy blocked the call
    CLIENT_DISCONNECT = "client_disconnect"


@dataclass(slots=True)
class Exchange:
    """Timings are ``time.perf_counter()`` seconds; None until reached."""

    request_id: str
    provider: str
    endpoint: Endpoint
    method: str
    path: str
    received: float
    model: str | None = None
    stream: bool = False
    upstream: str | None = None
    upstream_sent: float | None = None
    first_byte: float | None = None
    """Upstream response headers arrived."""
    first_chunk: float | None = None
    """First body bytes sent to the client."""
    done: float | None = None
    status: int | None = None
    outcome: Outcome = Outcome.OK
    error_code: str | None = None
    app: str | None = None
    findings: list[Finding] = field(default_factory=list)
    """What the policy's rules cover, from guard and monitor scans (spans, never text)."""
    actions: dict[str, int] = field(default_factory=dict)
    """How often each action was taken: ``redact``, ``block``."""

    def act(self, action: str, count: int = 1) -> None:
        self.actions[action] = self.actions.get(action, 0) + count
