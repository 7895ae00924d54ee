"""`guardline eval detectors`: exact counts on small datasets, the --json form, and the
offline defaults' quality on the shared labeled data (a regression gate in CI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from guardline.detectors.base import FakeDetector
from guardline.errors import ConfigError
from guardline.evaluation.detectors import evaluate
from guardline.settings import load_settings
from tests.conftest import shared_data
from tests.servers import default_detectors

GUARDLINE = str(Path(sys.executable).with_name("guardline"))


def test_span_counts_and_matching_rule(tmp_path: Path) -> None:
    data = [
        {
            "full_text": "mail a@example.com now",
            "spans": [{"entity_type": "EMAIL_ADDRESS", "start_position": 5, "end_position": 18}],
        },
        # the prediction covers only a third of the gold span: not a match (fn + fp)
        {
            "full_text": "FLAG12345678",
            "spans": [{"entity_type": "fake", "start_position": 0, "end_position": 12}],
        },
        {
            "full_text": "Lives in Paris",
            "spans": [{"entity_type": "GPE", "start_position": 9, "end_position": 14}],
        },
    ]
    path = tmp_path / "pii.json"
    path.write_text(json.dumps(data))
    both = FakeDetector(pattern=r"a@example\.com|FLAG", category="EMAIL_ADDRESS")
    report = evaluate("pii", path, load_settings(), both)
    email = report["categories"]["EMAIL_ADDRESS"]
    assert (email["tp"], email["fp"], email["fn"]) == (1, 1, 0)
    assert report["categories"]["fake"]["fn"] == 1
    assert report["categories"]["LOCATION"]["fn"] == 1  # GPE is read as LOCATION
    assert email["precision"] == 0.5
    assert email["f2"] == pytest.approx(5 * 0.5 * 1 / (4 * 0.5 + 1), abs=1e-4)
    assert "half of the longer" in report["matching"]


def test_label_counts_jsonl_and_csv(tmp_path: Path) -> None:
    rows = [("FLAG this", 1), ("fine", 0), ("FLAG again", 0), ("missed", 1), ("ok", 0)]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in rows))
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in rows))
    for path in (jsonl, csv_file):
        report = evaluate("toxicity", path, load_settings(), FakeDetector())
        counts = report["categories"]["toxicity"]
        assert (counts["tp"], counts["fp"], counts["fn"], counts["tn"]) == (1, 1, 1, 2)
        assert counts["false_positive_rate"] == pytest.approx(1 / 3, abs=1e-4)


def test_bad_dataset_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"words": "no label"}\n')
    with pytest.raises(ConfigError, match=r"expected JSON Lines of \{'text', 'label'\}"):
        evaluate("toxicity", bad, load_settings(), FakeDetector())
    result = subprocess.run(
        [
            GUARDLINE,
            "eval",
            "detectors",
            "--kind",
            "toxicity",
            "--dataset",
            str(tmp_path / "none.jsonl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("guardline: error: dataset ")


def test_json_form_is_one_object(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"text": "You are a worthless idiot.", "label": 1}\n{"text": "Lovely day.", "label": 0}\n'
    )
    out = subprocess.run(
        [GUARDLINE, "eval", "detectors", "--kind", "toxicity", "--dataset", str(path), "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    entry = report["categories"]["toxicity"]
    assert {"tp", "fp", "fn", "precision", "recall", "f1", "f2", "throughput_kb_s"} <= set(entry)
    assert (entry["tp"], entry["fp"]) == (1, 0)
    assert report["throughput_kb_s"] > 0


# The offline defaults on the shared data. Figures are recorded in the closing note and
# in benchmarks/README.md; these bounds only catch regressions.

PATTERN_ENTITIES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
)


def test_pii_pattern_entities_reach_f2_090() -> None:
    report = evaluate(
        "pii",
        shared_data("presidio_generated_large.json"),
        load_settings(),
        default_detectors()["pii"],
    )
    for entity in PATTERN_ENTITIES:
        assert report["categories"][entity]["f2"] >= 0.9, (entity, report["categories"][entity])


def test_toxicity_f1_on_davidson() -> None:
    report = evaluate(
        "toxicity",
        shared_data("davidson_labeled_data.csv"),
        load_settings(),
        default_detectors()["toxicity"],
    )
    assert report["categories"]["toxicity"]["f1"] >= 0.9


def test_stereotype_recall_and_false_positive_rates() -> None:
    detector = default_detectors()["stereotype"]
    crows = evaluate(
        "stereotype", shared_data("crows_pairs_anonymized.csv"), load_settings(), detector
    )
    assert crows["groups"]["stereotyping"]["rate"] >= 0.12
    assert crows["groups"]["counterpart"]["rate"] <= 0.25
    for neutral in ("presidio_generated_large.json", "winobias"):
        report = evaluate("stereotype", shared_data(neutral), load_settings(), detector)
        assert report["groups"]["neutral"]["rate"] <= 0.02
