"""An LLM judge: each sample's (redacted) prompt and answer go to a model through one of
the configured upstreams, which answers with a JSON verdict. It sees an even sample of at
most ``reeval.judge.max_samples`` per set; the report shows its prompt template."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from guardline.errors import GuardlineError
from guardline.reeval.chat import Chat, ChatError
from guardline.settings import Settings

_OBJECT = re.compile(r"\{.*\}", re.S)


class JudgeError(GuardlineError):
    """The judge's upstream failed or answered something that is not a verdict."""


def verdict(text: str) -> dict[str, float]:
    """``{category: score}`` when the answer flags the sample, ``{}`` when it does not."""
    match = _OBJECT.search(text)
    try:
        data = orjson.loads(match.group(0)) if match else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("flagged"), bool):
        raise JudgeError(f"the judge's answer is not a verdict: {text[:200]!r}")
    if not data["flagged"]:
        return {}
    category = str(data.get("category") or "flagged")[:40].strip().lower() or "flagged"
    score = data.get("score", 1.0)
    return {category: float(score) if isinstance(score, (int, float)) else 1.0}


class Judge:
    name = "judge"
    kind = "llm-judge"

    def __init__(self, settings: Settings) -> None:
        judge = settings.reeval.judge
        self._chat = Chat(settings, judge.upstream, judge.model, judge.timeout, "reeval.judge")
        self.prompt = judge.prompt
        self.limit: int | None = judge.max_samples
        self.backend = self._chat.backend

    def describe(self) -> dict[str, Any]:
        return {"model": self._chat.model, "upstream": self.backend, "prompt": self.prompt}

    def score(self, record: Mapping[str, Any]) -> dict[str, float]:
        prompt, response = record.get("prompt"), record.get("response")
        if not isinstance(prompt, str) or not isinstance(response, str):
            return {}  # withheld text: nothing to judge
        try:
            return verdict(
                self._chat.complete(self.prompt.format(prompt=prompt, response=response))
            )
        except ChatError as exc:
            raise JudgeError(f"judge call failed: {exc}") from None

    def close(self) -> None:
        self._chat.close()
