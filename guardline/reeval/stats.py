"""Rates with confidence intervals, window against baseline.

Wilson's score interval for a proportion (it stays inside [0, 1] and behaves at 0 and n
successes, where the textbook normal interval does not), and Newcombe's hybrid score
interval for the difference of two independent proportions (method 10 of Newcombe 1998),
built from the two Wilson intervals. A difference is *significant* when its interval
excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    count: int
    n: int
    rate: float
    low: float
    high: float

    def public(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "n": self.n,
            "rate": self.rate,
            "low": self.low,
            "high": self.high,
        }


def wilson(count: int, n: int, z: float = Z95) -> Rate:
    if not 0 <= count <= n:
        raise ValueError(f"count {count} outside 0..{n}")
    if n == 0:
        return Rate(0, 0, math.nan, 0.0, 1.0)
    p = count / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Rate(count, n, p, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Difference:
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def public(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def newcombe(a: Rate, b: Rate) -> Difference:
    """The interval of ``a.rate - b.rate``; (nan, -1, 1) when either set is empty."""
    if a.n == 0 or b.n == 0:
        return Difference(math.nan, -1.0, 1.0)
    d = a.rate - b.rate
    low = d - math.sqrt((a.rate - a.low) ** 2 + (b.high - b.rate) ** 2)
    high = d + math.sqrt((a.high - a.rate) ** 2 + (b.rate - b.low) ** 2)
    return Difference(d, max(-1.0, low), min(1.0, high))
