"""What the simulator answers: scenarios, scripted replies and injected faults.

A request's plan is built from, lowest to highest precedence: the simulator's settings,
the first matching rule of the script file, a ``[sim:...]`` tag in the last user message,
and ``x-sim-*`` request headers:

    x-sim-scenario      default | echo | pii | toxic | stereotype
    x-sim-reply         literal reply text (UTF-8)
    x-sim-chunks        JSON list of strings: the reply, chunked exactly so when streamed
    x-sim-chunks-b64    the same list, base64-encoded (survives guard-mode header scanning)
    x-sim-tool-call     JSON object: answer with a call of the request's first tool
    x-sim-fault         429 | 500 | status=NNN | slow | hang | disconnect | malformed |
                        truncate | stall
    x-sim-fault-after   streamed content chunks sent before a mid-stream fault (default 2)
    x-sim-delay-ms      how long ``slow`` waits (default 3000)
    x-sim-retry-after   Retry-After seconds for 429 (default 1)
    x-sim-ttft-ms / x-sim-token-delay-ms    timing overrides

A canned answer queued with ``POST /_sim/canned`` (see ``guardline.simulator.app``) takes
precedence over all of this: its request gets no plan, only those exact bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from guardline.errors import ConfigError
from guardline.settings import SimulatorSettings

SCENARIOS: dict[str, str | None] = {
    "default": None,  # generated from the prompt and seed
    "echo": None,  # repeats the last user message
    "pii": (
        "Sure. You can reach Dana Whitfield at dana.whitfield@example.com or "
        "+1 (415) 555-0137. The card on file is 4111 1111 1111 1111 and the refund goes to "
        "IBAN GB82 WEST 1234 5698 7654 32. Her SSN is 536-22-8571 and she last signed in "
        "from 203.0.113.42."
    ),
    "toxic": (
        "You are a worthless idiot and everyone thinks your stupid ideas are garbage. "
        "Shut up and stop wasting my time, you pathetic moron."
    ),
    "stereotype": (
        "Women are too emotional to lead engineering teams. The nurse said she would be "
        "late, and the engineer said he would fix the build himself."
    ),
}

FAULTS = frozenset({"slow", "hang", "disconnect", "malformed", "truncate", "stall"})
_TAG = re.compile(r"\[sim:([a-z_]+)(?:=([^\]]*))?\]")


@dataclass(frozen=True, slots=True)
class Plan:
    scenario: str = "default"
    reply: str | None = None
    chunks: tuple[str, ...] | None = None
    tool_call: dict[str, Any] | None = None
    fault: str | None = None
    status: int | None = None
    fault_after: int = 2
    delay_ms: float = 3000.0
    retry_after: int = 1
    ttft_ms: float = 0.0
    token_delay_ms: float = 0.0


class Rule(BaseModel):
    """One script rule: when ``match`` (a regex) finds the last user message, apply the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str
    scenario: str | None = None
    reply: str | None = None
    chunks: tuple[str, ...] | None = None
    tool_call: dict[str, Any] | None = None
    fault: str | None = None
    fault_after: int | None = None
    ttft_ms: float | None = None
    token_delay_ms: float | None = None

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str) -> str:
        re.compile(value)
        return value

    def changes(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(exclude={"match"}).items() if v is not None}


def load_script(path: Path) -> list[Rule]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        if not isinstance(data, list):
            raise ConfigError(f"simulator script {path}: expected a list of rules")
        return [Rule.model_validate(item) for item in data]
    except (OSError, yaml.YAMLError, ValidationError, re.error) as exc:
        raise ConfigError(f"simulator script {path}: {exc}") from None


class Planner:
    """Turns a request into a Plan. The default scenario can change at run time."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.base = Plan(
            scenario=settings.scenario,
            ttft_ms=settings.ttft_ms,
            token_delay_ms=settings.token_delay_ms,
        )
        self.rules = load_script(settings.script) if settings.script else []
        check_scenario(settings.scenario)

    def set_scenario(self, name: str) -> None:
        check_scenario(name)
        self.base = replace(self.base, scenario=name)

    def plan(self, last_user: str, headers: Mapping[str, str]) -> Plan:
        changes: dict[str, Any] = {}
        for rule in self.rules:
            if re.search(rule.match, last_user):
                changes.update(rule.changes())
                break
        for name, value in _TAG.findall(last_user):
            changes.update(_directive(name, value))
        for name, value in headers.items():
            if name.startswith("x-sim-"):
                changes.update(_directive(name[6:].replace("-", "_"), value))
        if "scenario" in changes:
            check_scenario(changes["scenario"])
        fault = changes.get("fault")
        if fault is not None:
            changes.update(_fault(str(fault)))
        return replace(self.base, **changes)


def check_scenario(name: str) -> None:
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")


def _directive(name: str, value: str) -> dict[str, Any]:
    try:
        if name in ("scenario", "reply", "fault"):
            return {name: value}
        if name in SCENARIOS:  # the tag [sim:pii] is short for [sim:scenario=pii]
            return {"scenario": name}
        if name in FAULTS or name.isdigit():
            return {"fault": name}
        if name in ("chunks", "chunks_b64"):
            # base64: a scripted reply holding PII survives Guardline's guard-mode scan of
            # request headers (which would redact a plain one on its way here).
            chunks = orjson.loads(base64.b64decode(value) if name == "chunks_b64" else value)
            if not isinstance(chunks, list) or not all(isinstance(c, str) for c in chunks):
                raise ValueError("x-sim-chunks must be a JSON list of strings")
            return {"chunks": tuple(chunks)}
        if name == "tool_call":
            args = orjson.loads(value)
            if not isinstance(args, dict):
                raise ValueError("x-sim-tool-call must be a JSON object")
            return {"tool_call": args}
        if name in ("fault_after", "retry_after"):
            return {name: int(value)}
        if name in ("ttft_ms", "token_delay_ms", "delay_ms"):
            return {name: float(value)}
    except (orjson.JSONDecodeError, TypeError, binascii.Error) as exc:
        raise ValueError(f"bad simulator directive {name}: {exc}") from None
    return {}


def _fault(value: str) -> dict[str, Any]:
    status = value.removeprefix("status=")
    if status.isdigit():
        return {"fault": "status", "status": int(status)}
    if value not in FAULTS:
        raise ValueError(
            f"unknown fault {value!r}; one of 429, 500, status=NNN, {', '.join(sorted(FAULTS))}"
        )
    return {"fault": value}
