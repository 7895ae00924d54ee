"""Building the enabled detectors from settings and the ``guardline.detectors`` entry
points. A detector that cannot load stops startup: Guardline never runs without a
guardrail it was configured to have."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from guardline.detectors.base import Detector
from guardline.detectors.redaction import Redactor
from guardline.errors import ConfigError
from guardline.settings import DetectorsSettings, Settings

log = logging.getLogger("guardline.detectors")
ENTRY_POINT_GROUP = "guardline.detectors"


def build_detectors(settings: DetectorsSettings) -> dict[str, Detector]:
    detectors: dict[str, Detector] = {}
    if settings.pii.enabled:
        from guardline.detectors.pii import PiiDetector  # noqa: PLC0415 - heavy imports

        detectors["pii"] = PiiDetector(settings.pii)
    if settings.toxicity.enabled:
        from guardline.detectors.toxicity import ToxicityDetector  # noqa: PLC0415

        detectors["toxicity"] = ToxicityDetector(settings.toxicity)
    if settings.stereotype.enabled:
        from guardline.detectors.stereotype import StereotypeDetector  # noqa: PLC0415

        detectors["stereotype"] = StereotypeDetector(settings.stereotype)
    if settings.plugins:
        available = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in settings.plugins:
            if name not in available:
                raise ConfigError(
                    f"detectors.plugins: no detector named {name!r} is installed (entry "
                    f"point group {ENTRY_POINT_GROUP}); installed: "
                    f"{', '.join(sorted(available)) or 'none'}"
                )
            factory = available[name].load()
            detectors[name] = factory()
    for name, detector in detectors.items():
        log.info("detector %s: %s (%s)", name, detector.backend, detector.cost)
    return detectors


def build_redactor(settings: Settings) -> Redactor:
    from guardline.detectors.pii import hash_salt  # noqa: PLC0415

    pii = settings.detectors.pii
    operators = {name: entity.operator for name, entity in pii.entities.items()}
    return Redactor(operators, hash_salt(pii))
