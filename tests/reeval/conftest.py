"""Fixtures of the re-evaluation tests."""

from __future__ import annotations

import pytest

from tests.reeval.traffic import LARGE, Traffic, make_traffic


@pytest.fixture(scope="session")
def large_traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    """1,000 normal then 1,000 toxic calls (8 clients at once), all sampled."""
    return make_traffic(tmp_path_factory.mktemp("large-samples"), LARGE, threads=8)
