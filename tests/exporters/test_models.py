"""Model-name normalisation: the canonical names behind metric labels and price keys."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardline.exporters.models import MAX_LENGTH, model_label, normalise_model

CASES = [
    # plain names keep their version numbers
    ("gpt-4o", "gpt-4o"),
    ("gpt-4.1-mini", "gpt-4.1-mini"),
    ("o4-mini", "o4-mini"),
    ("claude-sonnet-4-5", "claude-sonnet-4-5"),
    ("gpt-oss-20b", "gpt-oss-20b"),
    ("deepseek-v3", "deepseek-v3"),
    ("qwen2.5:7b", "qwen2.5:7b"),
    # snapshot numbers that are not dates stay
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo-0125"),
    ("mistral-large-2407", "mistral-large-2407"),
    # dates
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("o1-2024-12-17", "o1"),
    ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("gpt-4o-audio-preview-2024-12-17", "gpt-4o-audio-preview"),
    # aliases
    ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
    ("llama3.1:latest", "llama3.1"),
    ("gpt-4o-2024-08-06-latest", "gpt-4o"),
    # case, whitespace, provider prefixes and paths
    ("  GPT-4o  ", "gpt-4o"),
    ("openai/gpt-4o", "gpt-4o"),
    ("Anthropic/Claude-3-5-Sonnet-20241022", "claude-3-5-sonnet"),
    ("azure/gpt-4.1-nano", "gpt-4.1-nano"),
    ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku"),
    ("accounts/fireworks/models/llama-v3p1-8b", "llama-v3p1-8b"),
    ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),  # routers spell Claude with dots
    # Bedrock ids, with region prefixes and context-window variants
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
    ("anthropic.claude-3-haiku-20240307-v1:0:200k", "claude-3-haiku"),
    ("meta.llama3-1-70b-instruct-v1:0", "llama3-1-70b-instruct"),
    (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
        "us.anthropic.claude-sonnet-4-20250514-v1:0",
        "claude-sonnet-4",
    ),
    # Vertex AI versions
    ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2"),
    # fine-tunes run on their base model
    ("ft:gpt-4o-mini-2024-07-18:my-org::9abcDEF1", "gpt-4o-mini"),
    ("ft:gpt-4o-mini:org:custom-suffix:id", "gpt-4o-mini"),
    ("davinci-002:ft-personal-2023-08-01-00-00-00", "davinci-002"),
    # odd characters become _
    ("gpt 4o", "gpt_4o"),
    ("my+deployment!", "my_deployment_"),
    ("模型", "__"),
    # nothing left
    ("", "unknown"),
    ("   ", "unknown"),
    ("openai/", "unknown"),
    ("ft:", "unknown"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_normalise_model(raw: str, expected: str) -> None:
    assert normalise_model(raw) == expected


def test_length_is_capped() -> None:
    assert normalise_model("x" * 200) == "x" * MAX_LENGTH
    # Over the cache threshold too: the uncached path gives the same answer.
    assert normalise_model("openai/" + "y" * 10_000) == "y" * MAX_LENGTH


def test_a_cut_that_exposes_a_date_is_stripped_too() -> None:
    name = "m" * (MAX_LENGTH - 11) + "-2024-08-06" + "-extra"
    assert normalise_model(name) == "m" * (MAX_LENGTH - 11)


@pytest.mark.parametrize("missing", [None, ""])
def test_model_label_of_a_missing_model(missing: str | None) -> None:
    assert model_label(missing) == "unknown"


def test_model_label_normalises() -> None:
    assert model_label("openai/gpt-4o-2024-08-06") == "gpt-4o"


FRAGMENTS = [
    "gpt-4o", "claude-3.5-sonnet", "anthropic.", "us.", "openai/", "ft:", ":org::id",
    "-2024-08-06", "-20241022", "-latest", ":latest", "-v1:0", "@20250929", "-mini",
    "ĞPT", " ", "/", ".", "-", ":", "x" * 30,
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join) | st.text(max_size=80))
def test_normalised_names_are_bounded_and_normalise_to_themselves(raw: str) -> None:
    name = normalise_model(raw)
    assert re.fullmatch(r"[a-z0-9._:-]{1,64}", name)
    # Price keys and labels are normalised again downstream; that must be a no-op.
    assert normalise_model(name) == name
