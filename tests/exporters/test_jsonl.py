"""The JSON Lines sink: whole lines only, rotation by day and size, torn tails repaired."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from guardline.exporters.jsonl import JsonlSink, repair

DAY = 86_400.0
START = 1_795_000_000.0  # 2026-11-18, 08:26:40 UTC


def _lines(directory: Path) -> list[dict[str, object]]:
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), path
        out += [json.loads(line) for line in data.splitlines()]
    return out


def test_records_become_lines_in_order(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    for i in range(50):
        assert sink.submit({"i": i, "text": "naïve café 東京"})
    assert sink.flush(5)
    assert [r["i"] for r in _lines(tmp_path)] == list(range(50))
    sink.close()
    assert sink.written == 50
    assert not sink.submit({"late": True})  # closed: refused, counted
    assert sink.dropped == 1


def test_rotation_by_size_and_by_day(tmp_path: Path) -> None:
    now = [START]
    sink = JsonlSink(tmp_path, max_bytes=1000, clock=lambda: now[0])
    for i in range(30):
        sink.submit({"i": i, "pad": "x" * 80})
    sink.flush(5)
    now[0] += DAY
    sink.submit({"i": 30})
    sink.close()
    names = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    first_day = [n for n in names if n.startswith("samples-2026-11-18-")]
    assert len(first_day) >= 3  # 30 lines of ~100 bytes in files of at most 1000
    assert names[-1] == "samples-2026-11-19-0000.jsonl"
    for path in tmp_path.glob("samples-2026-11-18-*.jsonl"):
        assert path.stat().st_size <= 1000
    assert [r["i"] for r in _lines(tmp_path)] == list(range(31))


def test_a_restart_continues_todays_last_file(tmp_path: Path) -> None:
    clock = lambda: START  # noqa: E731
    first = JsonlSink(tmp_path, clock=clock)
    first.submit({"run": 1})
    first.close()
    second = JsonlSink(tmp_path, clock=clock)
    second.submit({"run": 2})
    second.close()
    assert [p.name for p in tmp_path.glob("*.jsonl")] == ["samples-2026-11-18-0000.jsonl"]
    assert _lines(tmp_path) == [{"run": 1}, {"run": 2}]


def test_a_torn_last_line_is_cut_when_the_directory_is_opened(tmp_path: Path) -> None:
    path = tmp_path / "samples-2026-11-18-0000.jsonl"
    path.write_bytes(b'{"i":0}\n{"i":1}\n{"i":2,"text":"cut sho')
    sink = JsonlSink(tmp_path, clock=lambda: START)
    assert sink.repaired == len(b'{"i":2,"text":"cut sho')
    sink.submit({"i": 3})
    sink.close()
    assert _lines(tmp_path) == [{"i": 0}, {"i": 1}, {"i": 3}]
    assert repair(tmp_path) == 0


def test_sigkill_mid_traffic_leaves_no_torn_line_after_repair(tmp_path: Path) -> None:
    writer = (
        "import sys, pathlib\n"
        "from guardline.exporters.jsonl import JsonlSink\n"
        "sink = JsonlSink(pathlib.Path(sys.argv[1]), max_bytes=200_000, fsync_every=1_000_000)\n"
        "i = 0\n"
        "while True:\n"
        "    if sink.submit({'i': i, 'pad': 'x' * 3000}):\n"
        "        i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(tmp_path)])
    deadline = time.monotonic() + 20
    while (
        time.monotonic() < deadline
        and sum(p.stat().st_size for p in tmp_path.glob("*.jsonl")) < 1_000_000
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    repair(tmp_path)
    records = _lines(tmp_path)
    assert len(records) > 100
    assert [r["i"] for r in records] == list(range(len(records)))  # whole and in order


def test_a_full_queue_refuses_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, queue_size=2)
    release = threading.Event()
    original = sink._write

    def stalled(line: bytes) -> None:
        release.wait(10)
        original(line)

    sink._write = stalled  # type: ignore[method-assign]
    results = [sink.submit({"i": i}) for i in range(10)]
    assert results.count(False) >= 7  # one in the writer's hands, two queued
    assert sink.dropped == results.count(False)
    release.set()
    sink.close()
    assert len(_lines(tmp_path)) == results.count(True)
