"""The per-container monitor (``minictr-monitor``), as conmon is for podman.

One monitor per running managed container (:mod:`minictr.engine.managed`). It is
the container's parent, so the container never depends on the command that
started it: ``kill -9`` of the CLI, a notebook kernel restarted, a terminal
closed — the container runs on, and its exit is still recorded. One process
(one pid, holding ``<dir>/monitor.lock`` throughout) goes through three
phases by ``execve``, so that the long one is small::

    caller ─ Popen ─▶ start  (fork: the caller reaps the first half at once;
                              the second, in a session of its own, starts the
                              container: cgroup, network, spawn — pyroute2 and
                              all — then reports {"id"} or {"error"} on stdout)
                        │ execve (-S: no site-packages; only the pipes, the
                        ▼        child's pid and the lock are carried over)
                      watch  (lean: copies the container's stdout/stderr, or
                              its pty, into the json-file log and to attached
                              clients (minictr.engine.attach); runs its healthcheck
                              every interval (minictr.engine.health, in a process of
                              its own per check); waits for it)
                        │ execve, with the exit status
                        ▼
                      finish (records exit_code, oom_killed, finished_at;
                              gives back the cgroup and network; then, as the
                              restart policy says, starts it again (→ watch),
                              or removes it (--rm), or exits)

Started by :func:`minictr.engine.managed.start` as ``python -m minictr.engine.monitor start DIR``.
The watch phase imports only the standard library and :mod:`minictr.engine.logs`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # typing is for checkers; the watch phase does without it
if TYPE_CHECKING:
    from typing import Any

PROCESS_NAME = "minictr-monitor"


def _name_self() -> None:
    """``ps``/``comm`` show ``minictr-monitor`` (written to /proc, to spare the watch phase ctypes)."""
    try:
        with open("/proc/self/comm", "w") as handle:
            handle.write(PROCESS_NAME)
    except OSError:
        pass


def _read_state(directory: str) -> dict[str, Any]:
    with open(os.path.join(directory, "state.json")) as handle:
        state: dict[str, Any] = json.load(handle)
        return state


def _exec_phase(heavy: bool, phase: str, directory: str, *args: object) -> None:
    """Become the next phase: same pid (the container stays our child), same lock."""
    from minictr.engine.managed import monitor_command  # only the heavy phases exec from here with it imported

    os.execv(sys.executable, [*monitor_command(heavy), phase, directory, *map(str, args)])


# --- start -------------------------------------------------------------------------------------


def start(directory: str) -> int:
    """Detach from the caller, take the lock, start the container, report, become the watch phase."""
    if os.fork():
        os._exit(0)  # the caller reaps this half; the monitor is reparented away from it
    _name_self()
    import fcntl

    lock = os.open(os.path.join(directory, "monitor.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _report({"error": f"container {os.path.basename(directory)} is already running", "step": "start"})
        return 1
    from minictr.engine.monitor_cgroup import enter
    from minictr.errors import MinictrError

    try:
        enter(directory)  # out of the caller's cgroup: stopping it must not stop us
    except (OSError, MinictrError) as exc:
        print(f"minictr-monitor: staying in the caller's cgroup: {exc}", file=sys.stderr)  # to monitor.log
    return start_container(directory, lock, report=True)


def start_container(directory: str, lock: int, report: bool) -> int:
    """Start the container (first start or a restart) and become the watch phase; 1 if it failed."""
    from minictr.engine.managed import start_here
    from minictr.errors import MinictrError
    from minictr.runtime.state import update_state

    settings = _read_state(directory).get("lifecycle", {})
    tty = bool(settings.get("tty"))
    console = None
    try:
        if tty:  # the container opens its pty from its own devpts; its master comes back (minictr.engine.console)
            from minictr.engine.console import Console

            console = Console()
            null = subprocess_devnull()
            stdio: dict[str, Any] = {"stdin": null, "stdout": null, "stderr": null, "console": console}
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            in_r, given = os.pipe() if settings.get("interactive") else (subprocess_devnull(), -1)
            outputs = [out_r, err_r]
            stdio = {"stdin": in_r, "stdout": out_w, "stderr": err_w}
        try:
            process = start_here(directory, stdio, terminal=tty)
        finally:
            for fd in {v for v in stdio.values() if isinstance(v, int) and v >= 0}:
                os.close(fd)
        if console is not None:
            outputs, given = [console.master], console.master
    except (MinictrError, OSError) as exc:
        if console is not None:
            console.close()
        update_state(directory, {"error": str(exc)})
        if report:
            _report({"error": str(exc), "step": getattr(exc, "step", ""), "errno": getattr(exc, "errno", None)})
        return 1
    from minictr.engine.attach import listen
    from minictr.engine.health import config_of, reset

    if config_of(_read_state(directory)):
        reset(directory)  # starting, until its first check says otherwise
    listener = listen(directory)
    if report:
        _report({"id": os.path.basename(directory), "pid": process.pid})
    child = process.popen.pid
    for fd in (*outputs, lock, listener, *([given] if given >= 0 else [])):
        os.set_inheritable(fd, True)
    _exec_phase(False, "watch", directory, child, lock, listener, "tty" if tty else "pipes", given, *outputs)
    return 0  # not reached


def subprocess_devnull() -> int:
    """An open /dev/null, for a container that takes no input."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _report(message: dict[str, Any]) -> None:
    """Tell the caller how the start went, then let go of its pipe (and of its terminal)."""
    try:
        os.write(1, json.dumps(message).encode())
    except OSError:
        pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)


# --- watch -------------------------------------------------------------------------------------


def watch(directory: str, child: int, lock: int, listener: int, mode: str, given: int, fds: list[int]) -> int:
    """Copy the container's output into its log (and to attached clients) until it exits; then finish.

    ``given`` is where attached clients' input goes (the pty, a stdin pipe, or -1).
    """
    from minictr.engine.attach import Server
    from minictr.engine.logs import LogWriter

    _name_self()
    settings = _read_state(directory).get("lifecycle", {})
    log = LogWriter(directory, settings.get("log_max_size", 10 << 20), settings.get("log_max_file", 2))
    names = ["stdout"] if mode == "tty" else ["stdout", "stderr"]
    streams = dict(zip(fds, names, strict=True))
    for fd in (*fds, lock, listener, *([given] if given >= 0 else [])):
        os.set_inheritable(fd, False)
    clients = Server(listener, given)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)  # a closed terminal or a ^C in the caller's session is not ours
    checks = Checks(directory)
    status = None
    while True:
        ready = select.select([*streams, wake_r, *clients.fds()], [], [], checks.wait() if status is None else 0)[0]
        checks.tick(status is None)
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
                continue
            if fd not in streams:
                clients.handle(fd)
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: a pty whose every slave is closed
                data = b""
            if data:
                log.write(streams[fd], data)
                clients.broadcast(data)
            else:
                os.close(fd)
                del streams[fd]
        if status is None:
            pid, raw = os.waitpid(child, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(raw)
                status = 128 - code if code < 0 else code
        if status is not None and not (ready and streams):
            break  # exited, and its output drained (what a stray process keeps writing is not waited for)
    checks.stop()
    log.close()
    os.set_inheritable(lock, True)
    _exec_phase(True, "finish", directory, status, lock)
    return 0  # not reached


class Checks:
    """The healthcheck's schedule in the watch phase: one check process at a time, every interval."""

    def __init__(self, directory: str) -> None:
        from minictr.engine.health import SECOND, config_of

        self.directory = directory
        config = config_of(_read_state(directory))
        self.interval = config["Interval"] / SECOND if config else None
        self.due = time.monotonic() + (self.interval or 0)  # as Docker: the first check one interval after start
        self.pid = 0

    def wait(self) -> float | None:
        """How long the watch loop may sleep (a check's exit wakes it through SIGCHLD)."""
        if self.interval is None or self.pid:
            return None
        return max(0.0, self.due - time.monotonic())

    def tick(self, running: bool) -> None:
        """Reap a finished check; start the next one when it is due and the container still runs."""
        if self.pid and os.waitpid(self.pid, os.WNOHANG)[0]:
            self.pid = 0
        if running and self.interval is not None and not self.pid and time.monotonic() >= self.due:
            command = [sys.executable, "-s", "-E", "-m", "minictr.engine.health", self.directory]
            self.pid = os.posix_spawn(sys.executable, command, os.environ)
            self.due = time.monotonic() + self.interval

    def stop(self) -> None:
        """The container exited: a check still running has nothing left to check."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0


# --- finish ------------------------------------------------------------------------------------


def finish(directory: str, status: int, lock: int) -> int:
    """Record the exit, give back the cgroup and network, then restart (exec into the watch phase), remove or
    end (then :func:`main` leaves the monitors' cgroup: :mod:`minictr.engine.monitor_cgroup`).
    """
    from minictr.engine.container_dir import release_directory, release_resources
    from minictr.engine.logs import timestamp
    from minictr.engine.managed import REMOVING, STOP_REQUESTED
    from minictr.runtime.state import read_state, update_state

    _name_self()
    os.set_inheritable(lock, False)
    while True:
        state = read_state(directory)
        oom = False
        if state.get("cgroup"):
            from minictr.kernel import cgroups

            oom = cgroups.load(state["cgroup"]).oom_kills() > 0
        update_state(
            directory, {"status": "stopped", "exit_code": status, "oom_killed": oom, "finished_at": timestamp()}
        )
        release_resources(directory)
        if os.path.exists(os.path.join(directory, REMOVING)):
            return 0  # rm -f waits for us, then removes the directory itself
        settings = state.get("lifecycle", {})
        if settings.get("auto_remove"):
            release_directory(directory)
            return 0
        stopped = os.path.exists(os.path.join(directory, STOP_REQUESTED))
        if stopped or not should_restart(settings.get("restart", {}), status, state.get("restart_count", 0)):
            return 0
        count = state.get("restart_count", 0)
        time.sleep(min(0.1 * 2**count, 2.0))  # back off, as Docker does, from a container that keeps failing
        if os.path.exists(os.path.join(directory, STOP_REQUESTED)) or os.path.exists(os.path.join(directory, REMOVING)):
            return 0
        update_state(directory, {"restart_count": count + 1})
        start_container(directory, lock, report=False)  # becomes the watch phase on success
        status = 125  # it could not start again: recorded as such, and the policy asked again


def should_restart(policy: dict[str, Any], status: int, count: int) -> bool:
    """Docker's restart policies: ``on-failure[:N]`` on a non-zero status (at most N times), ``always``."""
    name = policy.get("Name", "no")
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure" and status != 0:
        limit = policy.get("MaximumRetryCount", 0)
        return not limit or count < limit
    return False


def main(argv: list[str]) -> int:
    """``python -m minictr.engine.monitor start DIR | watch DIR CHILD LOCK LISTENER MODE INPUT FD... | finish DIR
    STATUS LOCK``.
    """
    phase, directory = argv[1], argv[2]
    try:
        if phase == "start":
            return start(directory)
        if phase == "watch":
            return watch(
                directory, int(argv[3]), int(argv[4]), int(argv[5]), argv[6], int(argv[7]), [int(fd) for fd in argv[8:]]
            )
        return finish(directory, int(argv[3]), int(argv[4]))
    finally:  # reached only when this monitor ends (each phase otherwise execs the next): a failed start, an error
        from minictr.engine.monitor_cgroup import leave

        leave()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
