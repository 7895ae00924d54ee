"""Prometheus (the Debian package's binary) on a free loopback port, scraping and
evaluating every second, with its HTTP API wrapped for tests.

Prometheus 2.42 throttles discovery: the first scrape of a target comes about 5 s after
start, so ``wait_up`` waits for ``up == 1`` rather than only for ``/-/ready``.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.broker import free_port
from tests.conftest import debian_tool


def fast_rules(rules: Mapping[str, Any], every: str = "1s", hold: str = "2s") -> dict[str, Any]:
    """``rules`` (a rule file's content) with every group evaluated ``every`` and every
    ``for:`` shortened to ``hold``: a test cannot wait minutes. Expressions, labels and
    annotations are left exactly as written."""
    groups = []
    for group in rules["groups"]:
        changed = [
            {**rule, "for": hold} if "for" in rule else dict(rule) for rule in group["rules"]
        ]
        groups.append({**group, "interval": every, "rules": changed})
    return {"groups": groups}


class _Daemon:
    """A Debian-packaged daemon on a free loopback port: started with its ``/-/ready``
    awaited, output in ``log``, stopped with SIGTERM (then SIGKILL)."""

    name = "daemon"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], timeout: float) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Prometheus(_Daemon):
    """One Prometheus process; ``targets`` are ``host:port`` pairs scraped as job
    ``guardline``; ``rules`` the content of one rule file."""

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        targets: Iterable[str],
        rules: Mapping[str, Any] | None = None,
        alertmanager: str | None = None,
    ) -> None:
        super().__init__(workdir)
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {"job_name": "guardline", "static_configs": [{"targets": list(targets)}]}
            ],
        }
        if alertmanager is not None:
            targets_am = [alertmanager.removeprefix("http://")]
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": targets_am}]}]}
        if rules is not None:
            (workdir / "rules.yml").write_text(yaml.safe_dump(dict(rules), sort_keys=False))
            config["rule_files"] = ["rules.yml"]
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.http = httpx.Client(base_url=self.url, timeout=10.0)

    def start(self, timeout: float = 15.0) -> None:
        self._spawn(
            [
                debian_tool("prometheus", "prometheus"),
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--web.external-url={self.url}",  # not the hostname, in generator URLs
            ],
            timeout,
        )

    def stop(self) -> None:
        self.http.close()
        super().stop()

    def _get(self, path: str, **params: str) -> Any:
        response = self.http.get(path, params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {response.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` returns now (a failed query raises)."""
        data = self._get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        if data["resultType"] == "scalar":
            result = [{"metric": {}, "value": data["result"]}]
        return result

    def has_data(self, expr: str) -> bool:
        """Whether ``expr`` returns at least one number (NaN, what a ratio of two zero rates
        gives, shows as no data in Grafana too)."""
        return any(not math.isnan(float(s["value"][1])) for s in self.query(expr))

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def alert_state(self, name: str) -> str:
        """``firing``, ``pending`` or ``inactive``."""
        states = {a["state"] for a in self.alerts() if a["labels"].get("alertname") == name}
        return "firing" if "firing" in states else "pending" if states else "inactive"

    def rules(self) -> list[dict[str, Any]]:
        groups = self._get("/api/v1/rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.query('up{job="guardline"} == 1'):
            if time.monotonic() > deadline:
                raise AssertionError(f"no target up: {self._get('/api/v1/targets')}")
            time.sleep(0.2)


class Alertmanager(_Daemon):
    """One Alertmanager (no clustering: it would hold notifications ~10 s for gossip)
    routing every alert to ``config``'s receivers."""

    name = "alertmanager"

    def __init__(self, workdir: Path, config: Mapping[str, Any]) -> None:
        super().__init__(workdir)
        (workdir / "alertmanager.yml").write_text(yaml.safe_dump(dict(config), sort_keys=False))

    def start(self, timeout: float = 15.0) -> None:
        self._spawn(
            [
                debian_tool("prometheus-alertmanager", "prometheus-alertmanager"),
                f"--config.file={self.workdir / 'alertmanager.yml'}",
                f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                f"--web.external-url={self.url}",
            ],
            timeout,
        )
