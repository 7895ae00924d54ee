"""The built-in upstream simulator (OpenAI and Anthropic wire formats). A test and demo tool."""

from guardline.simulator.app import Simulator, create_simulator

__all__ = ["Simulator", "create_simulator"]
