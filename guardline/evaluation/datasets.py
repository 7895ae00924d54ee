"""Reading labeled datasets for detector evaluation.

- PII: presidio-research JSON (a list, or JSON Lines, of ``{"full_text", "spans":
  [{"entity_type", "start_position", "end_position"}]}``).
- Toxicity and stereotype: JSON Lines ``{"text": ..., "label": 0|1}``, or CSV with
  ``text`` and ``label`` columns. Conveniences for the shared files: Davidson's CSV
  (``class`` 0 hate and 1 offensive are positive, 2 neither is negative), CrowS-Pairs'
  CSV (for ``stereo`` pairs, ``sent_more`` is a stereotyping sentence, label 1, group
  ``stereotyping``; ``sent_less`` its counterpart, label 0, group ``counterpart``), and
  presidio-research JSON read as neutral text (label 0, group ``neutral``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardline.errors import ConfigError

# Dataset entity names -> Guardline's (presidio's) names.
ENTITY_NAMES = {
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "ORG": "ORGANIZATION",
    "PER": "PERSON",
    "NORP": "NRP",
    "DATE": "DATE_TIME",
    "TIME": "DATE_TIME",
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE": "PHONE_NUMBER",
    "CREDIT_CARD_NUMBER": "CREDIT_CARD",
    "IP": "IP_ADDRESS",
    "SSN": "US_SSN",
    "IBAN": "IBAN_CODE",
}


@dataclass(slots=True)
class SpanExample:
    text: str
    spans: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass(slots=True)
class LabelExample:
    text: str
    label: int
    group: str = ""


def read_spans(path: Path) -> list[SpanExample]:
    out = []
    for row in _json_rows(path):
        try:
            spans = [
                (
                    int(s["start_position"]),
                    int(s["end_position"]),
                    ENTITY_NAMES.get(s["entity_type"], s["entity_type"]),
                )
                for s in row.get("spans", [])
            ]
            out.append(SpanExample(str(row["full_text"]), spans))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not presidio-research JSON ({exc})") from None
    return out


def read_labels(path: Path) -> list[LabelExample]:
    if path.suffix.lower() == ".csv":
        return list(_csv_labels(path))
    if path.is_dir() or path.suffix.lower() in (".dev", ".test", ".txt"):
        return _winobias(path)
    rows = _json_rows(path)
    if rows and "full_text" in rows[0]:
        return [LabelExample(str(r["full_text"]), 0, "neutral") for r in rows]
    try:
        return [
            LabelExample(str(r["text"]), int(r["label"]), str(r.get("group", ""))) for r in rows
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: expected JSON Lines of {{'text', 'label'}} ({exc})") from None


def _winobias(path: Path) -> list[LabelExample]:
    """WinoBias sentences ("12 The [nurse] said [she] ...") as neutral text: they mention
    occupations and pronouns but generalise about no group."""
    files = sorted(path.glob("*stereotyped*")) if path.is_dir() else [path]
    out = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            _, _, text = line.partition(" ")
            if text.strip():
                out.append(LabelExample(text.replace("[", "").replace("]", ""), 0, "neutral"))
    return out


def _csv_labels(path: Path) -> Iterator[LabelExample]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if {"class", "tweet"} <= columns:  # Davidson et al.
            for row in reader:
                yield LabelExample(row["tweet"], int(row["class"] in ("0", "1")))
        elif {"sent_more", "sent_less", "stereo_antistereo"} <= columns:  # CrowS-Pairs
            for row in reader:
                if row["stereo_antistereo"] == "stereo":
                    yield LabelExample(row["sent_more"], 1, "stereotyping")
                    yield LabelExample(row["sent_less"], 0, "counterpart")
        elif {"text", "label"} <= columns:
            for row in reader:
                yield LabelExample(row["text"], int(row["label"]), row.get("group", ""))
        else:
            raise ConfigError(f"{path}: unknown CSV layout (columns {', '.join(sorted(columns))})")


def _json_rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"dataset {path}: {exc.strerror or exc}") from None
    try:
        if text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"dataset {path}: invalid JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"dataset {path}: expected JSON objects")
    return list(rows)
