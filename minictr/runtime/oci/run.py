"""``minictr-oci run``: create and start a container, and (unless detached) stay with it until it exits.

The container's first process is not our child once create returns (the
process that forked it has gone), so ``run`` makes itself a child
subreaper first: the orphan is then adopted by us, and ``waitpid`` gives
its exit status, as for conmon or containerd's shim.
"""

from __future__ import annotations

import argparse
import os
import signal

from minictr.kernel import linux
from minictr.runtime.oci import lifecycle

#: Signals passed on to the container while ``run`` waits for it.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def run(args: argparse.Namespace) -> int:
    """Create, start, wait, delete; return the program's exit status (128+N for signal N)."""
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    state = lifecycle.create(args.root, args.id, args.bundle or ".", pid_file=args.pid_file,
                             console_socket=args.console_socket, preserve_fds=args.preserve_fds,
                             systemd_cgroup=args.systemd_cgroup)  # fmt: skip
    try:
        lifecycle.start(args.root, args.id)
    except BaseException:
        lifecycle.delete(args.root, args.id, force=True)
        raise
    if args.detach:
        return 0
    for sig in FORWARDED:
        signal.signal(sig, lambda number, _frame: _signal(state.pid, number))
    try:
        return wait_for(state.pid)
    finally:
        lifecycle.delete(args.root, args.id, force=True)


def wait_for(pid: int) -> int:
    """Reap children (adopted orphans too) until ``pid`` exits; return its status the shell's way."""
    while True:
        try:
            found, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # not ours after all: it was reaped elsewhere
        except InterruptedError:
            continue
        if found == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
