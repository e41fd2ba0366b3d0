"""A container's log, as Docker's json-file driver keeps it: one JSON line per chunk of output.

Each line is ``{"log": TEXT, "stream": "stdout"|"stderr", "time": RFC 3339}``,
written by the container's monitor (:mod:`minictr.engine.monitor`) as the output
arrives, in ``<container dir>/container-json.log``. When the file would grow
past ``max_size`` bytes it is rotated (``.1``, ``.2``, … up to ``max_file``
files in all), so a chatty container cannot fill the disk; a write that fails
anyway (a full disk) stops the log, never the container.

The reader (:func:`read_entries`, :func:`follow`) serves ``minictr logs``.
This module is imported by the monitor's lean phase: the standard library only.
"""

from __future__ import annotations

import json
import os
import time

TYPE_CHECKING = False  # typing is for checkers; the monitor starts without it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

LOG_NAME = "container-json.log"
DEFAULT_MAX_SIZE = 10 << 20
DEFAULT_MAX_FILE = 2


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds in UTC, as Docker writes it (``2026-12-01T02:13:39.123456789Z``)."""
    ns = time.time_ns() if ns is None else ns
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def seconds_of(stamp: str | None) -> float | None:
    """Seconds since the epoch of a :func:`timestamp` (or of any RFC 3339 UTC time); None for none."""
    import calendar

    if not stamp:
        return None
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{fraction or 0}")


def since(text: str) -> str:
    """``--since``: an RFC 3339 time (``2026-12-01T02:13:39Z``, UTC) or a duration ago (``10s``, ``5m``, ``2h``)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1:] in units and text[:-1].isdigit():
        return timestamp(time.time_ns() - int(text[:-1]) * units[text[-1]] * 1_000_000_000)
    if len(text) >= 20 and text.endswith("Z") and text[4] == "-" and text[10] == "T":
        return text  # compared as text: the same format sorts as time does
    from minictr.errors import UsageError

    raise UsageError(f"--since {text!r}: give a time as 2026-12-01T02:13:39Z or a duration such as 10m")


def parse_size(text: str | int) -> int:
    """``10m``, ``512k``, ``1g`` or a number of bytes."""
    value = str(text).strip().lower().rstrip("b")
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    scale = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"invalid size {text!r} (a positive number, optionally with k, m or g)")
    return int(number) * scale


class LogWriter:
    """Appends JSON lines to ``<directory>/container-json.log``, rotating at ``max_size``."""

    def __init__(self, directory: str, max_size: int = DEFAULT_MAX_SIZE, max_file: int = DEFAULT_MAX_FILE) -> None:
        self.path = os.path.join(directory, LOG_NAME)
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.broken = ""  # why logging stopped (a full disk), or empty
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """Log one chunk of ``stream`` (``stdout`` or ``stderr``)."""
        if self.broken or not data:
            return
        now = timestamp()
        for piece in data.splitlines(keepends=True):  # one entry per line, as Docker keeps them
            line = json.dumps({"log": piece.decode("utf-8", "replace"), "stream": stream, "time": now}) + "\n"
            self._append(line.encode())

    def _append(self, encoded: bytes) -> None:
        try:
            if self.size and self.size + len(encoded) > self.max_size:
                self._rotate()
            os.write(self.fd, encoded)
            self.size += len(encoded)
        except OSError as exc:  # ENOSPC, EIO: the container goes on, its log stops
            self.broken = f"{exc.strerror} ({self.path})"

    def _rotate(self) -> None:
        """container-json.log -> .1 -> .2 ...; the oldest beyond ``max_file`` goes."""
        os.close(self.fd)
        if self.max_file == 1:
            os.unlink(self.path)
        for number in range(self.max_file - 1, 0, -1):
            source = self.path if number == 1 else f"{self.path}.{number - 1}"
            if os.path.exists(source):
                os.replace(source, f"{self.path}.{number}")
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = 0

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def log_files(directory: str) -> list[str]:
    """The log's files, oldest first (rotated ones, then the current one)."""
    path = os.path.join(directory, LOG_NAME)
    rotated = []
    number = 1
    while os.path.exists(f"{path}.{number}"):
        rotated.append(f"{path}.{number}")
        number += 1
    return [*reversed(rotated), *([path] if os.path.exists(path) else [])]


def read_entries(directory: str) -> tuple[list[dict[str, Any]], int]:
    """Every entry still kept, oldest first, and how far into the current file they go (for :func:`follow`)."""
    entries: list[dict[str, Any]] = []
    offset = 0
    for path in log_files(directory):
        with open(path, "rb") as handle:
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        entries.extend(_parse(complete))
        offset = len(complete)
    return entries, offset


def _parse(data: bytes) -> list[dict[str, Any]]:
    entries = []
    for line in data.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a full disk
    return entries


def tail(entries: list[dict[str, Any]], lines: int | None) -> list[dict[str, Any]]:
    """The entries holding the last ``lines`` lines of output (None: all), as ``--tail`` counts them."""
    if lines is None:
        return entries
    kept: list[dict[str, Any]] = []
    count = 0
    for entry in reversed(entries):
        count += max(1, entry["log"].count("\n"))
        if count > lines:
            break
        kept.append(entry)
    return list(reversed(kept))


def follow(
    directory: str, running: Callable[[], bool], offset: int = 0, interval: float = 0.1
) -> Iterator[dict[str, Any]]:
    """New entries as they are written, until ``running()`` is false and nothing more arrived.

    Starts at ``offset`` in the current file (where :func:`read_entries`
    stopped); follows the log across a rotation (a new file at the same path).
    """
    path = os.path.join(directory, LOG_NAME)
    handle = _open_log(path)
    try:  # closed however the reader stops: at the end, or by leaving the loop early
        if handle:
            handle.seek(offset)
        pending = b""
        while True:
            alive = running()  # read after asking: output written before the exit is not lost
            if handle is None:
                handle = _open_log(path)
            chunk = handle.read() if handle else b""
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition(b"\n")
                yield from _parse(complete)
            elif handle and _rotated(handle, path):
                handle.close()
                handle = _open_log(path)
                continue
            elif not alive:
                break
            else:
                time.sleep(interval)
    finally:
        if handle:
            handle.close()


def _open_log(path: str) -> BinaryIO | None:
    """The log file for reading, or None while it does not exist (yet, or between a rotation's renames)."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _rotated(handle: Any, path: str) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False
