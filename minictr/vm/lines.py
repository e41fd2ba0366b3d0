"""A process spoken to one line at a time: a shell on a pipe, in a container or behind a VM's serial port.

The host, a container and a virtual machine are measured the same way: each
runs a busybox shell whose standard input and output are pipes held here. A
line is stamped with the moment it arrives (``time.monotonic()``), so a time
inside is measured between two lines the shell prints, whatever it costs to
reach the shell.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, Self

from minictr.errors import MinictrError

#: What every shell prints first, once it can run commands.
READY = "ready"


class LineError(MinictrError):
    """The process ended, or said nothing in time, before the line that was awaited."""


class LineProcess:
    """A child process with its stdin and stdout on pipes, read line by line with deadlines."""

    #: What the process is called in messages ("a container", "the VM").
    what = "the process"
    #: Seconds it may take to end by itself once its input is closed.
    grace = 10.0

    def __init__(self, command: list[str], *, stderr: Any = subprocess.DEVNULL, **popen: Any) -> None:
        self.command = command
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True, **popen
        )
        self._buffer = b""
        self.lines: list[tuple[float, str]] = []  #: every line so far, with the moment it arrived

    @property
    def pid(self) -> int:
        """The host pid of the process started (QEMU itself; the ``minictr run`` command for a container)."""
        return self.process.pid

    def why_not(self) -> str:
        """Why no line came: extended by subclasses with what the process left behind (a console log)."""
        code = self.process.poll()
        return f"{self.what} exited with status {code}" if code is not None else f"{self.what} said nothing"

    def readline(self, timeout: float) -> tuple[float, str]:
        """The next line and the moment it arrived; :class:`LineError` after ``timeout`` seconds or at its end."""
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()  # type: ignore[union-attr]  # started with pipes (__init__)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise LineError(f"{self.what} printed no line within {timeout:g} s: {self.why_not()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)  # output closed: it is ending, and its status says how
                raise LineError(f"{self.what} ended before printing a line: {self.why_not()}")
            self._buffer += chunk
        now = time.monotonic()
        raw, self._buffer = self._buffer.split(b"\n", 1)
        line = raw.decode(errors="replace").rstrip("\r")
        self.lines.append((now, line))
        return now, line

    def wait_for(self, wanted: str | Callable[[str], bool], timeout: float) -> float:
        """Read lines until one is ``wanted`` (or satisfies it); the moment it arrived."""
        deadline = time.monotonic() + timeout
        while True:
            when, line = self.readline(max(deadline - time.monotonic(), 0.001))
            if line == wanted if isinstance(wanted, str) else wanted(line):
                return when

    def send(self, line: str) -> None:
        """Write one line to the process's standard input."""
        os.write(self.process.stdin.fileno(), line.encode() + b"\n")  # type: ignore[union-attr]  # a pipe

    def timed(self, command: str, timeout: float) -> tuple[float, list[str]]:
        """Run ``command`` in the shell; seconds between its start and end, as the shell saw them, and its output."""
        self.send(f"echo @start; {command}; echo @end")
        begun = self.wait_for("@start", timeout)
        first = len(self.lines)
        ended = self.wait_for("@end", timeout)
        return ended - begun, [line for _, line in self.lines[first:-1]]

    def stop(self, timeout: float = 10) -> None:
        """End the process and wait for it; idempotent.

        Its stdin is closed first: a shell ends at the end of its input, and
        with it a container (whose PID 1 ignores SIGTERM). Whatever still runs
        after :attr:`grace` seconds gets SIGTERM, then SIGKILL (its whole session).
        """
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(self.grace)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
