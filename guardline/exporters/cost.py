"""The price table: USD per million tokens per model, and the cost of one call's usage.

The shipped table (``prices.yaml`` beside this module) is merged with the user's
``telemetry.prices_file``, model by model. Lookups go through ``normalise_model``, so
``openai/gpt-4o-2024-08-06`` is priced as ``gpt-4o``. An unknown model has no cost
(``None``), never a silent zero.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from guardline.errors import ConfigError
from guardline.exchange import Usage
from guardline.exporters.models import model_label, normalise_model

__all__ = ["Price", "PriceTable"]

_PER = 1_000_000
_FIELDS = ("input", "output", "cached_input", "cache_write")
_REQUIRED = ("input", "output")
_TOP_LEVEL = ("as_of", "models")

# A name extending a priced one at a '-' (claude-3-5-sonnet-v2, gpt-3.5-turbo-0125) is
# usually a variant at the same price. These words in the extension mark another tier or
# product (gpt-5-pro costs 12x gpt-5, o1-mini a fourteenth of o1): no price beats a wrong one.
_OTHER_TIER = frozenset(
    {
        "pro", "max", "ultra", "mini", "nano", "lite", "small", "large",
        "realtime", "audio", "tts", "transcribe", "search", "research",
        "image", "vision", "preview", "instruct", "16k", "32k",
    }
)  # fmt: skip
# A short number extending a name is a newer version (claude-opus-4 -> claude-opus-4-6),
# priced on its own; snapshot numbers (-0125, dates) are longer.
_VERSION = re.compile(r"^\d{1,3}$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. A missing cache rate bills those tokens as plain input."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        """USD for ``usage``, whose ``input_tokens`` includes cache reads and writes."""
        # Counts come from upstream bodies; clamp so a bad report cannot yield a credit.
        total = max(usage.input_tokens, 0)
        cached = max(usage.cached_input_tokens, 0)
        written = max(usage.cache_write_tokens, 0)
        uncached = max(total - cached - written, 0)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write is None else self.cache_write
        return (
            uncached * self.input
            + cached * cached_rate
            + written * write_rate
            + max(usage.output_tokens, 0) * self.output
        ) / _PER


class PriceTable:
    """Prices by normalised model name."""

    def __init__(
        self, prices: Mapping[str, Price], as_of: str, *, unpriced_memory: int = 1000
    ) -> None:
        self._prices = dict(prices)
        self._as_of = as_of
        self._unpriced: set[str] = set()
        self._unpriced_memory = unpriced_memory

    @classmethod
    def load(cls, user_file: Path | None = None) -> PriceTable:
        """The shipped table, with ``user_file`` (same format) merged over it per model.

        Raises ConfigError naming the file, the model and the fix.
        """
        shipped = resources.files("guardline.exporters").joinpath("prices.yaml")
        as_of, prices = _parse(str(shipped), _read(shipped, str(shipped)), shipped=True)
        if user_file is not None:
            _, extra = _parse(str(user_file), _read(user_file, str(user_file)), shipped=False)
            prices.update(extra)
        return cls(prices, as_of)

    @property
    def as_of(self) -> str:
        """When the shipped prices were last checked (``YYYY-MM-DD``)."""
        return self._as_of

    @property
    def prices(self) -> Mapping[str, Price]:
        """Every configured price, by normalised model name (read-only)."""
        return MappingProxyType(self._prices)

    def lookup(self, model: str | None) -> Price | None:
        """The price of ``model``: its exact normalised name, else the longest configured
        name it extends at a ``-`` (``claude-3-5-sonnet-v2`` -> ``claude-3-5-sonnet``)
        unless the extension names another tier (see ``_OTHER_TIER``); None if unknown."""
        if not model:
            return None
        name = normalise_model(model)
        price = self._prices.get(name)
        if price is not None:
            return price
        end = name.rfind("-")
        while end > 0:
            price = self._prices.get(name[:end])
            if price is not None:
                # The longest match decides: a shorter key would extend across the same words.
                return None if _other_tier(name[end + 1 :].split("-")) else price
            end = name.rfind("-", 0, end)
        return None

    def cost(self, model: str | None, usage: Usage) -> float | None:
        """USD for one call, or None when the model has no price."""
        price = self.lookup(model)
        return None if price is None else price.cost(usage)

    def first_unpriced(self, model: str | None) -> bool:
        """True the first time an unpriced model is seen, so callers log it once.

        Remembers at most ``unpriced_memory`` models; past that it answers False, which
        also bounds the log lines a flood of made-up model names can cause.
        """
        if self.lookup(model) is not None:
            return False
        name = model_label(model)
        # Not locked: a race costs at most one duplicate log line.
        if name in self._unpriced or len(self._unpriced) >= self._unpriced_memory:
            return False
        self._unpriced.add(name)
        return True


def _other_tier(words: Iterable[str]) -> bool:
    return any(w in _OTHER_TIER or _VERSION.match(w) for w in words)


def _read(source: Path | Traversable, where: str) -> Any:
    """The parsed YAML of ``source``."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"price file {where}: {reason}; check telemetry.prices_file") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"price file {where}:{at} invalid YAML ({problem})") from None


def _parse(where: str, data: Any, *, shipped: bool) -> tuple[str, dict[str, Price]]:
    """``(as_of, prices)`` from one parsed price file; as_of is "" when absent."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"price file {where}: {message}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with a `models:` key, e.g. models: {gpt-4o: {...}}")
    unknown = [str(k) for k in data if k not in _TOP_LEVEL]
    if unknown:
        raise fail(
            f"unknown top-level key {unknown[0]!r}; "
            "the keys are as_of and models (prices go under models:)"
        )
    as_of = data.get("as_of")
    if isinstance(as_of, datetime.date):  # YAML reads an unquoted 2026-01-31 as a date
        as_of = as_of.isoformat()
    if as_of is None and shipped:
        raise fail("as_of is required")
    if as_of is not None and not isinstance(as_of, str):
        raise fail(f'as_of must be a date like "2026-01-31", got {_show(as_of)}')
    models = data.get("models")
    if not isinstance(models, dict):
        raise fail(f"models must be a mapping of model name to prices, got {_show(models)}")
    prices: dict[str, Price] = {}
    for key, entry in models.items():
        prices[_key(key, fail)] = _price(key, entry, fail)
    return as_of or "", prices


_Fail = Callable[[str], ConfigError]


def _key(key: Any, fail: _Fail) -> str:
    if not isinstance(key, str) or not key:
        raise fail(f"model {_show(key)}: model keys must be model names")
    canonical = normalise_model(key)
    if canonical != key:
        # Lookups use the normalised name; a dated or prefixed key would never match (or
        # would silently price every snapshot), so say which key it has to be.
        raise fail(
            f"model {key!r}: keys must be normalised model names; write {canonical!r} "
            "(dates and provider prefixes are dropped, so snapshots share one price)"
        )
    return key


def _price(key: str, entry: Any, fail: _Fail) -> Price:
    if not isinstance(entry, dict):
        raise fail(
            f"model {key!r}: expected a mapping like {{input: 2.5, output: 10}}, got {_show(entry)}"
        )
    for field in entry:
        if field not in _FIELDS:
            raise fail(
                f"model {key!r}: unknown field {_show(field)}; "
                "the fields are input, output, cached_input, cache_write"
            )
    for field in _REQUIRED:
        if entry.get(field) is None:
            raise fail(f"model {key!r}: {field} is required (USD per million tokens)")
    values: dict[str, float | None] = {}
    for field in _FIELDS:
        value = entry.get(field)
        if value is None:
            values[field] = None
            continue
        # bool is an int; `input: yes` is a typo, not a price.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise fail(
                f"model {key!r}: {field} must be a non-negative number of USD per million "
                f"tokens, got {_show(value)}"
            )
        values[field] = float(value)
    return Price(
        float(entry["input"]), float(entry["output"]), values["cached_input"], values["cache_write"]
    )


def _show(value: Any) -> str:
    """A short, one-line repr for error messages."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
