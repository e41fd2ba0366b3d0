"""The container's PID 1 and its ties to whoever started it.

:func:`die_with_parent` asks the kernel to kill the child with its parent;
:func:`fork_init` forks once the pid namespace exists, so that the child of
the fork is PID 1 while the process before it waits to pass on the exit
status; :func:`run_init` is the minimal init (``--init``) that reaps orphans
and forwards signals. Notebook 04 reads these.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:  # signal's own functions, without the enums its wrapper builds (ms of every start); checkers read signal
    import _signal as signal

from minictr.kernel import linux
from minictr.runtime.process.channel import Message
from minictr.runtime.process.program import exec_program
from minictr.runtime.process.setup import Setup, StepFailed, run_own


def die_with_parent(setup: Setup) -> None:
    """Ask the kernel to SIGKILL us if the parent dies (foreground ``run``, ``exec``): nothing outlives it.

    Then check the parent still lives: one that died before we asked sends
    nothing. The kernel forgets the request whenever our credentials change
    (becoming root of a user namespace, :func:`set_user`), so it is made again
    before :func:`fork_init` forks and after the last step; PID 1 asks for
    its own, tied to the waiting process.
    """
    if setup.options.get("die_with_parent"):
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if not _parent_alive(setup):
            os._exit(137)


def _parent_alive(setup: Setup) -> bool:
    """Is our parent still there? PID 1 of a new pid namespace cannot ask getppid() (0): it reads its lifeline."""
    if setup.lifeline is None:
        parent: int = setup.options.get("parent_pid", os.getppid())
        return os.getppid() == parent
    try:
        return os.read(setup.lifeline, 1) != b""  # end of file: the waiting process, its only writer, is gone
    except BlockingIOError:
        return True


def fork_init(setup: Setup) -> None:
    """Fork the container's PID 1 when pid or time namespaces are new (they hold our *children*).

    This process stays behind, tells the parent the host pid of PID 1, and
    waits to pass on its exit status; the child carries on with the recipe.
    """
    if not ({"pid", "time"} & setup.new):
        return
    die_with_parent(setup)  # again: entering a user namespace as its root cleared it
    # The child may not speak on the channel before INIT_PID is sent, or the parent
    # would read its READY first: it waits for this pipe to close.
    told_r, told_w = os.pipe2(os.O_CLOEXEC)
    life_r, life_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)  # the waiting process holds life_w until it dies
    child = os.fork()
    if child == 0:
        os.close(told_w)
        os.close(life_w)
        setup.lifeline = life_r
        die_with_parent(setup)  # die with the process that waits for us
        os.read(told_r, 1)
        os.close(told_r)
        return
    os.close(told_r)
    os.close(life_r)
    setup.channel.send(Message.INIT_PID, pid=child)
    os.close(told_w)
    setup.channel.close()
    if setup.options.get("leave_init"):
        os._exit(0)  # minictr-oci: PID 1 goes to the caller's subreaper, which waits for it (see handoff)
    linux.set_process_name("minictr-wait")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, lambda number, _frame: _kill_quietly(child, number))
    if setup.options.get("die_with_parent"):
        _take_init_along(setup, child)
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


#: The waiting process's death signal, caught: it SIGKILLs PID 1 before it goes.
PARENT_DIED = signal.SIGRTMIN


def _take_init_along(setup: Setup, init: int) -> None:
    """When minictr dies, SIGKILL PID 1 from here, and with it its whole pid namespace.

    PID 1's own death signal is lost when its program is set-user-ID or has
    file capabilities (the kernel clears it at such an execve); this
    process's is not: it never changes credentials or execs again.
    """
    signal.signal(PARENT_DIED, lambda _number, _frame: _kill_quietly(init, signal.SIGKILL))
    linux.prctl(linux.PR_SET_PDEATHSIG, PARENT_DIED)
    if not _parent_alive(setup):
        _kill_quietly(init, signal.SIGKILL)


def run_init(setup: Setup) -> None:
    """``--init``: stay as PID 1, run the program as our child, reap every zombie, pass signals on.

    A program that finds itself PID 1 gets no default signal actions (SIGTERM
    is ignored unless it installs a handler) and inherits every orphan of the
    container, which it must ``wait`` for. This small init does both jobs.
    """
    forwarded = {
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGQUIT,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
    }
    # Blocked until our handlers are in place: a signal sent the moment the program starts must not be lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    program = os.fork()
    if program == 0:
        os.close(ready_r)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)  # execve keeps the mask: the program must not inherit it
        try:
            exec_program(setup.spec)
        except StepFailed as exc:
            os.write(ready_w, f"{exc.errno or 0} {exc}".encode())
        os._exit(127)
    os.close(ready_w)
    report = os.read(ready_r, 4096).decode()  # empty: the program's execve closed the pipe
    os.close(ready_r)
    if report:
        number, _, message = report.partition(" ")
        raise StepFailed("exec", message, int(number) or None)
    setup.channel.close()  # tell the parent the program runs
    linux.set_process_name("minictr-init")
    if "init" in setup.own:
        _own_init(setup, program, forwarded)
    for sig in forwarded:
        signal.signal(sig, lambda number, _frame: _kill_quietly(program, number))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == program:
            os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def _own_init(setup: Setup, program: int, forwarded: set[signal.Signals]) -> None:
    """A learner's init (notebook 04) in place of the loop above: it installs its handlers, reaps, returns a status.

    The status is an exit code as Python gives it: -N for a program killed by signal N, which a shell shows as 128 + N.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
    status = run_own(setup, "init", program)
    code = status if isinstance(status, int) else 0
    os._exit(128 - code if code < 0 else code & 0xFF)


def _kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
