"""chroot: the oldest trick, a process with a different root directory.

:func:`run` runs a command chrooted into a root filesystem — in a spawned
child, never in the caller — and returns its output and exit code::

    >>> from minictr import chroot
    >>> chroot.run("/var/lib/minictr/rootfs/busybox", ["cat", "/etc/hostname"])
    Result(exit_code=0, stdout='...', stderr='')

chroot changes *only* the root directory. Everything else is shared with the
host: its processes (mount /proc inside and ``ps`` lists them all), its
hostname, its network, its users — and a root process can walk back out
(:func:`escape`). The namespaces of the next notebooks close each gap.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minictr.runtime.process.parent import call as _call_in_child
from minictr.runtime.process.parent import spawn
from minictr.runtime.spec import DEFAULT_PATH, PROC_MOUNT, default_spec


@dataclass(frozen=True)
class Result:
    """What a finished command left: its exit status and its output, decoded."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0


def run(
    rootfs: str,
    args: list[str],
    *,
    env: list[str] | None = None,
    cwd: str = "/",
    mount_proc: bool = False,
    input: str | None = None,
    timeout: float | None = 60,
) -> Result:
    """Run ``args`` chrooted into ``rootfs`` and return its exit code and output.

    ``mount_proc`` mounts a procfs at ``<rootfs>/proc`` first — in a private
    mount namespace of the child, so the host never sees that mount. Without
    a PID namespace it shows every process of the host.
    Raises :class:`~minictr.errors.ContainerError` when set-up fails and
    :class:`~minictr.errors.ExecError` when the program cannot be run.
    """
    spec = default_spec(
        rootfs,
        args,
        env=env if env is not None else [DEFAULT_PATH, "HOME=/root"],
        cwd=cwd,
        mounts=[PROC_MOUNT] if mount_proc else [],
    )
    process = spawn(spec, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.start()
    try:
        out, err, code = process.communicate(input.encode() if input is not None else None, timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return Result(code, out.decode(errors="replace"), err.decode(errors="replace"))


def call(rootfs: str, function: Callable[..., Any], *args: Any, mount_proc: bool = False) -> Any:
    """Run the Python ``function(*args)`` chrooted into ``rootfs`` and return its value.

    The child interpreter is already loaded when it chroots, so Python code
    keeps running inside a root filesystem that has no Python at all — only
    new imports fail. See :func:`minictr.runtime.process.parent.call`.
    """
    spec = default_spec(rootfs, ["python-function"], mounts=[PROC_MOUNT] if mount_proc else [])
    return _call_in_child(spec, function, *args)


def escape() -> list[str]:
    """Break out of a chroot and return what ``/`` holds afterwards (the host's root!).

    The classic escape, for a process that is root inside a chroot:

    1. make a directory and ``chroot`` into it *without* ``chdir``: the root
       moves down one level, and the working directory is now *outside* it;
    2. ``chdir("..")`` is only stopped at the process's root — which is below
       us now — so it climbs all the way up to the host's real ``/``;
    3. ``chroot(".")`` makes that the root again.

    Run it with :func:`call`. A mount namespace and ``pivot_root`` (notebook
    02) make the host's root unreachable, so the same code then fails.
    """
    os.makedirs("/.escape", exist_ok=True)
    os.chroot("/.escape")
    for _ in range(100):
        os.chdir("..")
    os.chroot(".")
    return sorted(os.listdir("/"))
