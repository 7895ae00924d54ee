"""Policy: what to do about findings. Decides; does not detect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from guardline.detectors.base import Direction, Finding
from guardline.detectors.engine import Scan
from guardline.errors import ConfigError
from guardline.settings import Action, Mode, PolicySettings, RuleSettings


@dataclass(frozen=True, slots=True)
class Rule:
    mode: Mode
    action: Action
    threshold: float
    categories: tuple[str, ...]
    on_error: str

    @classmethod
    def of(cls, s: RuleSettings) -> Rule:
        return cls(s.mode, s.action, s.threshold, s.categories, s.on_error)

    def covers(self, finding: Finding) -> bool:
        return finding.score >= self.threshold and (
            not self.categories or finding.category in self.categories
        )


@dataclass(frozen=True, slots=True)
class Policy:
    request: Mapping[str, Rule]
    response: Mapping[str, Rule]
    _names: dict[tuple[str, str], tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Asked for on every call and stream window; a resolved policy never changes.
        names = {
            (direction, mode): tuple(n for n, r in rules.items() if r.mode == mode)
            for direction, rules in (("request", self.request), ("response", self.response))
            for mode in ("monitor", "guard")
        }
        object.__setattr__(self, "_names", names)

    def rules(self, direction: Direction) -> Mapping[str, Rule]:
        return self.request if direction == "request" else self.response

    def names(self, direction: Direction, mode: Mode) -> tuple[str, ...]:
        return self._names[direction, mode]


@dataclass(slots=True)
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    """What the rules cover (recorded whatever the action)."""
    redact: list[Finding] = field(default_factory=list)
    blocked: Finding | None = None
    failed: str | None = None
    """A detector that raised under a rule that fails closed."""

    @property
    def stop(self) -> bool:
        return self.blocked is not None or self.failed is not None


def judge(scan: Scan, rules: Mapping[str, Rule]) -> Verdict:
    verdict = Verdict()
    for finding in scan.findings:
        rule = rules.get(finding.detector)
        if rule is None or not rule.covers(finding):
            continue
        verdict.findings.append(finding)
        if rule.mode != "guard":
            continue
        if rule.action == "block" and verdict.blocked is None:
            verdict.blocked = finding
        elif rule.action == "redact":
            verdict.redact.append(finding)
    for name in scan.errors:
        rule = rules.get(name)
        if rule is not None and rule.mode == "guard" and rule.on_error == "block":
            verdict.failed = verdict.failed or name
    return verdict


class PolicyBook:
    """The configured base policy and its overrides, resolved per call (and cached)."""

    def __init__(self, settings: PolicySettings, detectors: Iterable[str]) -> None:
        known = set(detectors)
        self._settings = settings
        for where, rules in _all_rules(settings):
            for name in rules:
                if name not in known:
                    raise ConfigError(
                        f"{where}.{name}: no detector named {name!r} is enabled; "
                        f"enabled: {', '.join(sorted(known)) or 'none'}"
                    )
        self._base = {
            direction: {
                name: _merge(DEFAULT_RULES.get(name, RuleSettings()), given.get(name))
                for name in known
            }
            for direction, given in (("request", settings.request), ("response", settings.response))
        }
        self.resolve = lru_cache(maxsize=1024)(self._resolve)

    def _resolve(self, provider: str, path: str, model: str | None, app: str | None) -> Policy:
        rules: dict[str, dict[str, RuleSettings]] = {d: dict(r) for d, r in self._base.items()}
        for override in self._settings.overrides:
            m = override.match
            if (
                (m.provider and m.provider != provider)
                or (m.paths and not path.startswith(m.paths))
                or (m.model_prefix and (model is None or not model.startswith(m.model_prefix)))
                or (m.apps and app not in m.apps)
            ):
                continue
            for direction, changes in (
                ("request", override.request),
                ("response", override.response),
            ):
                for name, fields in changes.items():
                    current = rules[direction].get(name, RuleSettings())
                    rules[direction][name] = current.model_copy(update=fields)
        return Policy(
            {n: Rule.of(r) for n, r in rules["request"].items()},
            {n: Rule.of(r) for n, r in rules["response"].items()},
        )


DEFAULT_RULES = {"pii": RuleSettings(action="redact")}
"""Built-in rules: monitor everything; PII findings redact (in records, and in traffic once
a rule turns guard mode on). Any other detector: monitor, flag."""


def _merge(base: RuleSettings, given: RuleSettings | None) -> RuleSettings:
    if given is None:
        return base
    return base.model_copy(update=given.model_dump(include=given.model_fields_set))


def _all_rules(settings: PolicySettings) -> list[tuple[str, Mapping[str, object]]]:
    out: list[tuple[str, Mapping[str, object]]] = [
        ("policy.request", settings.request),
        ("policy.response", settings.response),
    ]
    for i, override in enumerate(settings.overrides):
        out += [
            (f"policy.overrides[{i}].request", override.request),
            (f"policy.overrides[{i}].response", override.response),
        ]
    return out
