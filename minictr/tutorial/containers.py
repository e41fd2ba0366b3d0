"""Running containers, reached from a notebook: run a function or a command inside, remove them afterwards."""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from minictr.tutorial.common import show_finished
from minictr.tutorial.processes import alive, children, comm_or_none, stat_fields, wait_until

if TYPE_CHECKING:
    from minictr.engine.container import Finished


def pid_of(container_id: str) -> int:
    """The host pid of a running (detached) container's first process: its PID 1 (``state.json``)."""
    from minictr.engine import container

    return int(container.find(container_id)["pid"])


def call_in(pid: int, function: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
    """Run ``function(*args)`` inside the running container whose PID 1 is host pid ``pid``; return its value.

    This is :func:`minictr.runtime.process.parent.call` with ``join=pid``: a spawned
    child enters the container as ``minictr exec`` does — every namespace of
    ``pid`` with setns(2), then its root directory — and runs the function
    there (never this process). The function travels as source and sees
    ``os``; inside, ``import`` works only for modules that child had loaded
    already (``ctypes``, ``minictr.kernel.linux``), as after any change of root. An
    exception inside is raised here as :class:`minictr.errors.ContainerError`.
    """
    from minictr.runtime.process.parent import call
    from minictr.runtime.spec import default_spec

    return call(default_spec(f"/proc/{pid}/root", ["python-function"]), function, *args, timeout=timeout, join=pid)


def _exec(container_id: str, command: tuple[str, ...]) -> Finished:
    """:func:`minictr.engine.exec.exec_in`, capturing the output."""
    from minictr.engine.exec import exec_in as engine_exec_in

    return engine_exec_in(container_id, list(command), capture=True)


def exec_in(container_id: str, *command: str) -> None:
    """Run ``command`` in a running container, as ``minictr exec`` does, and print what it printed.

    This is :func:`minictr.engine.exec.exec_in` with the output captured and
    printed, and the exit status when it is not 0.
    """
    print("$ minictr exec " + shlex.join([container_id, *command]))
    done = _exec(container_id, command)
    show_finished(done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"), done.exit_code)


def exec_output(container_id: str, *command: str) -> str:
    """The standard output of ``command`` run in a running container (printing nothing)."""
    return str(_exec(container_id, command).stdout.decode(errors="replace"))


def remove_container(container_id: str, timeout: float = 10) -> None:
    """Make sure a detached container is gone: SIGKILL its PID 1 if it still runs, wait, remove its directory.

    A container started with ``RunOptions(detach=True)`` from this process
    leaves its waiting process (``minictr-wait``) as a child of ours; it is
    reaped here, so that no zombie is left either. One started by
    ``minictr run -d`` lives under its monitor: ``rm -f`` removes it.
    """
    from minictr.engine import container, container_dir, lifecycle, managed
    from minictr.errors import UsageError
    from minictr.runtime.state import read_state

    try:
        if read_state(managed.resolve(container_id)).get("managed"):
            lifecycle.remove(container_id, force=True)
            return
    except UsageError:
        pass  # not found: it ended, or it was never under a monitor
    try:
        pid = int(container.find(container_id)["pid"])
    except UsageError:
        pid = 0  # it has ended already
    waiter = 0
    if pid:
        try:
            waiter = int(stat_fields(pid)[1])  # its parent: the minictr-wait process
            os.kill(pid, signal.SIGKILL)  # PID 1 cannot ignore a SIGKILL sent from the host
        except (OSError, IndexError):
            pass
        wait_until(lambda: not alive(pid), timeout, f"the end of container {container_id}")
    if waiter:
        wait_until(lambda: _reaped(waiter), timeout, f"the end of minictr-wait (pid {waiter})")
    for child in children(os.getpid()):  # the waiters of containers that ended on their own
        if comm_or_none(child) == "minictr-wait" and not alive(child):
            _reaped(child)
    container_dir.remove_stale(container_dir.containers_dir())


def _reaped(pid: int) -> bool:
    """Reap ``pid`` if it is an exited child of ours; True once it is no child of ours any more."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return True  # not our child (or reaped already): nothing to do
