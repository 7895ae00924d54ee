"""Wilson and Newcombe intervals against published values."""

from __future__ import annotations

import math

import pytest

from guardline.reeval.stats import newcombe, wilson


@pytest.mark.parametrize(
    ("count", "n", "low", "high"),
    [
        # Newcombe (1998), Table I: 81/263, 15/148, 0/20, 1/29 (Wilson score, no continuity)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombes_table(count: int, n: int, low: float, high: float) -> None:
    rate = wilson(count, n)
    assert rate.rate == count / n
    assert (round(rate.low, 4), round(rate.high, 4)) == (low, high)


def test_newcombe_difference_matches_the_paper() -> None:
    """Newcombe (1998) example: 56/70 vs 48/80, method 10 gives 0.0524 to 0.3339."""
    diff = newcombe(wilson(56, 70), wilson(48, 80))
    assert round(diff.value, 4) == 0.2
    assert (round(diff.low, 4), round(diff.high, 4)) == (0.0524, 0.3339)
    assert diff.significant


def test_no_difference_is_not_significant_and_empty_sets_are_unknown() -> None:
    assert not newcombe(wilson(10, 100), wilson(12, 100)).significant
    empty = newcombe(wilson(0, 0), wilson(5, 10))
    assert math.isnan(empty.value)
    assert not empty.significant
    with pytest.raises(ValueError, match="outside"):
        wilson(5, 4)
