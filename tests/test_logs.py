"""Log lines: JSON with the request id, and keys and card numbers masked whatever the source."""

from __future__ import annotations

import json
import logging

from guardline import logs


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("guardline.proxy", logging.WARNING, __file__, 1, message, args, None)


def test_json_lines_carry_the_request_id() -> None:
    token = logs.request_id.set("req-42")
    try:
        line = logs.JsonFormatter().format(_record("upstream %s failed", "openai"))
    finally:
        logs.request_id.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "upstream openai failed"
    assert entry["request_id"] == "req-42"
    assert entry["level"] == "warning"
    assert entry["logger"] == "guardline.proxy"
    assert entry["time"].endswith("Z")


def test_keys_bearer_tokens_and_valid_cards_are_masked() -> None:
    text = (
        "auth failed for sk-proj-AbC123xyz789 (Authorization: Bearer abc.def-ghi_jkl) "
        "card 4111 1111 1111 1111, order 1234567890123 ok"
    )
    masked = logs.scrub(text)
    assert "sk-proj-AbC123xyz789" not in masked
    assert "abc.def-ghi_jkl" not in masked
    assert "4111 1111 1111 1111" not in masked
    assert "[card]" in masked
    assert "1234567890123" in masked  # not Luhn-valid: an order number stays readable


def test_text_format_masks_too() -> None:
    line = logs.TextFormatter().format(_record("key x-api-key: sk-ant-api03-secretsecret"))
    assert "secretsecret" not in line
