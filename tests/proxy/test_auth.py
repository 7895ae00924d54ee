"""Access keys and upstream key injection; keys never reach logs or the wrong party."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import anthropic
import openai
import pytest

from guardline.errors import StartupError
from guardline.proxy.app import create_app
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, openai_client
from tests.servers import Running, proxy, proxy_settings

MSG = [{"role": "user", "content": "hi"}]
ACCESS_KEY = "gl-access-5d1c0a7e9f3b4c2a"
UPSTREAM_KEY = "sk-upstream-canary-8b3f2e61c4d9"
CLIENT_KEY = "sk-client-canary-47a9e0d2b1f6"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def injected(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Any:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    caplog.set_level(logging.DEBUG)
    settings = proxy_settings(
        sim.url, upstream={"api_key_env": "SIM_UPSTREAM_KEY"}, access_keys=[ACCESS_KEY]
    )
    with proxy(settings) as gw:
        yield gw
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    for secret in (ACCESS_KEY, UPSTREAM_KEY, CLIENT_KEY):
        assert secret not in logged


def test_access_key_as_api_key_and_injected_upstream_key(
    sim: Running[Simulator], injected: Running[Any]
) -> None:
    with openai_client(injected.url, api_key=ACCESS_KEY) as client:
        assert client.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices  # type: ignore[arg-type]
    with anthropic_client(injected.url, api_key=ACCESS_KEY) as aclient:
        assert aclient.messages.create(model="claude-haiku-4-5", max_tokens=9, messages=MSG).content  # type: ignore[arg-type]
    # The upstream saw only the injected key, never Guardline's access key.
    assert [r.auth_sha256 for r in sim.app.recorder.records] == [_sha(UPSTREAM_KEY)] * 2


@pytest.mark.parametrize("key", [None, "wrong-key", ACCESS_KEY[:-1]])
def test_missing_or_wrong_access_key_is_401(
    sim: Running[Simulator], injected: Running[Any], key: str | None
) -> None:
    # key None: the SDKs send no credential header at all.
    no_auth: dict[str, Any] = {"Authorization": openai.Omit()} if key is None else {}
    no_akey: dict[str, Any] = {"X-Api-Key": anthropic.Omit()} if key is None else {}
    with (
        openai_client(injected.url, api_key=key or "unused") as client,
        pytest.raises(openai.AuthenticationError) as got,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, extra_headers=no_auth)  # type: ignore[arg-type]
    assert got.value.response.json()["error"]["code"] == "invalid_api_key"
    with (
        anthropic_client(injected.url, api_key=key or "unused") as aclient,
        pytest.raises(anthropic.AuthenticationError) as agot,
    ):
        aclient.messages.create(
            model="claude-haiku-4-5", max_tokens=9, messages=MSG, extra_headers=no_akey
        )  # type: ignore[arg-type]
    assert agot.value.response.json()["error"]["type"] == "authentication_error"
    assert sim.app.recorder.total == 0


def test_guardline_key_header_lets_client_key_through(
    sim: Running[Simulator], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        proxy(proxy_settings(sim.url, access_keys=[ACCESS_KEY])) as gw,
        openai_client(
            gw.url, api_key=CLIENT_KEY, default_headers={"x-guardline-key": ACCESS_KEY}
        ) as client,
    ):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    record = sim.app.recorder.records[-1]
    assert record.auth_sha256 == _sha(CLIENT_KEY)
    assert "x-guardline-key" not in record.headers
    assert CLIENT_KEY not in caplog.text


def test_client_key_passes_through_by_default(sim: Running[Simulator], gw: Running[Any]) -> None:
    with anthropic_client(gw.url, api_key=CLIENT_KEY) as client:
        client.messages.create(model="claude-haiku-4-5", max_tokens=9, messages=MSG)  # type: ignore[arg-type]
    assert sim.app.recorder.records[-1].auth_sha256 == _sha(CLIENT_KEY)


def test_injected_key_replaces_client_key(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    settings = proxy_settings(sim.url, upstream={"api_key_env": "SIM_UPSTREAM_KEY"})
    with proxy(settings) as gw, openai_client(gw.url, api_key=CLIENT_KEY) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    assert sim.app.recorder.records[-1].auth_sha256 == _sha(UPSTREAM_KEY)


def test_missing_key_env_stops_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    settings = proxy_settings("http://127.0.0.1:9", upstream={"api_key_env": "NOT_SET_ANYWHERE"})
    with pytest.raises(
        StartupError,
        match=r"upstreams\.openai\.api_key_env: environment variable NOT_SET_ANYWHERE is not set",
    ):
        create_app(settings)
