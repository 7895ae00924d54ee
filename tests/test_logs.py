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


def test_lines_carry_the_client_request_id_beside_guardline_s() -> None:
    tokens = logs.request_id.set("0123abcd" * 4), logs.client_request_id.set("order-7")
    try:
        entry = json.loads(logs.JsonFormatter().format(_record("upstream slow")))
        text = logs.TextFormatter().format(_record("upstream slow"))
        # A line naming its own request_id= keeps it; the client's id is still added.
        named = logs.TextFormatter().format(_record("failed request_id=%s", "0123abcd" * 4))
        record = _record("feedback sink failed")
        record.request_id = "another-call"  # a line about another call
        other = json.loads(logs.JsonFormatter().format(record))
    finally:
        logs.client_request_id.reset(tokens[1])
        logs.request_id.reset(tokens[0])
    assert (entry["request_id"], entry["client_request_id"]) == ("0123abcd" * 4, "order-7")
    assert text.endswith(f"upstream slow request_id={'0123abcd' * 4} client_request_id=order-7")
    assert named.count("request_id=") == 2  # its own, and client_request_id=
    assert named.endswith(" client_request_id=order-7")
    assert other["request_id"] == "another-call"
    assert "client_request_id" not in other  # not the call being served's
    # Without a client id, nothing is added.
    token = logs.request_id.set("r1")
    try:
        line = logs.TextFormatter().format(_record("client_request_id=x? no"))
        bare = json.loads(logs.JsonFormatter().format(_record("m")))
    finally:
        logs.request_id.reset(token)
    assert line.endswith("client_request_id=x? no request_id=r1")
    assert "client_request_id" not in bare


def test_a_client_request_id_is_masked_like_any_text() -> None:
    token = logs.client_request_id.set("sk-proj-AbC123xyz789")
    try:
        entry = json.loads(logs.JsonFormatter().format(_record("m")))
        text = logs.TextFormatter().format(_record("m"))
    finally:
        logs.client_request_id.reset(token)
    assert "AbC123xyz789" not in entry["client_request_id"]
    assert "AbC123xyz789" not in text


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
