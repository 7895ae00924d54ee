"""An LLM judge: each sample's (redacted) prompt and answer go to a model through one of
the configured upstreams, which answers with a JSON verdict. It sees an even sample of at
most ``reeval.judge.max_samples`` per set; the report shows its prompt template."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from guardline.errors import ConfigError, GuardlineError
from guardline.settings import Settings, env_secret

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
        upstream = settings.upstreams.get(judge.upstream)
        if upstream is None:
            raise ConfigError(f"reeval.judge.upstream: no upstream named {judge.upstream!r}")
        if upstream.provider != "openai":
            raise ConfigError(
                "reeval.judge.upstream must speak the OpenAI chat completions API "
                f"(upstream {judge.upstream!r} is {upstream.provider})"
            )
        headers = dict(upstream.headers)
        if upstream.api_key_env:
            key = env_secret(upstream.api_key_env)
            if key is None:
                raise ConfigError(f"reeval.judge: ${upstream.api_key_env} is not set")
            headers["authorization"] = f"Bearer {key}"
        self.url = upstream.base_url.rstrip("/") + "/chat/completions"
        self.model = judge.model
        self.prompt = judge.prompt
        self.limit: int | None = judge.max_samples
        self.backend = f"{judge.model} via upstream {judge.upstream}"
        self._client = httpx.Client(
            headers=headers,
            timeout=judge.timeout,
            verify=str(upstream.ca_bundle) if upstream.ca_bundle else True,
        )

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "upstream": self.backend, "prompt": self.prompt}

    def score(self, record: Mapping[str, Any]) -> dict[str, float]:
        prompt, response = record.get("prompt"), record.get("response")
        if not isinstance(prompt, str) or not isinstance(response, str):
            return {}  # withheld text: nothing to judge
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "user", "content": self.prompt.format(prompt=prompt, response=response)}
            ],
        }
        for attempt in (1, 2):
            try:
                answer = self._client.post(self.url, json=body)
                answer.raise_for_status()
                return verdict(str(answer.json()["choices"][0]["message"]["content"]))
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
                if attempt == 2:
                    raise JudgeError(f"judge call failed: {exc}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._client.close()
