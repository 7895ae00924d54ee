"""Rewriting found spans: presidio-anonymizer's operators, applied span by span so the
stream guard can place each replacement in the event where its span starts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from guardline.detectors.base import Finding
from guardline.settings import Operator


class Redactor:
    """The replacement for a span, by the operator configured for its category
    (``replace`` -> ``<CATEGORY>`` for anything not configured)."""

    def __init__(self, operators: Mapping[str, Operator], salt: bytes | None = None) -> None:
        self._impl: dict[str, Any] = {}
        self._operators = dict(operators)
        self._salt = salt

    def preload(self) -> None:
        if not self._impl:
            self._load()

    def _load(self) -> dict[str, Any]:
        # Not in __init__: presidio's package imports every recognizer, spaCy and (where
        # installed) transformers and torch: seconds and ~400 MB that a proxy with every
        # detector off should not pay (Guardrails preloads it when any is on).
        from presidio_anonymizer.operators import Hash, Mask, Redact, Replace  # noqa: PLC0415

        self._impl = {"replace": Replace(), "mask": Mask(), "hash": Hash(), "redact": Redact()}
        return self._impl

    def replacement(self, category: str, value: str) -> str:
        impl = self._impl or self._load()
        name = self._operators.get(category, "replace")
        params: dict[str, object] = {"entity_type": category}
        if name == "mask":
            params.update(masking_char="*", chars_to_mask=len(value), from_end=False)
        elif name == "hash":
            params.update(hash_type="sha256", salt=self._salt)
        return str(impl[name].operate(text=value, params=params))

    def apply(self, text: str, findings: Iterable[Finding]) -> str:
        """``text`` with every (non-overlapping) finding replaced."""
        out: list[str] = []
        last = 0
        for finding in resolve(findings):
            out.append(text[last : finding.start])
            out.append(self.replacement(finding.category, text[finding.start : finding.end]))
            last = finding.end
        out.append(text[last:])
        return "".join(out)


def resolve(findings: Iterable[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: where spans overlap, the one that starts
    first wins, then the longer, then the higher score (so a redaction covers the most)."""
    ordered = sorted(findings, key=lambda f: (f.start, -(f.end - f.start), -f.score))
    out: list[Finding] = []
    for finding in ordered:
        if finding.end <= finding.start:
            continue
        if out and finding.start < out[-1].end:
            if finding.end > out[-1].end:  # partial overlap: extend the kept span
                kept = out[-1]
                out[-1] = Finding(
                    kept.detector,
                    kept.category,
                    kept.score,
                    kept.start,
                    finding.end,
                    kept.direction,
                    kept.detail,
                )
            continue
        out.append(finding)
    return out
