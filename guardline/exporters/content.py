"""Text that leaves Guardline besides the call itself, PII-redacted first: message content
for spans (when ``telemetry.record_content`` is on) and sample records.

Span content is shaped as the GenAI conventions' ``gen_ai.input.messages`` and
``gen_ai.output.messages`` JSON (one message of text parts per direction; roles are not
tracked by the proxy).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from guardline.detectors.base import Direction
from guardline.detectors.guardrails import Guardrails

PII = "pii"
WITHHELD = "<TEXT_WITHHELD: could not be checked for PII>"


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
        parts = [await redact(guardrails, text, direction) for text in texts if text]
        role = "user" if direction == "request" else "assistant"
        message = {"role": role, "parts": [{"type": "text", "content": p} for p in parts]}
        role_texts.append(orjson.dumps([message]).decode())
    return role_texts[0], role_texts[1]


async def _redact(guardrails: Guardrails, text: str, direction: Direction) -> str:
    scan = await guardrails.scanner.scan(text, (PII,), direction)
    if scan.errors:
        return WITHHELD  # never the raw text
    return guardrails.redactor.apply(text, scan.findings) if scan.findings else text


async def redact(guardrails: Guardrails, text: str, direction: Direction) -> str:
    """``text`` with PII replaced, then scanned once more as it is about to leave; anything
    still found (a value the replacement exposed or joined) is replaced too, and text
    that a third pass would still change is withheld. Withheld without a PII detector."""
    if PII not in guardrails.scanner.detectors:
        return WITHHELD
    for _ in range(2):
        redacted = await _redact(guardrails, text, direction)
        if redacted == text:
            return text
        text = redacted
    return text if await _redact(guardrails, text, direction) == text else WITHHELD
