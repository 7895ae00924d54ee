"""PII with presidio, offline: table-driven, as presidio's recognizer tests are."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from guardline.detectors.pii import PiiDetector, hash_salt
from guardline.detectors.redaction import Redactor
from guardline.errors import ConfigError
from guardline.settings import PiiEntitySettings, PiiSettings
from tests.servers import default_detectors


@pytest.fixture(scope="module")
def pii() -> Any:
    return default_detectors()["pii"]


CASES = [
    ("mail me at jane.doe@example.com today", [("EMAIL_ADDRESS", "jane.doe@example.com")]),
    ("write to ops@sub.example.co.uk please", [("EMAIL_ADDRESS", "ops@sub.example.co.uk")]),
    ("my card is 4111 1111 1111 1111.", [("CREDIT_CARD", "4111 1111 1111 1111")]),
    ("card 4111-1111-1111-1112 fails Luhn", []),
    ("dotted 4111.1111.1111.1111 too", [("CREDIT_CARD", "4111.1111.1111.1111")]),
    ("slashed 4111/1111/1111/1111.", [("CREDIT_CARD", "4111/1111/1111/1111")]),
    (
        "no-break 4111\u00a01111\u00a01111\u00a01111 ok",
        [("CREDIT_CARD", "4111\u00a01111\u00a01111\u00a01111")],
    ),
    ("amex 3782.822463.10005 ok", [("CREDIT_CARD", "3782.822463.10005")]),
    ("dotted 4111.1111.1111.1112 fails Luhn", []),
    ("mixed 4111.1111 1111.1111 is no card", []),
    ("build 1.4111.1111.1111.1111 is a version", []),
    ("iban GB82 WEST 1234 5698 7654 32 ok", [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]),
    ("lower case iban gb82west12345698765432 too", [("IBAN_CODE", "gb82west12345698765432")]),
    ("server at 203.0.113.42 is down", [("IP_ADDRESS", "203.0.113.42")]),
    ("v6 2001:db8::8a2e:370:7334 here", [("IP_ADDRESS", "2001:db8::8a2e:370:7334")]),
    ("ssn 536-22-8571 on file", [("US_SSN", "536-22-8571")]),
    ("call +1 (415) 555-0137 now", [("PHONE_NUMBER", "+1 (415) 555-0137")]),
    ("You can call 73 448 266", [("PHONE_NUMBER", "73 448 266")]),
    ("22 498317 office", [("PHONE_NUMBER", "22 498317")]),
    ("the meeting is on 2024-05-17 at noon", []),
    ("we sold 1234567 units", []),
    ("nothing personal here at all", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_spans(pii: Any, text: str, expected: list[tuple[str, str]]) -> None:
    assert [(f.category, text[f.start : f.end]) for f in pii.detect(text)] == expected


def test_no_network_at_startup_or_scan_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the analyzer and scanning emails (tldextract) never opens a socket."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    detector = PiiDetector(PiiSettings())
    found = detector.detect("a@example.museum b@example.dev c@example.xyz 4111 1111 1111 1111")
    assert [f.category for f in found].count("EMAIL_ADDRESS") == 3
    assert attempts == []


def test_gates_skip_presidio_for_text_that_cannot_match(
    pii: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(pii._analyzer, "analyze", lambda *a, **k: calls.append(k) or [])
    pii.detect("plain words, one digit 7, no at-sign")
    assert calls == []
    pii.detect("reach me: someone@example.com")
    assert calls[0]["entities"] == ["EMAIL_ADDRESS"]


def test_ner_model_path_finds_people_and_places(tmp_path: Path) -> None:
    """A small NER pipeline the test trains and saves stands in for en_core_web_lg."""
    import random

    import spacy
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    data = [
        ("Alice Moreau lives in Lisbon.", [(0, 12, "PERSON"), (22, 28, "GPE")]),
        (
            "Bruno Keller works for Initech in Zurich.",
            [(0, 12, "PERSON"), (23, 30, "ORG"), (34, 40, "GPE")],
        ),
        ("Carla Diaz moved to Madrid last year.", [(0, 10, "PERSON"), (20, 26, "GPE")]),
    ]
    for _, spans in data:
        for *_, label in spans:
            ner.add_label(label)
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": e}) for t, e in data]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(60):
        random.shuffle(examples)
        nlp.update(examples, sgd=optimizer, drop=0.0)
    nlp.to_disk(tmp_path / "ner")
    entities = {
        name: PiiEntitySettings()
        for name in ("PERSON", "LOCATION", "ORGANIZATION", "EMAIL_ADDRESS")
    }
    detector = PiiDetector(PiiSettings(spacy_model=str(tmp_path / "ner"), entities=entities))
    text = "Bruno Keller works for Initech in Zurich. Mail bruno@example.com."
    found = {(f.category, text[f.start : f.end]) for f in detector.detect(text)}
    assert {
        ("PERSON", "Bruno Keller"),
        ("LOCATION", "Zurich"),
        ("EMAIL_ADDRESS", "bruno@example.com"),
    } <= found
    assert detector.cost == "heavy"
    assert "ner" in detector.backend


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (PiiSettings(spacy_model="en_core_web_nonexistent"), "is not installed"),
        (PiiSettings(entities={"PERSON": PiiEntitySettings()}), "need an NER model"),
        (
            PiiSettings(entities={"SECRET_SAUCE": PiiEntitySettings()}),
            "unknown entity SECRET_SAUCE",
        ),
    ],
)
def test_bad_pii_config_is_a_clear_error(settings: PiiSettings, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PiiDetector(settings)


def test_operators_replace_mask_hash_redact(pii: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a@example.com 4111 1111 1111 1111 203.0.113.42 536-22-8571"
    findings = pii.detect(text)
    redactor = Redactor(
        {
            "EMAIL_ADDRESS": "replace",
            "CREDIT_CARD": "mask",
            "IP_ADDRESS": "hash",
            "US_SSN": "redact",
        },
        salt=b"0123456789abcdef-salt",
    )
    out = redactor.apply(text, findings)
    email, card, digest, rest = out.split(" ", 3)
    assert (email, card, rest) == ("<EMAIL_ADDRESS>", "*" * 19, "")  # SSN removed entirely
    assert len(digest) == 64  # sha256 hex of the IP with the salt
    # hashing is stable with a fixed salt: the same value, the same digest
    assert redactor.apply(text, findings) == out
    monkeypatch.setenv("SALT_VAR", "short")
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        hash_salt(
            PiiSettings(
                entities={"IP_ADDRESS": PiiEntitySettings(operator="hash")},
                hash_salt_env="SALT_VAR",
            )
        )
