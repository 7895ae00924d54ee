"""Detectors from settings and from the `guardline.detectors` entry points."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from guardline.detectors import registry
from guardline.detectors.base import FakeDetector
from guardline.errors import ConfigError
from guardline.settings import DetectorsSettings

_OFF = {"pii": {"enabled": False}, "toxicity": {"enabled": False}, "stereotype": {"enabled": False}}


def plugin_factory() -> FakeDetector:
    """What a third-party package's entry point would return."""
    return FakeDetector(name="secrets", pattern=r"AKIA[0-9A-Z]{16}", category="AWS_KEY")


def test_plugins_load_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(
        name="secrets", value=f"{__name__}:plugin_factory", group=registry.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [],
    )
    detectors = registry.build_detectors(
        DetectorsSettings.model_validate({**_OFF, "plugins": ["secrets"]})
    )
    assert list(detectors) == ["secrets"]
    found = detectors["secrets"].detect("key AKIAABCDEFGHIJKLMNOP here")
    assert [f.category for f in found] == ["AWS_KEY"]


def test_a_missing_plugin_stops_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    with pytest.raises(
        ConfigError, match=r"detectors.plugins: no detector named 'secrets' is installed"
    ):
        registry.build_detectors(DetectorsSettings.model_validate({**_OFF, "plugins": ["secrets"]}))


def test_disabled_detectors_are_not_built() -> None:
    assert registry.build_detectors(DetectorsSettings.model_validate(_OFF)) == {}


def test_health_names_every_backend(sim: Any) -> None:
    import httpx

    from tests.servers import proxy, proxy_settings

    with proxy(proxy_settings(sim.url)) as gw:
        detectors = httpx.get(gw.url + "/healthz").json()["detectors"]
    assert detectors == {
        "pii": {"backend": "presidio (spaCy blank:en)", "cost": "fast"},
        "toxicity": {"backend": "linear (alt-profanity-check)", "cost": "fast"},
        "stereotype": {"backend": "rules (Guardline lexicons)", "cost": "fast"},
    }


def test_a_proxy_with_every_detector_off_never_imports_presidio() -> None:
    """Presidio imports spaCy and, where installed, transformers and torch (~400 MB):
    a pure gateway does not pay for it; with a detector on it is loaded at startup, not
    on the first redaction mid-request."""
    code = """
import sys
from guardline.detectors.guardrails import Guardrails
from guardline.settings import load_settings
off = {"enabled": False}
Guardrails(load_settings(overrides={"detectors": {"pii": off, "toxicity": off, "stereotype": off}}))
print("presidio_anonymizer" in sys.modules)
Guardrails(load_settings(overrides={"detectors": {"pii": off, "stereotype": off}}))
print("presidio_anonymizer" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
