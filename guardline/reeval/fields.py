"""Reading a job summary tolerantly (a report renders whatever parts are present) and
the formatting the report and its charts share."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def map_of(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def list_of(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def num(value: Any) -> float | None:
    """A finite number, else None (orjson writes NaN, e.g. a rate of 0 samples, as null)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def rate(row: Any, side: str) -> float | None:
    return num(map_of(map_of(row).get(side)).get("rate"))


def signed_difference(row: Any) -> float | None:
    value = num(map_of(map_of(row).get("difference")).get("value"))
    if value is None:
        window, baseline = rate(row, "window"), rate(row, "baseline")
        if window is not None and baseline is not None:
            value = window - baseline
    return value


def difference(row: Any) -> float:
    """Size of the change, for sorting (unknown sorts last)."""
    value = signed_difference(row)
    return -1.0 if value is None else abs(value)


def label(row: Any) -> str:
    evaluator, category = map_of(row).get("evaluator"), map_of(row).get("category")
    if not category or category == evaluator:
        return str(evaluator or "?")
    return f"{evaluator}:{category}" if evaluator else str(category)


def shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(value: Any, *, short: bool = False, escape: bool = True) -> str:
    """An ISO 8601 time shown in UTC; anything unparsable is shown as it is."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        text = "—" if value is None else str(value)
    else:
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        text = moment.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S UTC")
    return e(text) if escape else text


def e(value: Any) -> str:
    return "—" if value is None else html.escape(str(value), quote=True)
