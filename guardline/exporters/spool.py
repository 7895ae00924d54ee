"""An append-only disk spool: records wait here until a broker has acknowledged them.

One writer thread appends whole lines (one ``write`` each) to numbered segment files
(``spool-<seq>.log``); one reader thread takes lines from the cursor on and, once they
are acknowledged, ``commit`` moves the cursor (a small file replaced atomically) and
deletes segments wholly behind it. After a crash, reopening cuts a torn last line off,
and reading resumes at the last committed cursor: what was acknowledged but not yet
committed is sent again (at least once), nothing appended is lost.

The spool is bounded: ``append`` refuses what would take the unsent bytes over
``max_bytes`` (the caller counts and reports it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from guardline.errors import StartupError
from guardline.exporters.jsonl import cut_torn_tail

log = logging.getLogger("guardline.samples")

_SEGMENT = re.compile(r"spool-(\d{12})\.log")
_CURSOR = "cursor"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the spool: segment number and byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Entry:
    line: bytes
    """One record, without its newline."""
    end: Position
    """Where the next entry starts: commit this once the entry is acknowledged."""


class Spool:
    def __init__(self, directory: Path, *, max_bytes: int, segment_bytes: int = 16 << 20) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = min(segment_bytes, max_bytes)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"cannot create the sample spool {directory}: {exc}") from None
        self._lock = threading.Lock()
        self._readable = threading.Condition(self._lock)
        segments = self._segments()
        self.repaired = cut_torn_tail(directory / _name(segments[-1])) if segments else 0
        self._cursor = self._load_cursor(segments)
        self._read_at = self._cursor
        self._sizes: dict[int, int] = {s: (directory / _name(s)).stat().st_size for s in segments}
        last = segments[-1] if segments else self._cursor.segment
        self._sizes.setdefault(last, 0)
        self._end = Position(last, self._sizes[last])
        self._fd: int | None = None
        self._reader: tuple[int, int] | None = None  # (segment, fd)
        self.recovered = self._unsent_bytes()
        """Unsent bytes found at open (left by a previous process)."""

    # the writer's side ------------------------------------------------------------------

    def append(self, lines: list[bytes]) -> int:
        """Append whole lines (each without its newline); how many fit (the rest are
        refused because the spool is full)."""
        taken = 0
        for line in lines:
            data = line + b"\n"
            with self._lock:
                if self._unsent_bytes() + len(data) > self.max_bytes:
                    break
                end = self._end
            fd = self._segment_fd(end, len(data))
            view = memoryview(data)
            while view:  # one write almost always; a short write continues the same line
                view = view[os.write(fd, view) :]
            with self._lock:
                segment = self._end.segment
                self._sizes[segment] = self._sizes.get(segment, 0) + len(data)
                self._end = Position(segment, self._sizes[segment])
                self._readable.notify_all()
            taken += 1
        return taken

    def _segment_fd(self, end: Position, size: int) -> int:
        if end.offset + size > self.segment_bytes:  # the current segment is full
            if self._fd is not None:
                os.close(self._fd)
            segment = end.segment + 1
            self._fd = self._open(segment)
            with self._lock:
                self._sizes[segment] = 0
                self._end = Position(segment, 0)
        elif self._fd is None:
            self._fd = self._open(end.segment)
        return self._fd

    def _open(self, segment: int) -> int:
        path = self.directory / _name(segment)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    # the reader's side ------------------------------------------------------------------

    def read(self, limit: int, wait: float | None = None) -> list[Entry]:
        """Up to ``limit`` entries after those already read (not the committed cursor:
        ``rewind`` goes back there); waits up to ``wait`` seconds for the first."""
        with self._lock:
            if wait and self._read_at >= self._end:
                self._readable.wait(wait)
            start, end = self._read_at, self._end
        if start >= end:
            return []
        entries: list[Entry] = []
        position = start
        while len(entries) < limit and position < end:
            if position.segment < end.segment and position.offset >= self._size(position):
                position = Position(position.segment + 1, 0)
                continue
            stop = end.offset if position.segment == end.segment else self._size(position)
            chunk = self._pread(position, min(stop - position.offset, 1 << 20))
            if not chunk:
                break
            offset = position.offset
            cut = chunk.rfind(b"\n") + 1
            for line in chunk[:cut].split(b"\n")[:-1]:
                offset += len(line) + 1
                entries.append(Entry(line, Position(position.segment, offset)))
                if len(entries) == limit:
                    break
            if cut == 0:  # a single line longer than the read: read it whole
                line = self._read_line(position, stop)
                offset = position.offset + len(line) + 1
                entries.append(Entry(line, Position(position.segment, offset)))
            position = Position(position.segment, offset)
        with self._lock:
            self._read_at = position
        return entries

    def rewind(self) -> None:
        """Read again from the committed cursor (after a failed send)."""
        with self._lock:
            self._read_at = self._cursor

    def commit(self, position: Position) -> None:
        """Everything before ``position`` is acknowledged."""
        with self._lock:
            if position <= self._cursor:
                return
            self._cursor = position
            old = [s for s in self._sizes if s < position.segment]
            for segment in old:
                del self._sizes[segment]
        self._write_cursor(position)
        for segment in old:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / _name(segment)).unlink()
        if self._reader is not None and self._reader[0] < position.segment:
            os.close(self._reader[1])
            self._reader = None

    # state ------------------------------------------------------------------------------

    @property
    def unsent_bytes(self) -> int:
        with self._lock:
            return self._unsent_bytes()

    @property
    def end(self) -> Position:
        with self._lock:
            return self._end

    @property
    def cursor(self) -> Position:
        with self._lock:
            return self._cursor

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._reader is not None:
            os.close(self._reader[1])
            self._reader = None

    # internals --------------------------------------------------------------------------

    def _unsent_bytes(self) -> int:
        cursor = self._cursor
        return sum(size for s, size in self._sizes.items() if s >= cursor.segment) - (
            cursor.offset if cursor.segment in self._sizes else 0
        )

    def _size(self, position: Position) -> int:
        with self._lock:
            return self._sizes.get(position.segment, 0)

    def _pread(self, position: Position, size: int) -> bytes:
        if self._reader is None or self._reader[0] != position.segment:
            if self._reader is not None:
                os.close(self._reader[1])
            path = self.directory / _name(position.segment)
            self._reader = (position.segment, os.open(path, os.O_RDONLY))
        return os.pread(self._reader[1], size, position.offset)

    def _read_line(self, position: Position, stop: int) -> bytes:
        parts: list[bytes] = []
        offset = position.offset
        while offset < stop:
            chunk = self._pread(Position(position.segment, offset), min(stop - offset, 1 << 20))
            newline = chunk.find(b"\n")
            if newline >= 0:
                parts.append(chunk[:newline])
                break
            parts.append(chunk)
            offset += len(chunk)
        return b"".join(parts)

    def _segments(self) -> list[int]:
        found = (_SEGMENT.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _load_cursor(self, segments: list[int]) -> Position:
        path = self.directory / _CURSOR
        try:
            segment, offset = (int(x) for x in path.read_text().split())
            cursor = Position(segment, offset)
        except FileNotFoundError:
            cursor = Position(segments[0] if segments else 0, 0)
        except (OSError, ValueError):
            log.error("spool cursor %s is unreadable; sending the whole spool again", path)
            cursor = Position(segments[0] if segments else 0, 0)
        if segments and cursor.segment < segments[0]:
            cursor = Position(segments[0], 0)  # its segment was sent and deleted
        return cursor

    def _write_cursor(self, position: Position) -> None:
        # Replaced whole (write, then rename): a crash leaves the old cursor or the new.
        path = self.directory / _CURSOR
        temporary = path.with_suffix(".tmp")
        temporary.write_text(f"{position.segment} {position.offset}\n")
        temporary.replace(path)


def _name(segment: int) -> str:
    return f"spool-{segment:012d}.log"
