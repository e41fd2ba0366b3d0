"""A foreground container's streams: ``-i`` and ``-t`` as Docker means them.

- ``-t``: the container gets a pty of its own, from its own devpts (its
  slave is the container's stdin, stdout, stderr and controlling terminal, in
  a session of its own; the master comes back over a console socket: see
  :mod:`minictr.engine.console`). This process
  copies between the pty's master and its own terminal, which it puts in raw
  mode (so ^C, ^Z and every key reach the container's line discipline) and
  restores on every way out; the window size is passed at start and on
  SIGWINCH.
- ``-i`` without ``-t``: the caller's stdin streams into the container, and
  its end (EOF) closes the container's stdin.
- Without ``-i`` the container's stdin is /dev/null. Without ``-t`` a caller's
  terminal never becomes the container's: where stdin, stdout or stderr is a
  terminal, a pipe stands between (a program holding a terminal could inject
  input into it, ``TIOCSTI``).

A kept foreground container (``run`` without ``--rm``) also has its output
written to its json-file log as it passes (:class:`LogTee`), so that
``minictr logs`` shows it after the exit, as Docker's does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from minictr.engine.console import Console
    from minictr.engine.container import Finished
    from minictr.engine.logs import LogWriter


class LogTee:
    """The json-file log of a foreground container, opened once its directory exists; a copy of what passes."""

    def __init__(self, max_size: int, max_file: int) -> None:
        self.max_size, self.max_file = max_size, max_file
        self.writer: LogWriter | None = None
        self.lock = threading.Lock()  # stdout's and stderr's relays both write

    def open(self, directory: str) -> None:
        """Start the log in ``directory`` (before the container's program runs)."""
        from minictr.engine.logs import LogWriter

        self.writer = LogWriter(directory, self.max_size, self.max_file)

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data`` as ``stream``'s (nothing before :meth:`open`)."""
        with self.lock:
            if self.writer is not None:
                self.writer.write(stream, data)

    def close(self) -> None:
        """Close the log file."""
        with self.lock:
            if self.writer is not None:
                self.writer.close()
                self.writer = None


def run_attached(start: Callable[[dict[str, Any], bool], Finished], interactive: bool, tty: bool,
                 log: LogTee | None = None) -> Finished:  # fmt: skip
    """Run ``start(stdio, terminal)`` (a foreground :func:`~minictr.engine.container.run`) with -i/-t's streams.

    With ``log``, the output is also written to it (through pipes, even where it goes to no terminal).
    """
    try:
        if tty:
            return _with_pty(start, interactive, log)
        return _with_pipes(start, interactive, log)
    finally:
        if log is not None:
            log.close()


def _with_pipes(start: Callable[[dict[str, Any], bool], Finished], interactive: bool, log: LogTee | None) -> Finished:
    relays: list[threading.Thread] = []
    closing: list[int] = []
    stdio = {
        "stdin": _input_pipe(relays, closing)
        if interactive and os.isatty(0)
        else (0 if interactive else subprocess.DEVNULL),
        "stdout": _output_pipe(1, relays, closing, log, "stdout") if log or os.isatty(1) else 1,
        "stderr": _output_pipe(2, relays, closing, log, "stderr") if log or os.isatty(2) else 2,
    }
    try:
        return start(stdio, False)
    finally:
        for fd in closing:  # our ends of the container's streams: the copies see EOF once it is gone
            os.close(fd)
        for relay in relays:
            relay.join(5)


def _copy(source: int, dest: int, close_dest: bool, log: LogTee | None = None, stream: str = "") -> None:
    try:
        while data := os.read(source, 65536):
            if log is not None:
                log.write(stream, data)
            _write_all(dest, data)
    except OSError:
        pass
    finally:
        if close_dest:
            os.close(dest)


def _input_pipe(relays: list[threading.Thread], closing: list[int]) -> int:
    read, write = os.pipe()
    threading.Thread(target=_copy, args=(0, write, True), daemon=True).start()  # never joined: it may wait on input
    closing.append(read)
    return read


def _output_pipe(dest: int, relays: list[threading.Thread], closing: list[int], log: LogTee | None = None,
                 stream: str = "") -> int:  # fmt: skip
    read, write = os.pipe()
    relay = threading.Thread(target=_copy, args=(read, dest, False, log, stream), daemon=True)
    relay.start()
    relays.append(relay)
    closing.append(write)
    return write


# --- -t --------------------------------------------------------------------------------------------


def _with_pty(start: Callable[[dict[str, Any], bool], Finished], interactive: bool, log: LogTee | None) -> Finished:
    from minictr.engine.console import Console

    done = threading.Event()
    pumps: list[threading.Thread] = []

    def pump(master: int) -> None:  # in start(), once the pty exists and before the container's program runs
        copy_window_size(0 if os.isatty(0) else 1, master)
        pumps.append(threading.Thread(target=_pump, args=(master, interactive, done, log), daemon=True))
        pumps[-1].start()

    console = Console(pump)
    null = subprocess.DEVNULL  # the child's streams until the pty's slave replaces them
    with raw_terminal(0 if interactive else -1), _window_follows(console):
        try:
            return start({"stdin": null, "stdout": null, "stderr": null, "console": console}, True)
        finally:
            done.set()  # with the container gone, the master reads EIO once drained
            for thread in pumps:
                thread.join(5)
            console.close()


def _pump(master: int, interactive: bool, done: threading.Event, log: LogTee | None = None) -> None:
    """Copy the caller's stdin to the pty and the pty to the caller's stdout, until the pty ends."""
    import select

    sources = [master, *([0] if interactive else [])]
    while True:
        ready = select.select(sources, [], [], 0.1 if done.is_set() else None)[0]
        if not ready and done.is_set():
            return
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every slave is closed
                data = b""
            if fd == master:
                if not data:
                    return
                if log is not None:
                    log.write("stdout", data)
                _write_all(1, data)
            elif data:
                _write_all(master, data)
            else:
                sources.remove(0)  # the caller's input ended; the container goes on


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def copy_window_size(source: int, dest: int) -> None:
    """Give the pty ``dest`` the window size of the terminal ``source`` (nothing when it is none)."""
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return
    fcntl.ioctl(dest, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Put the terminal ``fd`` in raw mode, and restore it however the block ends (-1 or not a terminal: nothing)."""
    if fd < 0 or not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)

    def restore_then_die(sig: int, _frame: object) -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)  # the signal's own ending, with the terminal as it was

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):  # those not forwarded (-t, or --sig-proxy=false) end us
        with contextlib.suppress(ValueError):  # not the main thread: nothing to catch
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, restore_then_die)
    tty.setraw(fd, termios.TCSANOW)  # not TCSAFLUSH: what was typed ahead is the container's
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _window_follows(console: Console) -> Iterator[None]:
    """On SIGWINCH (the caller's terminal resized) pass the new size on to the container's pty, once it has one."""
    source = 0 if os.isatty(0) else 1

    def resized(*_: object) -> None:
        if console.master >= 0:
            copy_window_size(source, console.master)

    try:
        previous = signal.signal(signal.SIGWINCH, resized)
    except ValueError:  # not the main thread: the size stays what it was at start
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
