"""Policy resolution and verdicts; the engine's scheduling and error reporting."""

from __future__ import annotations

import asyncio
import threading

import pytest

from guardline.detectors.base import FakeDetector, Finding
from guardline.detectors.engine import Scan, Scanner
from guardline.detectors.policy import PolicyBook, judge
from guardline.errors import ConfigError
from guardline.settings import PolicySettings


def _book(**policy: object) -> PolicyBook:
    return PolicyBook(PolicySettings.model_validate(policy), ["pii", "toxicity", "stereotype"])


def test_default_policy_monitors_everything_and_redacts_pii_in_records() -> None:
    policy = _book().resolve("openai", "/v1/chat/completions", "gpt-4o", None)
    for direction in ("request", "response"):
        assert policy.names(direction, "guard") == ()
        assert set(policy.names(direction, "monitor")) == {"pii", "toxicity", "stereotype"}
    assert policy.response["pii"].action == "redact"


def test_rules_change_only_the_fields_they_name() -> None:
    policy = _book(response={"pii": {"mode": "guard"}}).resolve("openai", "/v1/x", None, None)
    assert (policy.response["pii"].mode, policy.response["pii"].action) == ("guard", "redact")
    assert policy.response["toxicity"].mode == "monitor"


def test_overrides_by_route_model_and_app() -> None:
    book = _book(
        overrides=[
            {
                "match": {"paths": "/v1/messages"},
                "response": {"toxicity": {"mode": "guard", "action": "block"}},
            },
            {"match": {"apps": ["support-bot"]}, "request": {"pii": {"mode": "guard"}}},
            {
                "match": {"model_prefix": "claude-", "apps": "support-bot"},
                "request": {"pii": {"action": "block"}},
            },
        ]
    )
    plain = book.resolve("openai", "/v1/chat/completions", "gpt-4o", None)
    assert plain.names("response", "guard") == plain.names("request", "guard") == ()
    messages = book.resolve("anthropic", "/v1/messages", "claude-haiku-4-5", None)
    assert messages.response["toxicity"].action == "block"
    support = book.resolve("openai", "/v1/chat/completions", "gpt-4o", "support-bot")
    assert (support.request["pii"].mode, support.request["pii"].action) == ("guard", "redact")
    both = book.resolve("anthropic", "/v1/messages", "claude-haiku-4-5", "support-bot")
    assert (both.request["pii"].mode, both.request["pii"].action) == ("guard", "block")


def test_rules_for_unknown_detectors_are_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"policy.response.toxcity: no detector named 'toxcity'"):
        _book(response={"toxcity": {"mode": "guard"}})
    with pytest.raises(ConfigError, match=r"policy.overrides\[0\].request.pi:"):
        _book(overrides=[{"request": {"pi": {"mode": "guard"}}}])
    with pytest.raises(ValueError, match="mode"):
        _book(overrides=[{"request": {"pii": {"mode": "sometimes"}}}])


def test_judge() -> None:
    book = _book(
        response={
            "pii": {"mode": "guard", "action": "redact", "categories": ["EMAIL_ADDRESS"]},
            "toxicity": {"mode": "guard", "action": "block", "threshold": 0.9},
            "stereotype": {"mode": "guard", "action": "block", "on_error": "pass"},
        }
    )
    rules = book.resolve("openai", "/v1/x", None, None).response
    email = Finding("pii", "EMAIL_ADDRESS", 1.0, 0, 5)
    phone = Finding("pii", "PHONE_NUMBER", 0.4, 6, 9)
    mild = Finding("toxicity", "toxicity", 0.6, 0, 9)
    verdict = judge(Scan([email, phone, mild], {"stereotype": "RuntimeError"}), rules)
    assert (verdict.findings, verdict.redact, verdict.blocked, verdict.failed) == (
        [email],
        [email],
        None,
        None,
    )
    severe = Finding("toxicity", "toxicity", 0.95, 0, 9)
    assert judge(Scan([severe]), rules).blocked == severe
    assert judge(Scan([], {"toxicity": "RuntimeError"}), rules).failed == "toxicity"


def test_heavy_detectors_run_off_the_event_loop_thread() -> None:
    threads: list[str] = []

    class Heavy(FakeDetector):
        def detect(self, text: str, start: int = 0) -> list[Finding]:
            threads.append(threading.current_thread().name)
            return super().detect(text, start)

    scanner = Scanner(
        {"fast": FakeDetector(name="fast"), "heavy": Heavy(name="heavy", cost="heavy")}
    )

    async def main() -> Scan:
        return await scanner.scan("FLAG here", ["fast", "heavy"], "response")

    scan = asyncio.run(main())
    scanner.close()
    assert threads[0].startswith("guardline-detector")
    assert {f.detector for f in scan.findings} == {"fast", "heavy"}


def test_windows_see_left_context_but_keep_only_their_own_findings() -> None:
    detector = FakeDetector(name="ctx", pattern=r"FLAG\d", context_chars=10)
    scanner = Scanner({"ctx": detector})
    text = "FLAG1 abc FLAG2 def"
    scan = asyncio.run(scanner.scan(text, ["ctx"], "request", start=6, end=len(text)))
    assert [(text[f.start : f.end], f.direction) for f in scan.findings] == [("FLAG2", "request")]
    assert detector.seen == [text]  # it saw the context before the window...
    assert detector.calls == ["abc FLAG2 def"]  # ...and was asked about the window only


def test_detector_errors_are_reported_not_raised() -> None:
    scanner = Scanner({"bad": FakeDetector(name="bad", error=ValueError("boom"))})
    assert scanner.scan_sync("text", ["bad"]).errors == {"bad": "ValueError"}
