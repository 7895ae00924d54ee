"""Provider adapters, and how a request is assigned to one."""

from __future__ import annotations

from guardline.exchange import Endpoint
from guardline.proxy.adapters.anthropic import AnthropicAdapter
from guardline.proxy.adapters.base import (
    Adapter,
    ChannelKey,
    StreamState,
    TextRef,
    endpoint_for,
)
from guardline.proxy.adapters.openai import OpenAIAdapter
from guardline.settings import Provider

ADAPTERS: dict[Provider, Adapter] = {"openai": OpenAIAdapter(), "anthropic": AnthropicAdapter()}


def provider_for(path: str, headers: list[tuple[bytes, bytes]]) -> Provider:
    """Anthropic for /v1/messages* and for any call carrying ``anthropic-version`` (the
    Anthropic SDK always sends it; both vendors serve /v1/models); OpenAI otherwise."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    for name, _ in headers:
        if name == b"anthropic-version":
            return "anthropic"
    return "openai"


__all__ = [
    "ADAPTERS",
    "Adapter",
    "ChannelKey",
    "Endpoint",
    "StreamState",
    "TextRef",
    "endpoint_for",
    "provider_for",
]
