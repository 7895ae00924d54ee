"""The disk spool: order, commit and rewind, segments, bound, and crash recovery."""

from __future__ import annotations

from pathlib import Path

from guardline.exporters.spool import Position, Spool


def _lines(n: int, start: int = 0) -> list[bytes]:
    return [f'{{"i":{i}}}'.encode() for i in range(start, start + n)]


def test_lines_come_back_in_order_until_committed(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    assert spool.append(_lines(10)) == 10
    first = spool.read(4)
    assert [e.line for e in first] == _lines(4)
    assert [e.line for e in spool.read(100)] == _lines(6, 4)
    spool.rewind()  # nothing committed: everything again
    again = spool.read(100)
    assert [e.line for e in again] == _lines(10)
    spool.commit(again[6].end)
    spool.rewind()
    assert [e.line for e in spool.read(100)] == _lines(3, 7)
    assert spool.read(100) == []
    spool.close()


def test_segments_rotate_and_are_deleted_once_sent(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    spool.append(_lines(50))
    segments = sorted(tmp_path.glob("spool-*.log"))
    assert len(segments) >= 4
    entries = spool.read(1000)
    assert [e.line for e in entries] == _lines(50)
    spool.commit(entries[-1].end)
    assert len(list(tmp_path.glob("spool-*.log"))) == 1  # only the one being written
    assert spool.unsent_bytes == 0
    spool.close()


def test_the_bound_refuses_what_does_not_fit(tmp_path: Path) -> None:
    line = b"x" * 99  # 100 bytes with its newline
    spool = Spool(tmp_path, max_bytes=1000, segment_bytes=300)
    assert spool.append([line] * 15) == 10
    assert spool.unsent_bytes == 1000
    entries = spool.read(4)
    spool.commit(entries[-1].end)  # sent: room again
    assert spool.append([line] * 15) == 4
    spool.close()


def test_reopening_resumes_at_the_cursor_and_cuts_a_torn_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    spool.append(_lines(20))
    entries = spool.read(8)
    spool.commit(entries[-1].end)
    spool.close()
    last = sorted(tmp_path.glob("spool-*.log"))[-1]
    with last.open("ab") as file:
        file.write(b'{"i":20,"cut')  # a crash mid-write

    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert reopened.repaired == len(b'{"i":20,"cut')
    assert reopened.recovered > 0
    assert [e.line for e in reopened.read(100)] == _lines(12, 8)
    reopened.append(_lines(2, 20))
    assert [e.line for e in reopened.read(100)] == _lines(2, 20)
    reopened.close()


def test_a_cursor_in_a_deleted_segment_starts_at_the_oldest_left(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    spool.append(_lines(20))
    spool.close()
    (tmp_path / "cursor").write_text("0 0\n")
    (tmp_path / "spool-000000000000.log").unlink()
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert reopened.cursor > Position(0, 0)
    assert reopened.read(1)[0].line != _lines(1)[0]
    reopened.close()
