"""One chat completion through a configured upstream (OpenAI-compatible), for the jobs'
LLM judge and candidate replay: the upstream's own base URL, headers, CA bundle and key
(from its ``api_key_env``), a bounded timeout and one retry."""

from __future__ import annotations

import httpx

from guardline.errors import ConfigError, GuardlineError
from guardline.settings import Settings, env_secret


class ChatError(GuardlineError):
    """The upstream failed twice, or answered something that is not a chat completion."""


class Chat:
    def __init__(
        self, settings: Settings, upstream_name: str, model: str, timeout: float, what: str
    ) -> None:
        upstream = settings.upstreams.get(upstream_name)
        if upstream is None:
            raise ConfigError(f"{what}.upstream: no upstream named {upstream_name!r}")
        if upstream.provider != "openai":
            raise ConfigError(
                f"{what}.upstream must speak the OpenAI chat completions API "
                f"(upstream {upstream_name!r} is {upstream.provider})"
            )
        headers = dict(upstream.headers)
        if upstream.api_key_env:
            key = env_secret(upstream.api_key_env)
            if key is None:
                raise ConfigError(f"{what}: ${upstream.api_key_env} is not set")
            headers["authorization"] = f"Bearer {key}"
        self.url = upstream.base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.backend = f"{model} via upstream {upstream_name}"
        self._client = httpx.Client(
            headers=headers,
            timeout=timeout,
            verify=str(upstream.ca_bundle) if upstream.ca_bundle else True,
        )

    def complete(self, content: str) -> str:
        """The model's answer to one user message (temperature 0)."""
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [{"role": "user", "content": content}],
        }
        problem: Exception | None = None
        for _ in range(2):
            try:
                answer = self._client.post(self.url, json=body)
                answer.raise_for_status()
                return str(answer.json()["choices"][0]["message"]["content"])
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
                problem = exc
        raise ChatError(f"{self.backend}: {problem}")

    def close(self) -> None:
        self._client.close()
