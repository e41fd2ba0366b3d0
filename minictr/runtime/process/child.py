"""The container's first process: a fresh interpreter that sets up, then becomes the program.

Started by :mod:`minictr.runtime.process.parent` as ``python -c`` calling :func:`main` with ``FD``
(what ``python -m minictr.runtime.process.child FD`` does, without runpy's imports).
It is single-threaded and owns nothing of its parent, so it may unshare, mount,
pivot and drop privileges freely. It reads its orders (an OCI runtime-spec
config) from the channel on FD and runs a flat recipe of named steps::

    die_with_parent → enter_user_namespace → join_namespaces → unshare_namespaces
    → set_time_offsets → fork_init (pid and time namespaces apply to children:
      from here on we are the container's PID 1; the process before it waits)
    → join_cgroup (the parent places us; then the cgroup namespace) → set_rlimits → set_oom_score_adj
    → set_hostname → loopback_up → private_mounts → mount_overlay → bind_root
    → mount_spec_mounts → create_devices → enter_root
    → open_terminal (-t: a pty from the container's own devpts, its master to the console socket,
      the slave the controlling terminal of a session of its own) → readonly_root → mask_paths
    → drop_bounding → load_seccomp_early → keep_capabilities → set_user → set_capabilities
    → no_new_privs → READY … START → load_seccomp → exec (or run a minimal init that execs the program)

The steps live by idea: :mod:`.init_process` (the ties to the parent, the
fork that makes PID 1, the minimal init), :mod:`.isolation` (namespaces,
hostname, mounts, the root), :mod:`.restriction` (limits, capabilities,
seccomp) and :mod:`.program` (the exec); :mod:`.setup` is what they share.
This module is the recipe's order and the loop that runs it.

Each step reads the spec and does nothing when the spec does not ask for it;
:mod:`.recipe` groups them into the steps the notebooks teach, and names the
ones a learner's own function may carry out instead (``own_steps``).
Everything is imported *before* the root changes: afterwards the
interpreter's own files are out of reach.
"""

from __future__ import annotations

import os
import sys

from minictr.errors import MinictrError, SyscallError
from minictr.kernel import linux, namespaces
from minictr.runtime.process import handoff
from minictr.runtime.process.channel import Channel, Message, ProtocolError
from minictr.runtime.process.init_process import die_with_parent, fork_init, run_init
from minictr.runtime.process.isolation import (
    become_root_inside,
    bind_root,
    create_devices,
    enter_root,
    enter_user_namespace,
    join_cgroup,
    join_namespaces,
    loopback_up,
    mount_overlay,
    mount_spec_mounts,
    private_mounts,
    readonly_root,
    set_hostname,
    set_time_offsets,
    unshare_namespaces,
)
from minictr.runtime.process.program import call_function, exec_program
from minictr.runtime.process.restriction import (
    drop_bounding,
    keep_capabilities,
    load_seccomp,
    load_seccomp_early,
    mask_paths,
    no_new_privs,
    set_capabilities,
    set_oom_score_adj,
    set_rlimits,
    set_user,
)
from minictr.runtime.process.setup import Setup, StepFailed

TYPE_CHECKING = False  # the child imports only what it uses: typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable


def enter_container(setup: Setup) -> None:
    """``exec``: join every namespace of a running container, then its root directory.

    Its root is opened first (``/proc/<pid>/root``): after joining its mount
    namespace our own root would still be the host's, and ``chroot`` through
    that descriptor is how we get inside. Joining a pid namespace places our
    *children* in it, so we fork afterwards like a new container does.
    """
    pid = setup.options["join"]
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        joined = namespaces.join_all(pid)
        if "user" in joined:
            become_root_inside()
        if "pid" in joined:
            setup.new.add("pid")  # so that fork_init forks
            fork_init(setup)
        os.fchdir(root)
        os.chroot(".")
    finally:
        os.close(root)
    cwd = setup.spec.get("process", {}).get("cwd", "/")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise StepFailed("cwd", f"chdir to working directory {cwd!r}: {exc.strerror}", exc.errno) from exc


SECURITY_STEPS: list[Callable[[Setup], None]] = [
    drop_bounding, load_seccomp_early, keep_capabilities, set_user, set_capabilities, no_new_privs,
]  # fmt: skip

EXEC_STEPS: list[Callable[[Setup], None]] = [
    die_with_parent, set_rlimits, enter_container, join_cgroup, handoff.open_terminal,
    *SECURITY_STEPS,
]  # fmt: skip

STEPS: list[Callable[[Setup], None]] = [
    die_with_parent,
    enter_user_namespace,
    join_namespaces,
    unshare_namespaces,
    set_time_offsets,
    fork_init,
    join_cgroup,
    set_rlimits,
    set_oom_score_adj,
    set_hostname,
    loopback_up,
    private_mounts,
    mount_overlay,
    bind_root,
    mount_spec_mounts,
    create_devices,
    handoff.open_exec_fifo,
    handoff.runtime_hooks,
    enter_root,
    handoff.open_terminal,
    handoff.set_sysctl,
    readonly_root,
    mask_paths,
    *SECURITY_STEPS,
    handoff.check_program,
]


def run_step(step: Callable[[Setup], None], setup: Setup) -> None:
    """Run one step; any failure becomes a StepFailed naming it."""
    try:
        step(setup)
    except StepFailed:
        raise
    except SyscallError as exc:
        raise StepFailed(step.__name__, str(exc), exc.errno) from exc
    except MinictrError as exc:
        raise StepFailed(getattr(exc, "step", "") or step.__name__, str(exc), getattr(exc, "errno", None)) from exc
    except OSError as exc:
        where = f": {exc.filename!r}" if exc.filename else ""
        raise StepFailed(step.__name__, f"{step.__name__}: {exc.strerror}{where}", exc.errno) from exc


def run(channel: Channel) -> None:
    """The whole life of the child: receive, set up, report, wait, exec."""
    config = channel.receive()
    if config is None:
        return  # our parent started us ahead (start_interpreter), then failed or died: nothing was made yet
    if config["type"] != Message.CONFIG:
        raise ProtocolError(Message.CONFIG, config["type"])
    setup = Setup(config, channel)
    if config.get("call") or setup.own:
        _load_for_learners()
    for step in EXEC_STEPS if setup.options.get("join") else STEPS:
        run_step(step, setup)
    die_with_parent(setup)  # again: set_user (any change of credentials) cleared it
    fds = [setup.netlink.fileno()] if setup.netlink else None
    channel.send(Message.READY, fds, pid=os.getpid(), root=setup.root_method, note=setup.root_note)
    if setup.netlink:
        setup.netlink.close()
    if setup.fifo is not None:
        handoff.wait_for_start(setup)  # minictr-oci: `start` opens the fifo, the creating CLI is gone
        run_step(handoff.start_hooks, setup)
    else:
        channel.expect(Message.START)
    run_step(load_seccomp, setup)
    if config.get("call"):
        channel.send(Message.RESULT, value=call_function(config["call"]))
        return
    if setup.options.get("init") or "init" in setup.own:  # a learner's init is PID 1 with --init
        run_init(setup)
    exec_program(setup.spec)


def _load_for_learners() -> None:
    """Load what a learner's function may import once the root has changed (it can import nothing new then).

    A container's own start path does without them (``json``, ``socket``, ``signal`` and what they import
    cost milliseconds); a lesson's function or exercise step has them, as it always had.
    """
    import json  # noqa: F401
    import signal  # noqa: F401
    import socket  # noqa: F401


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` is ``[-c or this file, FD, INTERPRETER_FD?]`` (see ``parent.child_command``)."""
    fd = int(argv[1])
    os.set_inheritable(fd, False)  # close-on-exec: a successful execve tells the parent by EOF
    if len(argv) > 2:
        os.close(int(argv[2]))  # the sealed interpreter we run from: nothing of it may reach the container
    channel = Channel.from_fd(fd)
    linux.set_process_name("minictr-child")
    try:
        run(channel)
    except StepFailed as exc:
        _send_error(channel, exc.step, str(exc), exc.errno)
        return 127 if exc.step == "exec" else 125
    except Exception as exc:  # anything else is a bug: report it rather than hang the parent
        _send_error(channel, "internal", f"{type(exc).__name__}: {exc}", None)
        return 125
    return 0  # after a call; after an exec this line is never reached


def _send_error(channel: Channel, step: str, message: str, err: int | None) -> None:
    """Report a failure to the parent; once the channel is closed (after minictr-oci create), on stderr."""
    try:
        channel.send(Message.ERROR, step=step, message=message, errno=err)
    except OSError:
        handoff.report(message)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
