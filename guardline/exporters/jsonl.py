"""The JSON Lines dataset sink: one record per line, files rotated by day and size.

Files are ``<dir>/<prefix>-<YYYY-MM-DD>-<seq>.jsonl`` (UTC day of writing; ``seq`` grows
when a file reaches ``max_bytes``). Several writers (workers, consumers) may share a
directory, each with its own prefix. A background thread writes each line with a single
``write`` to a file opened for appending, so a line is either all there or, after a crash
in mid-write, an unterminated tail; opening the directory again cuts such a tail off, so a
reader never sees a torn line.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from guardline.errors import StartupError
from guardline.exporters.sink import STOP, FlushMarker

log = logging.getLogger("guardline.samples")

_SUFFIX = ".jsonl"
_DATED = r"-\d{4}-\d{2}-\d{2}-\d{4}\.jsonl"
_NAME = re.compile(r"[A-Za-z0-9_.-]+?" + _DATED)


class JsonlSink:
    name = "jsonl"

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "samples",
        max_bytes: int = 64 * 1024 * 1024,
        queue_size: int = 10_000,
        fsync_every: int = 100,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.fsync_every = fsync_every
        self._clock = clock
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.repaired = repair(directory, prefix)
        except OSError as exc:  # e.g. a read-only root filesystem without the data volume
            raise StartupError(f"cannot use the samples directory {directory}: {exc}") from None
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(queue_size)
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._unsynced = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="guardline-jsonl", daemon=True)
        self._thread.start()

    # the Sink protocol ------------------------------------------------------------------

    def submit(self, record: dict[str, Any]) -> bool:
        if self._closed:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error(
                    "JSON Lines sink %s is %d records behind: %d dropped so far",
                    self.directory,
                    self._queue.maxsize,
                    self.dropped,
                )
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        if not self._thread.is_alive():
            return self._queue.empty()
        marker = FlushMarker()
        self._queue.put(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(STOP)
        self._thread.join()

    def health(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "file": self._path.name if self._path else None,
            "written": self.written,
            "dropped": self.dropped,
            "queued": self._queue.qsize(),
        }

    def counts(self) -> tuple[int, dict[str, int]]:
        return self.written, {"error": self.dropped} if self.dropped else {}

    # the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is STOP:
                    break
                if isinstance(item, FlushMarker):
                    self._sync()
                    item.done.set()
                    continue
                try:
                    self._write(orjson.dumps(item) + b"\n")
                except (OSError, TypeError) as exc:
                    self.dropped += 1
                    log.error(
                        "JSON Lines sink %s could not write a record: %s", self.directory, exc
                    )
        finally:
            self._sync()
            self._close_file()

    def _write(self, line: bytes) -> None:
        fd = self._file_for(len(line))
        view = memoryview(line)
        while view:  # one write almost always; a short write continues the same line
            view = view[os.write(fd, view) :]
        self._size += len(line)
        self.written += 1
        self._unsynced += 1
        if self._unsynced >= self.fsync_every:
            self._sync()

    def _file_for(self, size: int) -> int:
        day = time.strftime("%Y-%m-%d", time.gmtime(self._clock()))
        path = self._path
        if (
            self._fd is None
            or path is None
            or not path.name.startswith(f"{self.prefix}-{day}-")
            or (self._size and self._size + size > self.max_bytes)
        ):
            self._sync()
            self._close_file()
            path = self._next_path(day, size)
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self._path = path
            self._size = path.stat().st_size
        assert self._fd is not None
        return self._fd

    def _next_path(self, day: str, size: int) -> Path:
        """Today's last file if the line fits, else the next sequence number."""
        existing = sorted(self.directory.glob(f"{self.prefix}-{day}-*{_SUFFIX}"))
        if existing:
            last = existing[-1]
            seq = int(last.stem.rsplit("-", 1)[1])
            if last.stat().st_size + size <= self.max_bytes:
                return last
            seq += 1
        else:
            seq = 0
        return self.directory / f"{self.prefix}-{day}-{seq:04d}{_SUFFIX}"

    def _sync(self) -> None:
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
            self._unsynced = 0

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def files(directory: Path, prefix: str | None = None) -> list[Path]:
    """The dataset files of one writer (``prefix``) or of all, in name order (which is
    write order per writer)."""
    pattern = _NAME if prefix is None else re.compile(re.escape(prefix) + _DATED)
    return sorted(p for p in directory.glob(f"*{_SUFFIX}") if pattern.fullmatch(p.name))


def repair(directory: Path, prefix: str = "samples") -> int:
    """Cut an unterminated last line (a write a crash interrupted) off every file of the
    writer ``prefix`` (never another writer's: it may be mid-line right now); the number
    of bytes removed."""
    return sum(cut_torn_tail(path) for path in files(directory, prefix))


def cut_torn_tail(path: Path) -> int:
    """Cut ``path`` back to its last complete line (a crash mid-write leaves an
    unterminated one); the bytes removed."""
    size = path.stat().st_size
    if not size:
        return 0
    with path.open("rb+") as file:
        file.seek(-1, os.SEEK_END)
        if file.read(1) == b"\n":
            return 0
        # Find the last complete line, reading backwards in blocks.
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - 65536)
            file.seek(start)
            block = file.read(end - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        file.truncate(keep)
    log.warning("%s ended in a torn line (a crash mid-write): %d bytes removed", path, size - keep)
    return size - keep
