"""Guardline: an LLM guardrail proxy and online monitoring agent."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
