"""Processes as the host sees them, read from ``/proc``: names, parents, states, and waiting for them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards: state, parent pid, …)."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def comm(pid: int) -> str:
    """The command name of a process (``/proc/<pid>/comm``), as ``ps`` shows it."""
    with open(f"/proc/{pid}/comm") as handle:
        return handle.read().strip()


def comm_or_none(pid: int) -> str | None:
    """:func:`comm`, or None when the process has gone."""
    try:
        return comm(pid)
    except OSError:
        return None


def status(pid: int) -> dict[str, str]:
    """The lines of ``/proc/<pid>/status`` as a dict: ``{"Name": "sleep", "State": "S (sleeping)", ...}``."""
    with open(f"/proc/{pid}/status") as handle:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in handle)}


def alive(pid: int) -> bool:
    """True while ``pid`` runs: it exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        return stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # it exited while we looked
    return sorted(found)


def tree(pid: int, line: Callable[[int, int], T | None]) -> list[T]:
    """``line(pid, depth)`` for ``pid`` and each of its descendants, depth first; None (it has gone) ends a branch."""
    lines: list[T] = []

    def walk(current: int, depth: int) -> None:
        text = line(current, depth)
        if text is None:
            return
        lines.append(text)
        for child in children(current):
            walk(child, depth + 1)

    walk(pid, 0)
    return lines


def branch(depth: int) -> str:
    """The indentation of a process ``depth`` levels below the top of a tree (``└─``)."""
    return "   " * (depth - 1) + "└─ " if depth else ""


def process_tree(pid: int) -> str:
    """``pid`` and its descendants as an indented tree: ``name (pid N)`` per line."""

    def line(current: int, depth: int) -> str | None:
        name = comm_or_none(current)
        return None if name is None else branch(depth) + f"{name} (pid {current})"

    return "\n".join(tree(pid, line))


# --- waiting ---------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 10, what: str = "the condition") -> Any:
    """Call ``predicate`` until it returns something true, and return that; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def _wait_for(parent: int | subprocess.Popen[Any], name: str, timeout: float, *, deep: bool) -> int:
    """Wait for a child (``deep``: any descendant) of ``parent`` called ``name``; return its pid."""
    pid = parent if isinstance(parent, int) else parent.pid
    kin = "descendant" if deep else "child"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        level = children(pid)
        while level:
            for child in level:
                if comm_or_none(child) == name:
                    return child
            level = [grandchild for child in level for grandchild in children(child)] if deep else []
        if not isinstance(parent, int) and parent.poll() is not None:
            args = parent.args
            shown = " ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
            raise RuntimeError(f"{shown} exited with status {parent.returncode} before a {name!r} process appeared")
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} has no {kin} named {name!r} after {timeout:g} s")


def wait_for_child(parent: int | subprocess.Popen[Any], name: str, timeout: float = 15) -> int:
    """Wait until ``parent`` (a pid or a Popen) has a child called ``name`` (it has exec'd); return its pid.

    With a Popen, a parent that exits first is reported at once, with its exit status.
    """
    return _wait_for(parent, name, timeout, deep=False)


def wait_for_descendant(parent: int | subprocess.Popen[Any], name: str, timeout: float = 15) -> int:
    """Like :func:`wait_for_child`, but ``name`` may be any descendant of ``parent``; return its pid.

    ``minictr run`` starts ``minictr-wait``, whose child is the container's
    PID 1: ``wait_for_descendant(cli, "sleep")`` finds that grandchild.
    """
    return _wait_for(parent, name, timeout, deep=True)


# --- ending a ``minictr run`` started in the background ------------------------------------------


def _exit_status(code: int) -> int:
    """A Popen return code as a shell shows it: killed by signal N is 128 + N."""
    return 128 - code if code < 0 else code


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> int:
    """Stop a ``minictr run`` started in the background, as ``docker stop`` does; return its exit status.

    SIGTERM first — minictr passes it on to the container's program — and
    SIGKILL if it is still running after ``timeout`` seconds. A process that
    has ended already is only reaped. Killed by signal N gives 128 + N.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return _exit_status(process.returncode)


def kill_container(cli: subprocess.Popen[Any], pid: int, timeout: float = 10) -> int:
    """End a ``minictr run`` started in the background: SIGKILL to its PID 1 (host pid ``pid``); return the status.

    Its PID 1 ignores SIGTERM unless it has a handler for it (notebook 04), so
    :func:`stop` would wait in vain. Once PID 1 is gone, ``minictr`` removes
    the container's directory and exits with 137 (128 + SIGKILL). Does
    nothing but reap when it has ended already.
    """
    if cli.poll() is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return _exit_status(cli.wait(timeout))
