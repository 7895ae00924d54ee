"""The command line, as real processes: the forms external checks rely on, one-line
errors for a bad config or a port in use, --help for every option."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from guardline.cli import _parser
from tests.conftest import anthropic_client, openai_client

GUARDLINE = str(Path(sys.executable).with_name("guardline"))
MSG = [{"role": "user", "content": "hello"}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ok(url: str, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited early: {proc.communicate()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


@contextmanager
def _process(*args: str, **settings: str) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDLINE_")} | settings
    proc = subprocess.Popen(
        [GUARDLINE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.communicate()


def _one_line_error(*args: str) -> str:
    result = subprocess.run(
        [GUARDLINE, *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("guardline: error: ")
    return lines[0]


def test_documented_forms_run_end_to_end() -> None:
    sim_port, proxy_port = _free_port(), _free_port()
    with _process("simulate", "--host", "127.0.0.1", "--port", str(sim_port)) as sim:
        _wait_ok(f"http://127.0.0.1:{sim_port}/_sim/health", sim)
        upstream = f"http://127.0.0.1:{sim_port}"
        with _process(
            "serve", "--host", "127.0.0.1", "--port", str(proxy_port), "--upstream", upstream
        ) as gw:
            base = f"http://127.0.0.1:{proxy_port}"
            _wait_ok(base + "/readyz", gw)
            with openai_client(base) as client:
                chunks = list(
                    client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
                )  # type: ignore[arg-type]
                assert chunks[-1].choices[0].finish_reason == "stop"
            with anthropic_client(base) as aclient:
                message = aclient.messages.create(
                    model="claude-haiku-4-5", max_tokens=50, messages=MSG
                )  # type: ignore[arg-type]
                assert message.content[0].text  # type: ignore[union-attr]
            gw.send_signal(signal.SIGTERM)
            assert gw.wait(15) == 0
            _, err = gw.communicate()
            assert f"listening on {base}" in err
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(15) == 0


def test_sigterm_lets_an_in_flight_stream_finish() -> None:
    """Graceful termination: SIGTERM stops new work but the stream being served completes."""
    sim_port, proxy_port = _free_port(), _free_port()
    with _process(
        "simulate", "--port", str(sim_port), "--ttft-ms", "0", "--token-delay-ms", "50"
    ) as sim:
        _wait_ok(f"http://127.0.0.1:{sim_port}/_sim/health", sim)
        with _process(
            "serve", "--port", str(proxy_port), "--upstream", f"http://127.0.0.1:{sim_port}"
        ) as gw:
            base = f"http://127.0.0.1:{proxy_port}"
            _wait_ok(base + "/readyz", gw)
            chunks = [f"w{i} " for i in range(20)]  # ~1 s of streaming
            with openai_client(base, timeout=10) as client:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=MSG,  # type: ignore[arg-type]
                    stream=True,
                    extra_headers={"x-sim-chunks": json.dumps(chunks)},
                )
                received = [next(iter(stream)).choices[0].delta.content or ""]
                gw.send_signal(signal.SIGTERM)
                received += [c.choices[0].delta.content or "" for c in stream]
            assert "".join(received) == "".join(chunks)
            assert gw.wait(15) == 0


def test_demo_prints_base_url_and_a_working_snippet() -> None:
    port = _free_port()
    with _process("demo", "--port", str(port), "--ttft-ms", "0", "--token-delay-ms", "0") as demo:
        base = f"http://127.0.0.1:{port}"
        _wait_ok(base + "/readyz", demo)
        assert demo.stdout is not None
        banner = "".join(demo.stdout.readline() for _ in range(8))
        assert f'OpenAI(base_url="{base}/v1"' in banner
        assert f'Anthropic(base_url="{base}"' in banner
        with openai_client(base) as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Hello [sim:pii]"}],
            )
        assert "dana.whitfield@example.com" in (reply.choices[0].message.content or "")


def test_demo_in_guard_mode_from_the_environment() -> None:
    """Guard mode switched on with one environment variable, end to end in the demo."""
    port = _free_port()
    settings = {"GUARDLINE_POLICY__RESPONSE__PII__MODE": "guard"}
    with _process(
        "demo", "--port", str(port), "--ttft-ms", "0", "--token-delay-ms", "0", **settings
    ) as demo:
        base = f"http://127.0.0.1:{port}"
        _wait_ok(base + "/readyz", demo)
        with openai_client(base) as client:
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Hello [sim:pii]"}],
                stream=True,
            )
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    for value in (
        "dana.whitfield@example.com",
        "555-0137",
        "4111 1111 1111 1111",
        "536-22-8571",
        "203.0.113.42",
    ):
        assert value not in text
    assert "<EMAIL_ADDRESS>" in text


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_error("serve", "--port", str(port), "--upstream", "http://127.0.0.1:1")
    assert (
        line
        == f"guardline: error: cannot listen on 127.0.0.1:{port}: Address already in use (choose another --port)"
    )


def test_an_unwritable_samples_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only root filesystem without the data volume: a clear error, not a traceback
    (a regular file stands in for the read-only parent, which root could still write)."""
    blocker = tmp_path / "read-only"
    blocker.write_text("")
    monkeypatch.setenv("GUARDLINE_SAMPLES__JSONL__DIRECTORY", str(blocker / "samples"))
    result = subprocess.run(
        [GUARDLINE, "serve", "--port", "0", "--upstream", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after the detectors' startup log lines
    assert last.startswith(f"guardline: error: cannot use the samples directory {blocker}")


def test_bad_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("routes: [{provider: openai, upstream: nowhere}]\n")
    line = _one_line_error("serve", "--config", str(config))
    assert "routes[0].upstream: unknown upstream 'nowhere'" in line
    assert _one_line_error("serve", "--upstream", "localhost:9000").startswith(
        "guardline: error: --upstream:"
    )
    assert "No such file" in _one_line_error("simulate", "--config", str(tmp_path / "missing.yaml"))


def test_every_option_is_explained() -> None:
    def commands(
        parser: argparse.ArgumentParser, prefix: str = ""
    ) -> dict[str, argparse.ArgumentParser]:
        found = {}
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[prefix + name] = sub
                    found.update(commands(sub, prefix + name + " "))
        return found

    found = commands(_parser())
    assert set(found) == {
        "serve",
        "simulate",
        "demo",
        "eval",
        "eval detectors",
        "datasets",
        "datasets export",
        "datasets consume",
        "reeval",
        "reeval run",
        "reeval receiver",
        "reeval worker",
    }
    for name, sub in found.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert len(action.help or "") > 10, f"{name} {action.option_strings}"
    result = subprocess.run(
        [GUARDLINE, "serve", "--help"], capture_output=True, text=True, check=True
    )
    for option in ("--host", "--port", "--upstream", "--config", "--log-level"):
        assert re.search(rf"{option}\b", result.stdout)


@pytest.mark.parametrize(
    "args", [["--version"], ["serve", "--help"], ["simulate", "--help"], ["demo", "--help"]]
)
def test_help_and_version_exit_zero(args: list[str]) -> None:
    assert subprocess.run([GUARDLINE, *args], capture_output=True, check=False).returncode == 0
