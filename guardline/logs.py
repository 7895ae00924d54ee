"""Logging setup. Guardline never logs message content, headers or keys."""

from __future__ import annotations

import logging
import sys


class _DropSimulatedFaults(logging.Filter):
    """The simulator drops connections on purpose; that is not a server error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return type(exc).__name__ != "SimulatedFaultError"


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_DropSimulatedFaults())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # presidio logs every recognizer it loads at INFO; Guardline logs the detector summary.
    logging.getLogger("presidio-analyzer").setLevel(max(root.level, logging.WARNING))
    logging.getLogger("uvicorn.access").disabled = True
