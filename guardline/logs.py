"""Logging setup: one JSON object per line (or plain text), with the request id.

Guardline never logs message content, headers or keys. As a second line of defence the
formatter masks anything shaped like an API key or a payment card number, so a library's
exception message quoting a request cannot leak one either.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Literal

import orjson

LogFormat = Literal["json", "text"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardline_request_id", default=None
)
"""The request being served (set by the proxy endpoint for the duration of a call)."""
client_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardline_client_request_id", default=None
)
"""The client's ``x-request-id`` of that request, when it sent a sane one (a correlation
field beside ``request_id``, which is always Guardline's own)."""

_SECRETS = re.compile(
    r"""(?ix)
    \b(?:sk|pk|rk)-[a-z0-9_\-]{8,}          # OpenAI-style keys (sk-..., sk-proj-..., sk-ant-...)
    | \bbearer\s+[a-z0-9._~+/\-]{8,}=*      # bearer tokens
    | \b(?:x-api-key|api[_-]?key|authorization)["']?\s*[:=]\s*["']?[^\s"',}]{8,}
    """
)
_CARD = re.compile(r"\b\d(?:[ \-]?\d){12,18}\b")
# ``request_id=`` on its own, not the end of ``client_request_id=``.
_HAS_REQUEST_ID = re.compile(r"(?<![\w.])request_id=")


def scrub(message: str) -> str:
    """``message`` with key-like and card-like substrings masked."""
    message = _SECRETS.sub("[secret]", message)
    return _CARD.sub(_mask_card, message)


def _mask_card(match: re.Match[str]) -> str:
    digits = [c for c in match.group() if c.isdigit()]
    return "[card]" if _luhn(digits) else match.group()


def _luhn(digits: list[str]) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


class _DropSimulatedFaults(logging.Filter):
    """The simulator drops connections on purpose; that is not a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "SimulatedFaultError"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"?, "client_request_id"?,
    "error"?}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        rid = getattr(record, "request_id", None)
        client = getattr(record, "client_request_id", None)
        if not rid:  # the call being served, unless the line names another one
            rid, client = request_id.get(), client_request_id.get()
        if rid:
            entry["request_id"] = rid
        if client:  # chosen by the client: masked like any other text
            entry["client_request_id"] = scrub(client)
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        rid = request_id.get()
        if rid and not _HAS_REQUEST_ID.search(line):
            line = f"{line} request_id={rid}"
        client = client_request_id.get()
        if client and "client_request_id=" not in line:
            line = f"{line} client_request_id={scrub(client)}"
        return line


def iso_time(created: float) -> str:
    """``2026-11-21T10:30:47.101Z`` for a Unix time."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure(level: str, fmt: LogFormat = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_DropSimulatedFaults())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # presidio logs every recognizer it loads at INFO; Guardline logs the detector summary.
    logging.getLogger("presidio-analyzer").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("uvicorn.access").disabled = True
