"""The json-file log on its own (no root, no container): lines, rotation, tail, follow, --since, a full disk."""

from __future__ import annotations

import json
import os
import pathlib
import threading
import time

import pytest

from minictr.engine import logs
from minictr.errors import UsageError


def test_one_entry_per_line_with_stream_and_time(tmp_path: pathlib.Path) -> None:
    writer = logs.LogWriter(str(tmp_path))
    writer.write("stdout", b"one\ntwo\npartial")
    writer.write("stderr", b"\xff broken utf-8\n")
    writer.close()
    lines = [json.loads(line) for line in (tmp_path / logs.LOG_NAME).read_text().splitlines()]
    assert [(e["stream"], e["log"]) for e in lines] == [
        ("stdout", "one\n"), ("stdout", "two\n"), ("stdout", "partial"), ("stderr", "\ufffd broken utf-8\n"),
    ]  # fmt: skip
    assert all(len(e["time"]) == 30 and e["time"].endswith("Z") for e in lines)


def test_rotation_keeps_max_file_files_under_max_size(tmp_path: pathlib.Path) -> None:
    writer = logs.LogWriter(str(tmp_path), max_size=300, max_file=3)
    for number in range(100):
        writer.write("stdout", f"line {number}\n".encode())
    writer.close()
    assert sorted(os.listdir(tmp_path)) == [logs.LOG_NAME, f"{logs.LOG_NAME}.1", f"{logs.LOG_NAME}.2"]
    assert all(os.path.getsize(tmp_path / name) <= 300 for name in os.listdir(tmp_path))
    entries, _ = logs.read_entries(str(tmp_path))
    numbers = [int(e["log"].split()[1]) for e in entries]
    assert numbers == list(range(numbers[0], 100))  # oldest first, nothing out of order, the oldest gone
    assert [e["log"] for e in logs.tail(entries, 2)] == ["line 98\n", "line 99\n"]


def test_a_full_disk_stops_the_log_without_raising(tmp_path: pathlib.Path) -> None:
    os.symlink("/dev/full", tmp_path / logs.LOG_NAME)
    writer = logs.LogWriter(str(tmp_path))
    writer.write("stdout", b"lost\n")
    writer.write("stdout", b"lost too\n")
    assert "No space left on device" in writer.broken
    writer.close()


def test_follow_reads_what_comes_until_the_end(tmp_path: pathlib.Path) -> None:
    writer = logs.LogWriter(str(tmp_path))
    writer.write("stdout", b"before\n")
    _, offset = logs.read_entries(str(tmp_path))
    running = threading.Event()
    running.set()

    def produce() -> None:
        for number in range(20):
            writer.write("stdout", f"after {number}\n".encode())
            time.sleep(0.01)
        running.clear()

    producer = threading.Thread(target=produce)
    producer.start()
    seen = [e["log"] for e in logs.follow(str(tmp_path), running.is_set, offset, interval=0.01)]
    producer.join()
    assert seen == [f"after {number}\n" for number in range(20)]  # from where the reading stopped, all of it


def test_since_and_sizes() -> None:
    assert logs.since("2026-12-01T02:13:39Z") == "2026-12-01T02:13:39Z"
    assert logs.since("10m") < logs.timestamp() and logs.since("10m") > logs.since("1h")
    with pytest.raises(UsageError):
        logs.since("yesterday")
    assert (logs.parse_size("2k"), logs.parse_size("10m"), logs.parse_size(512)) == (2048, 10 << 20, 512)
    with pytest.raises(ValueError):
        logs.parse_size("-1")
