"""Re-evaluation jobs and their store: one JSON file per job in ``<directory>/jobs``.

The store is the source of truth for idempotency and progress, shared by the receiver
and any workers on the same volume: a job is created only if its id is new (an atomic
``link``, so Alertmanager's repeats and retries, racing or not, start one job), and every
change is a locked read-modify-write replaced atomically, so a reader never sees half a
file and a killed writer leaves the previous state.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from guardline.errors import GuardlineError

State = Literal["queued", "running", "done", "failed"]
FINAL: frozenset[State] = frozenset({"done", "failed"})
_ID = "0123456789abcdefghijklmnopqrstuvwxyz-"


class JobError(GuardlineError):
    """A job that does not exist, or a store that cannot be used."""


def now() -> datetime:
    return datetime.now(UTC)


def new_id(key: str | None = None) -> str:
    """``j-<key>`` for a job an alert starts (the same firing, the same id), else random."""
    return f"j-{key or secrets.token_hex(12)}"


@dataclass
class Job:
    id: str
    evaluation: str
    since: str
    """ISO 8601, inclusive."""
    until: str
    """ISO 8601, exclusive."""
    trigger: dict[str, Any]
    state: State = "queued"
    created: str = field(default_factory=lambda: now().isoformat())
    started: str | None = None
    finished: str | None = None
    progress: float = 0.0
    stage: str = "queued"
    attempts: int = 0
    """Times a worker started it (a worker killed mid-run leaves it running; the next
    start counts again)."""
    notifications: int = 1
    """Webhook deliveries for this firing (repeats and retries start no new job)."""
    resolved: str | None = None
    """When Alertmanager said the alert resolved (recorded, never re-run)."""
    report: str | None = None
    summary: str | None = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def window(self) -> tuple[datetime, datetime]:
        return datetime.fromisoformat(self.since), datetime.fromisoformat(self.until)

    def public(self) -> dict[str, Any]:
        return asdict(self)


class JobStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "jobs"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobError(f"cannot use the job directory {self.directory}: {exc}") from None

    def _path(self, job_id: str) -> Path:
        if not job_id or any(c not in _ID for c in job_id) or len(job_id) > 64:
            raise JobError(f"no job {job_id!r}")
        return self.directory / f"{job_id}.json"

    def create(self, job: Job) -> bool:
        """Store ``job`` unless its id exists; True when this call created it."""
        path = self._path(job.id)
        tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(orjson.dumps(job.public()))
        try:
            os.link(tmp, path)  # atomic create-if-absent, across processes
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def remove(self, job_id: str) -> None:
        """Forget a job that could not be queued (the sender will retry)."""
        self._path(job_id).unlink(missing_ok=True)

    def put(self, job: Job) -> bool:
        """Store ``job`` as another process reports it, unless that would move a finished
        job back (status messages can arrive twice or late); True when stored."""
        path = self._path(job.id)
        with self._locked(job.id):
            try:
                current = self.get(job.id)
            except JobError:
                current = None
            if current is not None and current.state in FINAL and job.state not in FINAL:
                return False
            _replace(path, job)
        return True

    def get(self, job_id: str) -> Job:
        path = self._path(job_id)
        try:
            return Job(**orjson.loads(path.read_bytes()))
        except FileNotFoundError:
            raise JobError(f"no job {job_id!r}") from None

    def all(self) -> list[Job]:
        jobs = []
        for path in self.directory.glob("j-*.json"):
            try:
                jobs.append(Job(**orjson.loads(path.read_bytes())))
            except (OSError, orjson.JSONDecodeError, TypeError):
                continue  # being replaced right now, or not ours
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    @contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        lock = self.directory / f".{job_id}.lock"
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def update(self, job_id: str, change: Callable[[Job], None]) -> Job:
        """Apply ``change`` to the stored job under a lock and store the result."""
        path = self._path(job_id)
        with self._locked(job_id):
            job = self.get(job_id)
            change(job)
            _replace(path, job)
        return job

    def unfinished(self) -> list[Job]:
        """Queued jobs and those a killed worker left running, oldest first."""
        return sorted((j for j in self.all() if j.state not in FINAL), key=lambda j: j.created)


def _replace(path: Path, job: Job) -> None:
    """Write ``job`` over ``path`` atomically (the caller holds the job's lock)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(job.public()))
    os.replace(tmp, path)
