"""Provider adapters: where everything provider-specific is declared."""

from __future__ import annotations

from guardline.exchange import Endpoint
from guardline.proxy.adapters import channels, fields
from guardline.proxy.adapters.anthropic import AnthropicAdapter
from guardline.proxy.adapters.base import (
    Adapter,
    ChannelKey,
    StreamState,
    Text,
    TextRef,
)
from guardline.proxy.adapters.openai import OpenAIAdapter
from guardline.proxy.paths import provider_for
from guardline.settings import Provider

ADAPTERS: dict[Provider, Adapter] = {"openai": OpenAIAdapter(), "anthropic": AnthropicAdapter()}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "ChannelKey",
    "Endpoint",
    "StreamState",
    "Text",
    "TextRef",
    "channels",
    "fields",
    "provider_for",
]
