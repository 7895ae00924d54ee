"""Message content for spans, when ``telemetry.record_content`` is on: PII-redacted first.

Shaped as the GenAI conventions' ``gen_ai.input.messages`` / ``gen_ai.output.messages``
JSON (one message of text parts per direction; roles are not tracked by the proxy).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from guardline.detectors.base import Direction
from guardline.detectors.guardrails import Guardrails

PII = "pii"


async def redacted_content(
    guardrails: Guardrails, input_texts: Sequence[str], output_texts: Sequence[str]
) -> tuple[str, str] | None:
    """Both directions' texts with every PII finding replaced; None when no PII detector
    is enabled (content is then never recorded: unredacted text must not leave)."""
    if PII not in guardrails.scanner.detectors:
        return None
    role_texts: list[str] = []
    sides: tuple[tuple[Direction, Sequence[str]], ...] = (
        ("request", input_texts),
        ("response", output_texts),
    )
    for direction, texts in sides:
        parts = [await _redact(guardrails, text, direction) for text in texts if text]
        role = "user" if direction == "request" else "assistant"
        message = {"role": role, "parts": [{"type": "text", "content": p} for p in parts]}
        role_texts.append(orjson.dumps([message]).decode())
    return role_texts[0], role_texts[1]


async def _redact(guardrails: Guardrails, text: str, direction: Direction) -> str:
    scan = await guardrails.scanner.scan(text, (PII,), direction)
    if scan.errors:
        return "<REDACTION_FAILED>"  # never the raw text
    return guardrails.redactor.apply(text, scan.findings) if scan.findings else text
