"""The detector protocol, the Finding it produces, and a fake beside it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

Cost = Literal["fast", "heavy"]
Direction = Literal["request", "response"]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something a detector found. Spans are character offsets into the scanned text.

    ``detail`` is a value from a bounded set (e.g. ``nurse:she``) safe for metric labels;
    never free text from the traffic.
    """

    detector: str
    category: str
    score: float
    start: int
    end: int
    direction: Direction = "response"
    detail: str | None = None


class Detector(Protocol):
    """A detector: finds things in text. Policy (what to do about them) lives elsewhere."""

    name: str
    cost: Cost
    """``heavy`` detectors run in the worker pool, never on the event loop."""
    context_chars: int
    """Characters of left context a window needs for findings that match scanning the
    whole text (e.g. presidio's context words); 0 for sentence-local detectors."""
    backend: str
    """What is actually running (shown in the startup log and /healthz)."""

    def detect(self, text: str, start: int = 0) -> list[Finding]:
        """Findings in ``text[start:]``; ``text[:start]`` is context only (it was scanned
        before, as part of an earlier window)."""
        ...


@dataclass
class FakeDetector:
    """Flags every match of ``pattern`` as ``category``; raises ``error`` if set.

    For tests of the engine, the policy and the stream guard.
    """

    pattern: str = r"\bFLAG\w*"
    category: str = "fake"
    name: str = "fake"
    score: float = 1.0
    cost: Cost = "fast"
    context_chars: int = 0
    backend: str = "fake"
    error: Exception | None = None
    calls: list[str] = field(default_factory=list)
    """What it was asked to scan (without the context before ``start``)."""
    seen: list[str] = field(default_factory=list)
    """Every text it was given, context included."""

    def detect(self, text: str, start: int = 0) -> list[Finding]:
        self.calls.append(text[start:])
        self.seen.append(text)
        if self.error is not None:
            raise self.error
        return [
            Finding(self.name, self.category, self.score, m.start(), m.end())
            for m in re.finditer(self.pattern, text)
            if m.start() >= start
        ]
