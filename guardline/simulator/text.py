"""Deterministic text for the simulator: a tokenizer, a generator, prompt extraction."""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")

WORDS = [
    "the",
    "model",
    "answers",
    "every",
    "question",
    "with",
    "care",
    "and",
    "a",
    "short",
    "summary",
    "of",
    "what",
    "it",
    "found",
    "in",
    "the",
    "data",
    "while",
    "the",
    "team",
    "reviews",
    "each",
    "result",
    "before",
    "release",
    "to",
    "production",
    "users",
    "who",
    "rely",
    "on",
    "clear",
    "answers",
    "about",
    "their",
    "accounts",
    "notes",
    "travel",
    "plans",
    "weather",
    "reports",
    "recipes",
    "budgets",
    "schedules",
    "and",
    "projects",
    "so",
    "the",
    "system",
    "keeps",
    "responses",
    "brief",
    "accurate",
    "friendly",
    "useful",
    "and",
    "grounded",
    "in",
    "the",
    "documents",
    "provided",
    "by",
    "the",
    "application",
    "today",
]


def pieces(text: str) -> list[str]:
    """Split text into token-like pieces that concatenate back to exactly ``text``."""
    out = _PIECE.findall(text)
    if "".join(out) != text:  # leading/trailing oddities: keep the text exact
        return [text] if text else []
    return out


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


def generate(prompt: str, *, seed: int, model: str, tokens: int | None = None) -> str:
    """Plain sentences, the same for the same prompt, seed and model."""
    digest = hashlib.sha256(f"{seed}\x00{model}\x00{prompt}".encode()).digest()
    rng = random.Random(digest)
    target = tokens if tokens is not None else rng.randint(24, 64)
    words: list[str] = []
    sentence: list[str] = []
    count = 0
    while count < target:
        word = rng.choice(WORDS)
        sentence.append(word)
        count += 1
        if len(sentence) >= rng.randint(6, 14) or count >= target:
            text = " ".join(sentence)
            words.append(text[0].upper() + text[1:] + ".")
            count += 1  # the full stop is a piece too
            sentence = []
    return " ".join(words)


def content_text(content: Any) -> str:
    """Text of an OpenAI/Anthropic message content (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return ""


def prompt_text(body: dict[str, Any]) -> tuple[str, str]:
    """(all prompt text, last user text) of any request shape the simulator serves."""
    texts: list[str] = []
    last_user = ""
    system = body.get("system") or body.get("instructions")
    if system is not None:
        texts.append(content_text(system))
    messages = body.get("messages")
    raw_input = body.get("input")
    if isinstance(raw_input, list) and messages is None:
        messages = raw_input
    elif isinstance(raw_input, str):
        texts.append(raw_input)
        last_user = raw_input
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            text = content_text(message.get("content"))
            texts.append(text)
            if message.get("role", "user") == "user":
                last_user = text
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
        last_user = prompt
    elif isinstance(prompt, list):
        joined = "\n".join(p for p in prompt if isinstance(p, str))
        texts.append(joined)
        last_user = joined
    return "\n".join(texts), last_user
