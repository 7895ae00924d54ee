"""Everything the proxy needs to apply guardrails, built once at startup."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from guardline.detectors.base import Detector
from guardline.detectors.engine import Scanner
from guardline.detectors.policy import PolicyBook
from guardline.detectors.registry import build_detectors, build_redactor
from guardline.settings import Settings

_NAMES = 4096  # distinct model names remembered


class Guardrails:
    def __init__(self, settings: Settings, detectors: Mapping[str, Detector] | None = None) -> None:
        found = build_detectors(settings.detectors) if detectors is None else dict(detectors)
        self.scanner = Scanner(found, settings.detectors.workers)
        self.policies = PolicyBook(settings.policy, found)
        self.redactor = build_redactor(settings)
        if found:  # any finding may meet a redact rule: load presidio now, not mid-request
            self.redactor.preload()
        self.max_hold = settings.detectors.max_hold_chars
        self.signed_thinking = settings.policy.signed_thinking
        self._names: dict[str, bool] = {}

    def recordable(self, name: str) -> bool:
        """Whether a name (a model's) may be recorded as it is in logs, spans, metrics and
        samples: no PII detector finding in it. Cached, since names repeat."""
        known = self._names.get(name)
        if known is None:
            if "pii" not in self.scanner.detectors:
                return True
            scan = self.scanner.scan_sync(name, ("pii",))
            known = not scan.findings and not scan.errors
            if len(self._names) >= _NAMES:
                self._names.clear()
            self._names[name] = known
        return known

    def health(self) -> dict[str, Any]:
        return self.scanner.health()

    def close(self) -> None:
        self.scanner.close()
