"""The Exchange: one request/response through the proxy, enriched as it moves."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guardline.detectors.base import Finding

if TYPE_CHECKING:
    from guardline.detectors.policy import Policy


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
class Usage:
    """Token counts in OpenAI's sense: ``input_tokens`` includes cached input and
    ``output_tokens`` includes reasoning (adapters convert Anthropic's split counts)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    """Input read from the provider's prompt cache (billed at the cached rate)."""
    cache_write_tokens: int = 0
    """Input written to the prompt cache (Anthropic bills it above the input rate)."""
    reasoning_tokens: int = 0
    estimated: bool = False
    """The upstream reported nothing; counts are estimated from text length."""


TRUNCATED = frozenset({"length", "max_tokens", "max_output_tokens"})
"""Finish reasons meaning the answer was cut off by a token limit."""


@dataclass(slots=True)
class Reply:
    """What the upstream answered, as telemetry needs it: never the text itself."""

    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    output_chars: int = 0
    tool_calls: int = 0
    refusal: bool = False
    chunk_times: list[float] = field(default_factory=list)
    """When each output chunk arrived (``perf_counter``), streams only."""

    @property
    def truncated(self) -> bool:
        return self.finish_reason in TRUNCATED

    @property
    def empty(self) -> bool:
        return self.output_chars == 0 and self.tool_calls == 0 and not self.refusal


@dataclass(slots=True)
class Exchange:
    """Timings are ``time.perf_counter()`` seconds; None until reached."""

    request_id: str
    """Guardline's own id for the exchange: fresh and unique (``headers.new_request_id``),
    signed into ``x-guardline-request-id``, the key feedback and samples join on."""
    provider: str
    endpoint: Endpoint
    method: str
    path: str
    received: float
    client_request_id: str | None = None
    """The client's ``x-request-id`` (when a sane token): a correlation field recorded
    beside ``request_id`` in logs, spans and samples, never used as Guardline's id. Two
    calls may carry the same one."""
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

    policy: Policy | None = None
    """The policy resolved for this exchange (scanned endpoints only)."""
    reply: Reply = field(default_factory=Reply)
    input_chars: int = 0
    """Length of the request's texts (for token estimates when the upstream reports none)."""
    strip_usage: bool = False
    """Guardline asked the upstream for stream usage on the client's behalf: the usage
    chunk is removed from what the client receives."""
    upstream_done: float | None = None
    """The upstream's last byte was read."""
    regenerated: bool = False
    signed_id: str | None = None
    """The request id returned to the client: signed, carrying the attribution labels."""
    trace: Any = None
    """The exchange's span while it is open (telemetry's business)."""

    def act(self, action: str, count: int = 1) -> None:
        self.actions[action] = self.actions.get(action, 0) + count
