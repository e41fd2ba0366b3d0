"""The life of a network's helper processes (its DNS server, its netlink agent): start, ready, stop.

Both are started the same way: a fresh interpreter (``python -s -E -m``,
minictr from its package's parent, no working directory of the caller's
held) that forks once so it is reparented away from whoever started it,
moves to the root cgroups (out of its starter's, which it would keep alive),
names itself, records itself (pid and start time) and then says ``ready`` on
its stdout. The starter waits for that line, so a helper that is recorded is
one that serves. Stopping tolerates a helper already gone, and a pid reused
by another process (the recorded start time must match).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


def start(module: str, args: list[str], log_path: str) -> str:
    """Run ``python -m module args`` detached; its first line on stdout (``ready``, or why not)."""
    from minictr import faults
    from minictr.runtime.process.parent import _package_parent

    command = [sys.executable, "-s", "-E", "-m", module, *args]
    # a fault step is the command's: a helper outlives the command and never dies at its steps
    environment = {key: value for key, value in os.environ.items() if key != faults.VARIABLE}
    with open(log_path, "ab") as log:  # its errors, for whoever wonders why
        starter = subprocess.Popen(command, cwd=_package_parent(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=log, start_new_session=True, env=environment)  # fmt: skip
    assert starter.stdout is not None
    ready = select.select([starter.stdout], [], [], START_TIMEOUT)[0]
    line = starter.stdout.readline().decode().strip() if ready else "error: it did not say it was ready in time"
    starter.stdout.close()
    starter.wait()  # the half that forked the helper exits at once
    return line


def stop(pid: int | None, start_time: str) -> None:
    """End process ``pid`` if it still is the one started at ``start_time``: SIGTERM, then SIGKILL."""
    from minictr.runtime.state import alive

    if not pid or not alive(pid, start_time):
        return
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGCONT)  # a stopped helper acts on SIGTERM only once it runs
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid, start_time) and time.monotonic() < deadline:
        time.sleep(0.01)
    if alive(pid, start_time):
        os.kill(pid, signal.SIGKILL)


def detach(name: str) -> None:
    """In the helper, first: fork (the starter reaps the first half), leave the starter's cgroup for the root
    ones (a helper outlives the command, or monitor, that started it) and take ``name`` as the process name.
    """
    if os.fork():
        os._exit(0)
    if os.geteuid() == 0:
        from minictr.kernel import cgroups

        cgroups.move_to_root()
    with open("/proc/self/comm", "w") as handle:
        handle.write(name)


def record(path: str, **extra: object) -> None:
    """In the helper: write its record (pid, start time, ``extra``) to ``path``."""
    from minictr.files import write_json
    from minictr.runtime.state import start_time

    pid = os.getpid()
    write_json(path, {"pid": pid, "start": start_time(pid), **extra})


def ready() -> None:
    """In the helper: say ``ready`` to the starter, then let go of its pipe."""
    os.write(1, b"ready\n")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
