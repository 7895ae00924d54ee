"""Sample records: what an exchange worth evaluating offline leaves behind.

Which exchanges (``Selector``): every flagged one, a random baseline of the others, and
(when their feedback arrives) rejected ones; per-route overrides and an off switch. What a
record holds (``sample_record``, schema version 1, documented in the README): ids, time,
route, provider, model, application, the redacted prompt and response, findings, actions,
usage, cost, latency, finish reason. Text is redacted before a record is built.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from guardline.exchange import Exchange, Usage
from guardline.logs import iso_time
from guardline.settings import SamplesSettings

SCHEMA_VERSION = 1
Reason = Literal["flagged", "baseline", "feedback"]


class Selector:
    """Decides whether an exchange becomes a sample, and why."""

    def __init__(self, settings: SamplesSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._random = (rng or random.Random()).random

    def reason(self, exchange: Exchange) -> Reason | None:
        settings = self._settings
        if not settings.enabled:
            return None
        route = settings.routes.get(exchange.endpoint.value)
        if route is not None and route.enabled is False:
            return None
        if exchange.findings:
            return "flagged"
        rate = settings.baseline_rate
        if route is not None and route.baseline_rate is not None:
            rate = route.baseline_rate
        if rate and self._random() < rate:
            return "baseline"
        return None


def sample_record(
    exchange: Exchange,
    *,
    reason: Reason,
    prompt: str,
    response: str,
    cost_usd: float | None,
    trace_id: str | None = None,
    span_id: str | None = None,
    received_at: float | None = None,
) -> dict[str, Any]:
    """One exchange record, JSON-ready. ``prompt`` and ``response`` must already be
    redacted. Its ``feedback`` is null as written: feedback arrives later as its own
    record (``feedback_record``) and readers join the two by ``request_id``."""
    reply = exchange.reply
    done = exchange.done or exchange.received
    wall = received_at if received_at is not None else time.time() - (done - exchange.received)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "exchange",
        "request_id": exchange.request_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "time": iso_time(wall),
        "selected": reason,
        "route": exchange.endpoint.value,
        "provider": exchange.provider,
        "model": exchange.model,
        "response_model": reply.model,
        "application": exchange.app,
        "upstream": exchange.upstream,
        "stream": exchange.stream,
        "prompt": prompt,
        "response": response,
        "findings": [
            {
                "detector": f.detector,
                "category": f.category,
                "direction": f.direction,
                "score": round(f.score, 4),
                **({"detail": f.detail} if f.detail else {}),
            }
            for f in exchange.findings
        ],
        "actions": dict(exchange.actions),
        "usage": _usage(reply.usage),
        "cost_usd": cost_usd,
        "latency_ms": round((done - exchange.received) * 1000, 3),
        "time_to_first_chunk_ms": (
            round((exchange.first_chunk - exchange.received) * 1000, 3)
            if exchange.stream and exchange.first_chunk is not None
            else None
        ),
        "finish_reason": reply.finish_reason,
        "outcome": exchange.outcome.value,
        "status": exchange.status,
        "reference": None,
        "feedback": None,
    }


def feedback_record(
    request_id: str,
    *,
    outcome: str,
    score: float | None,
    retained_fraction: float | None,
    comment: str | None,
    correction: str | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """Feedback on an exchange, as its own record (schema version 1). Free text
    (``comment``, ``correction``) must already be redacted."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "feedback",
        "request_id": request_id,
        "time": iso_time(time.time() if at is None else at),
        "feedback": {
            "outcome": outcome,
            "score": score,
            "retained_fraction": retained_fraction,
            "comment": comment,
            "correction": correction,
        },
    }


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }
