"""What the simulator received and sent, for tests to check on the upstream's side."""

from __future__ import annotations

import base64
import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-guardline-key"})


@dataclass(slots=True)
class Record:
    seq: int
    time: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    auth_sha256: str | None
    """SHA-256 of the credential the caller sent: tests compare digests, never keys."""
    body: Any
    status: int = 0
    response: bytearray = field(default_factory=bytearray)
    stream: bool = False
    completed: bool = False
    disconnected: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "auth_sha256": self.auth_sha256,
            "body": self.body,
            "status": self.status,
            "response_b64": base64.b64encode(bytes(self.response)).decode(),
            "stream": self.stream,
            "completed": self.completed,
            "disconnected": self.disconnected,
        }


class Recorder:
    def __init__(self, limit: int) -> None:
        self.records: deque[Record] = deque(maxlen=limit)
        self.total = 0
        self.active = 0
        self.active_streams = 0
        self.streams_completed = 0
        self.streams_disconnected = 0

    def start(
        self, method: str, path: str, query: str, raw_headers: list[tuple[bytes, bytes]], body: Any
    ) -> Record:
        headers: dict[str, str] = {}
        secret = None
        for name, value in raw_headers:
            key = name.decode("latin-1")
            if key in _SECRET_HEADERS:
                credential = value.removeprefix(b"Bearer ") if key == "authorization" else value
                secret = secret or hashlib.sha256(credential).hexdigest()
                headers[key] = "<redacted>"
            else:
                headers[key] = value.decode("latin-1")
        self.total += 1
        record = Record(self.total, time.time(), method, path, query, headers, secret, body)
        self.records.append(record)
        return record

    def stats(self) -> dict[str, int]:
        return {
            "requests_total": self.total,
            "active_requests": self.active,
            "active_streams": self.active_streams,
            "streams_completed": self.streams_completed,
            "streams_disconnected": self.streams_disconnected,
        }

    def clear(self) -> None:
        self.records.clear()
