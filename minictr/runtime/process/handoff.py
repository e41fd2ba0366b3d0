"""The child's side of an OCI runtime's create/start split: exec fifo, console socket, hooks.

``minictr-oci create`` exits while the container waits, so the child cannot
wait for START on the socketpair (its other end dies with the CLI). As the
runtime-spec's reference runtime does, it waits on a fifo instead::

    minictr-oci create                      child (the container's PID 1)
      mkfifo <root>/<id>/exec.fifo
      open(path, O_PATH) = N
      spawn(..., exec_fifo_fd=N)  -------->  holds N (no path: a mapped root may not reach the state root)
                                             ... set-up ...
      <------------------------------ READY  close the channel
      exits                                  open(/proc/self/fd/N, O_WRONLY)   blocks...
    minictr-oci start
      open(path, O_RDONLY) ----------------> ...returns; write "0"
      read "0": it is about to exec          startContainer hooks, seccomp, execve
      unlink(path)

With ``process.terminal`` the caller connects to ``--console-socket`` and
passes the connected socket (``console_fd``); the child opens a pty *inside*
the container (its devpts), sends the master over the socket with
SCM_RIGHTS and makes the slave its controlling terminal and stdio.
``leave_init`` makes the process waiting for PID 1 (see
``child.fork_init``) leave at once, so that PID 1 is adopted by the
caller's subreaper (conmon, containerd's shim) that waits for it.
"""

from __future__ import annotations

import _socket  # not socket: see minictr.runtime.process.channel
import fcntl
import os
import sys
import termios

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from typing import Any
else:  # signal's own functions, without the enums its wrapper builds (ms of every start); checkers read signal
    import _signal as signal

from minictr.errors import ExecError
from minictr.runtime.process.channel import Message, send_fds


def open_exec_fifo(setup: Any) -> None:
    """Take the exec fifo's O_PATH descriptor the runtime opened and passed (closed on exec): no path is needed."""
    fd = setup.options.get("exec_fifo_fd")
    if fd is not None:
        os.set_inheritable(fd, False)
        setup.fifo = fd


def runtime_hooks(setup: Any) -> None:
    """Have the runtime run prestart/createRuntime hooks (its namespaces), then run createContainer here.

    Here is the container's namespaces, before pivot_root, as the runtime-spec says.
    """
    if not setup.options.get("hooks"):
        return
    from minictr.runtime.oci import hooks  # imported before the root changes: startContainer hooks need it later

    setup.channel.send(Message.HOOKS, pid=os.getpid())
    setup.state = setup.channel.expect(Message.HOOKS_DONE)["state"]
    hooks.run(setup.spec.get("hooks", {}), "createContainer", setup.state)


def start_hooks(setup: Any) -> None:
    """startContainer hooks: after ``start``, before the program, in the container (paths resolve there)."""
    if setup.options.get("hooks") and setup.spec.get("hooks", {}).get("startContainer"):
        from minictr.runtime.oci import hooks

        # created: the spec's status until the program runs (runc passes the same)
        hooks.run(setup.spec["hooks"], "startContainer", {**setup.state, "status": "created"})


def open_terminal(setup: Any) -> None:
    """``process.terminal``: a pty from the container's devpts, master to the console socket, slave as stdio."""
    fd = setup.options.get("console_fd")
    if fd is None:
        return
    master, slave = os.openpty()
    try:
        console = _socket.socket(fileno=fd)
        try:
            send_fds(console, os.ttyname(slave).encode(), [master])
        finally:
            console.close()
    finally:
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


def check_program(setup: Any) -> None:
    """Find the program before reporting READY, so that ``create`` fails for a missing one (exit 127 for engines)."""
    if setup.options.get("exec_fifo_fd") is None:
        return
    args = setup.spec.get("process", {}).get("args") or []
    if not args:
        raise ExecError("no command given: process.args is empty", step="exec")
    name = args[0]
    if "/" in name:
        candidates = [name]
    else:
        env = dict(item.split("=", 1) for item in setup.spec["process"].get("env", []) if "=" in item)
        candidates = [os.path.join(d or ".", name) for d in env.get("PATH", "").split(":")]
    for path in candidates:
        if os.path.exists(path) and ("/" in name or os.path.isfile(path)):
            if not os.path.isfile(path) or not os.access(path, os.X_OK):  # a directory too: execve says EACCES
                raise ExecError(f'exec: "{name}": permission denied', step="exec", errno=13)
            return
    what = "no such file or directory" if "/" in name else "executable file not found in $PATH"
    raise ExecError(f'exec: "{name}": {what}', step="exec", errno=2)


#: Signals whose default action ends a process. The kernel spares a pid namespace's init every signal it has
#: no handler for (SIGKILL aside), so a created container would shrug off ``kill ID TERM``; runc's waiting init
#: dies of them, and engines stop a created container so. The handlers go with execve.
ENDING_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
                  signal.SIGALRM)  # fmt: skip


def _exit_on_signal(number: int, frame: object) -> None:
    os._exit(128 + number)


def wait_for_start(setup: Any) -> None:
    """Close the channel (the creating CLI is gone) and block until ``start`` opens the fifo.

    Meanwhile a signal that would end an ordinary process ends this one (see :data:`ENDING_SIGNALS`).
    """
    setup.channel.close()
    for number in ENDING_SIGNALS:
        signal.signal(number, _exit_on_signal)
    fd = os.open(f"/proc/self/fd/{setup.fifo}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fd)
    os.close(setup.fifo)
    for number in ENDING_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def report(message: str) -> None:
    """An error after the channel closed: the container's stderr is all that is left."""
    try:
        sys.stderr.write(f"minictr-oci: {message}\n")
        sys.stderr.flush()
    except OSError:
        pass


def set_sysctl(setup: Any) -> None:
    """``linux.sysctl``: set through the container's /proc (its namespaces' values) before /proc/sys is read-only."""
    for key, value in (setup.linux.get("sysctl") or {}).items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as handle:
            handle.write(value)
