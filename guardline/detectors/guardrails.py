"""Everything the proxy needs to apply guardrails, built once at startup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guardline.detectors.base import Detector
from guardline.detectors.engine import Scanner
from guardline.detectors.policy import PolicyBook
from guardline.detectors.registry import build_detectors, build_redactor
from guardline.settings import Settings


class Guardrails:
    def __init__(self, settings: Settings, detectors: Mapping[str, Detector] | None = None) -> None:
        found = build_detectors(settings.detectors) if detectors is None else dict(detectors)
        self.scanner = Scanner(found, settings.detectors.workers)
        self.policies = PolicyBook(settings.policy, found)
        self.redactor = build_redactor(settings)
        if found:  # any finding may meet a redact rule: load presidio now, not mid-request
            self.redactor.preload()
        self.max_hold = settings.detectors.max_hold_chars

    def health(self) -> dict[str, Any]:
        return self.scanner.health()

    def close(self) -> None:
        self.scanner.close()
