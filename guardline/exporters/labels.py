"""Bounded metric labels: each open-ended label keeps its first N distinct values and
folds the rest into ``other``, so no client can create a time series per request."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from guardline.exporters.names import OTHER
from guardline.settings import CappedLabel

log = logging.getLogger("guardline.telemetry")


class LabelCap:
    """The first ``cap`` distinct values pass; later ones read ``other`` (logged once)."""

    __slots__ = ("_cap", "_name", "_seen", "_warned")

    def __init__(self, name: str, cap: int) -> None:
        self._name = name
        self._cap = cap
        self._seen: set[str] = set()
        self._warned = False

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self._cap:
            self._seen.add(value)
            return value
        if not self._warned:
            self._warned = True
            log.warning(
                "metric label %s reached its cap of %d distinct values; further values are "
                "reported as %r (raise telemetry.label_caps.%s to keep more)",
                self._name,
                self._cap,
                OTHER,
                self._name,
            )
        return OTHER


class LabelCaps:
    """The capped labels, by name: ``model``, ``app``, ``category``, ``error_type``."""

    def __init__(self, default_cap: int, caps: Mapping[CappedLabel, int]) -> None:
        self.model = LabelCap("model", caps.get("model", default_cap))
        self.app = LabelCap("app", caps.get("app", default_cap))
        self.category = LabelCap("category", caps.get("category", max(default_cap, 200)))
        self.error_type = LabelCap("error_type", caps.get("error_type", default_cap))
