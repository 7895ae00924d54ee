"""Prometheus metrics summed over several worker processes (``serve --workers N``).

Every worker keeps its own OpenTelemetry instruments and ``CollectorRegistry``. Each one
writes a snapshot of its registry to ``<dir>/worker-<pid>-<start-ns>.json`` every few
seconds (:class:`SnapshotWriter`); a scrape on any worker collects its own registry live,
adds every other worker's last snapshot and sums samples per name and label set
(:class:`MergedCollector`).

- Counters, histograms and summaries of exited workers are kept, so totals never go
  backwards when a worker is restarted; gauges count only for live workers.
- Descriptive families (``info``, such as OpenTelemetry's ``target_info``, and
  ``stateset``) are not added up: the serving worker's copy is reported.
- ``_created`` samples are dropped: a sum over processes started at different times has
  no single creation time.
- A scrape writes the serving worker's snapshot before answering, so whatever one scrape
  reported is on disk for the next one, wherever it lands: counters never go backwards
  between scrapes answered by different workers.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

log = logging.getLogger("guardline")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes (``CONTENT_TYPE_LATEST`` names 1.0.0 in newer clients)."""

_PREFIX, _SUFFIX = "worker-", ".json"
_CUMULATIVE = frozenset({"counter", "histogram", "summary"})
_DESCRIPTIVE = frozenset({"info", "stateset"})

# The OpenTelemetry collector hands queued data to whichever collect() pops it first, so
# two concurrent collections (snapshot thread and a scrape) would split one batch. One
# lock also orders collect-then-write, so a snapshot file never goes backwards.
_lock = threading.RLock()
_last_written: dict[Path, bytes] = {}


def exposition(source: Collector) -> tuple[bytes, str]:
    """The text exposition (format 0.0.4) of a registry or a :class:`MergedCollector`,
    and its content type."""
    with _lock:
        return generate_latest(source), CONTENT_TYPE


class SnapshotWriter:
    """Writes this worker's registry to ``directory`` every ``interval`` seconds."""

    def __init__(self, directory: Path, registry: CollectorRegistry, *, interval: float) -> None:
        self.directory = directory
        self.name = f"{_PREFIX}{os.getpid()}-{time.time_ns()}{_SUFFIX}"
        """This worker's file in ``directory`` (give it to :class:`MergedCollector`)."""
        self._registry = registry
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def write(self) -> None:
        """One snapshot now, atomically (skipped when nothing changed)."""
        with _lock:
            _write(self.directory / self.name, list(self._registry.collect()))

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="guardline-metric-snapshots", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write a final snapshot (what this worker counted last)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._write_logged()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._write_logged()

    def _write_logged(self) -> None:
        try:
            self.write()
        except Exception as exc:  # a full disk must not stop the worker; warn once per outage
            if not self._failing:
                log.warning("cannot write metric snapshot %s: %s", self.directory / self.name, exc)
            self._failing = True
        else:
            self._failing = False


class MergedCollector(Collector):
    """This worker's registry, live, plus the last snapshot of every other worker."""

    def __init__(self, directory: Path, own: CollectorRegistry, own_file: str) -> None:
        self.directory = directory
        self._own = own
        self._own_file = own_file
        self._warned: set[str] = set()

    def collect(self) -> Iterable[Metric]:
        with _lock:
            own = list(self._own.collect())
            try:
                _write(self.directory / self._own_file, own)
            except OSError as exc:
                self._warn_once(self._own_file, f"cannot write metric snapshot: {exc}")
        merged = _Merge()
        for family in own:
            merged.add(family, live=True)
        for snapshot in self._others():
            live = _alive(snapshot.pid, snapshot.started)
            for family in snapshot.families:
                if not merged.add(family, live=live):
                    self._warn_once(
                        f"{snapshot.name}:{family.name}",
                        f"metric {family.name} is a {family.type} in {snapshot.name} but a "
                        f"{merged.types[family.name]} here; its samples there are left out",
                    )
        return merged.families()

    def _others(self) -> Iterator[_Snapshot]:
        try:
            names = sorted(os.listdir(self.directory))
        except OSError as exc:
            self._warn_once("", f"cannot list metric snapshots in {self.directory}: {exc}")
            return
        for name in names:
            if not (name.startswith(_PREFIX) and name.endswith(_SUFFIX)) or name == self._own_file:
                continue
            try:
                yield _read(self.directory / name)
            except FileNotFoundError:
                continue  # that worker's directory is being cleaned up
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                self._warn_once(name, f"skipping unreadable metric snapshot {name}: {exc!r}")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)


@dataclass
class _Snapshot:
    name: str
    pid: int
    started: str | None
    families: list[Metric]


@dataclass
class _Merge:
    """Families in first-seen order, samples summed per (sample name, label set)."""

    types: dict[str, str] = field(default_factory=dict)
    _families: dict[str, Metric] = field(default_factory=dict)
    _values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = field(
        default_factory=dict
    )

    def add(self, family: Metric, *, live: bool) -> bool:
        """Add ``family``'s samples; False when its type contradicts what came first."""
        known = self.types.get(family.name)
        if known is not None and known != family.type:
            return False
        if family.type in _DESCRIPTIVE and known is not None:
            return True  # the first copy (the serving worker's) stands
        if not live and family.type not in _CUMULATIVE:
            return True  # an exited worker's gauge describes nothing anymore
        if known is None:
            self.types[family.name] = family.type
            self._families[family.name] = Metric(
                family.name, family.documentation, family.type, family.unit
            )
            self._values[family.name] = {}
        values = self._values[family.name]
        created = family.name + "_created"
        for sample in family.samples:
            if sample.name == created:
                continue
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + sample.value
        return True

    def families(self) -> list[Metric]:
        out = []
        for name, family in self._families.items():
            family.samples = [
                Sample(sample, dict(labels), value)
                for (sample, labels), value in self._values[name].items()
            ]
            out.append(family)
        return out


def _write(path: Path, families: list[Metric]) -> None:
    """Write ``families`` to ``path`` atomically (a reader sees the old file or the new one)."""
    body = json.dumps(
        {
            "pid": os.getpid(),
            "started": _start_time(os.getpid()),
            "families": [
                {
                    "name": family.name,
                    "type": family.type,
                    "help": family.documentation,
                    "unit": family.unit,
                    "samples": [[s.name, s.labels, s.value] for s in family.samples],
                }
                for family in families
            ],
        },
        separators=(",", ":"),
    ).encode()
    if _last_written.get(path) == body:
        return
    tmp = path.with_name(path.name + ".tmp")  # not matched by readers: no .json suffix
    tmp.write_bytes(body)
    os.replace(tmp, path)
    _last_written[path] = body


def _read(path: Path) -> _Snapshot:
    data: dict[str, Any] = json.loads(path.read_bytes())
    started = data["started"]
    families = []
    for raw in data["families"]:
        family = Metric(str(raw["name"]), str(raw["help"]), str(raw["type"]), str(raw["unit"]))
        for name, labels, value in raw["samples"]:
            family.add_sample(str(name), {str(k): str(v) for k, v in labels.items()}, float(value))
        families.append(family)
    return _Snapshot(
        path.name, int(data["pid"]), None if started is None else str(started), families
    )


def _alive(pid: int, started: str | None) -> bool:
    """Whether the worker that wrote a snapshot still runs: its pid exists, is not a
    zombie, and (where /proc tells) is the same process, not a new one reusing the pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but another user's
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc: the pid is all we can check
    state, start = stat
    return state != "Z" and (started is None or start == started)


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


def _stat(pid: int) -> tuple[str, str] | None:
    """State and start time (clock ticks after boot) from ``/proc/<pid>/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return fields[0], fields[19]  # fields 3 and 22 of proc(5)
