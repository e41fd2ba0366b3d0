"""A container's life as the runtime-spec defines it: create, start, kill, delete, and its state.

``create`` does everything but run the program: it reads the bundle, makes
the cgroup, spawns the container's first process (which sets itself up,
runs the create-phase hooks and then waits on the exec fifo) and returns;
``start`` opens the fifo, and the program runs. Every move goes through
:func:`minictr.runtime.state.transition`, so ``start`` of a stopped container is
refused with the container's status, as runc refuses it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

TYPE_CHECKING = False  # typing, sockets, hooks and dates are loaded only where used: start-up time matters
if TYPE_CHECKING:
    import socket
    from typing import Any

from minictr.errors import MinictrError, UsageError
from minictr.files import remove_tree
from minictr.runtime.oci import store
from minictr.runtime.oci.freezer import freeze
from minictr.runtime.oci.mounts import expand_cgroup_mounts
from minictr.runtime.oci.unsupported import check_supported
from minictr.runtime.state import ContainerState, Status, start_time, transition

#: How long start waits for the container to take the fifo, and delete for the processes to die.
DEADLINE = 10.0


def read_bundle(bundle: str) -> dict[str, Any]:
    """The bundle's config.json, with ``root.path`` made absolute (it is relative to the bundle)."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as handle:
            spec = json.loads(handle.read())
    except FileNotFoundError:
        raise UsageError("JSON specification file config.json not found") from None
    except ValueError as exc:
        raise UsageError(f"config.json: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("root"), dict) or "path" not in spec["root"]:
        raise UsageError("config.json: root.path is required")
    spec["root"]["path"] = os.path.normpath(os.path.join(bundle, spec["root"]["path"]))
    return spec


def create(
    root: str,
    container_id: str,
    bundle: str,
    *,
    pid_file: str | None = None,
    console_socket: str | None = None,
    preserve_fds: int = 0,
    systemd_cgroup: bool = False,
) -> ContainerState:
    """Set the container up and leave its first process waiting for :func:`start`; return its state."""
    bundle = os.path.abspath(bundle)
    spec = read_bundle(bundle)
    check_supported(spec)
    terminal = bool(spec.get("process", {}).get("terminal"))
    if terminal and not console_socket:
        raise UsageError("cannot allocate tty if runc will detach without setting console socket")
    if console_socket and not terminal:
        raise UsageError("cannot use console socket if runc will not detach or allocate tty")
    directory = store.make(root, container_id)
    state = ContainerState(container_id, spec=spec, extra={"bundle": bundle, "created": _now()})
    manager = child = console = None
    fifo = -1
    try:
        fifo = _exec_fifo(root, container_id)
        extra: dict[str, Any] = {"exec_fifo_fd": fifo, "leave_init": True}
        if console_socket:
            console = _connect(console_socket)
            extra["console_fd"] = console.fileno()
        child = _first_process(extra, console, preserve_fds)  # its interpreter loads while the cgroup is made
        manager = _cgroup(spec, container_id, systemd_cgroup)
        if manager is not None:
            state.cgroup = manager.record()
            store.save(root, state)  # recorded before it exists: delete can always remove it
            manager.create(_with_default_devices(spec))
        expand_cgroup_mounts(spec, manager.dirs if manager else None)
        process = _spawn(spec, state, manager, extra, child)
        state.pid, state.start = process.pid, start_time(process.pid)
        state.status = transition(Status.CREATING, Status.CREATED, container_id)
        store.save(root, state)
    except BaseException:
        if child is not None:
            child.kill()
        if manager is not None:
            manager.destroy()
        remove_tree(directory)
        raise
    finally:
        if fifo >= 0:
            os.close(fifo)
        if console is not None:
            console.close()
    if pid_file:
        write_pid_file(pid_file, state.pid)
    return state


def _exec_fifo(root: str, container_id: str) -> int:
    """Make the container's exec fifo and hold it by an ``O_PATH`` descriptor for its first process.

    The first process reopens it through ``/proc/self/fd``: by then it may be
    a mapped root in a user namespace that may not walk into the state root
    (mode 0700), so a path would not reach it. Mode 0622, not mkfifo's (which
    the umask cuts): a process with no rights over the host's root (a mapped
    root, a program run as another user) still opens it for writing.
    """
    path = store.fifo_path(root, container_id)
    os.mkfifo(path)
    os.chmod(path, 0o622)
    return os.open(path, os.O_PATH | os.O_CLOEXEC)


def _first_process(extra: dict[str, Any], console: socket.socket | None, preserve_fds: int) -> Any:
    """Start the container's first process's interpreter ahead of its config (see ``start_interpreter``).

    It inherits our stdio, the preserved descriptors, the exec fifo and the
    console socket; its start and imports overlap with making the cgroup.
    """
    from minictr.runtime.process.parent import start_interpreter

    preserved = tuple(range(3, 3 + preserve_fds))
    for fd in preserved:
        os.set_inheritable(fd, True)
    return start_interpreter(pass_fds=(*preserved, extra["exec_fifo_fd"], *((console.fileno(),) if console else ())))


def _spawn(spec: dict[str, Any], state: ContainerState, manager: Any, extra: dict[str, Any], child: Any) -> Any:
    """Set the container's first process up (``child``, started by :func:`_first_process`); it waits on the fifo."""
    from minictr.runtime.process import spawn

    phases = spec.get("hooks") or {}
    wanted = any(phases.get(p) for p in ("prestart", "createRuntime", "createContainer", "startContainer"))

    def runtime_hooks(pid: int) -> dict[str, Any]:
        from minictr.runtime.oci import hooks

        seen = ContainerState(state.id, Status.CREATING, pid, spec=spec, extra=state.extra).oci_state(
            store.bundle(state)
        )
        seen["pid"] = pid  # the spec gives hooks the pid while creating too
        hooks.run(phases, "prestart", seen)
        hooks.run(phases, "createRuntime", seen)
        return seen

    process = spawn(spec, die_with_parent=False, cgroup=manager.add if manager else None,
                    hooks=runtime_hooks if wanted else None, extra=extra, process=child)  # fmt: skip
    process.channel.close()  # the child waits on the fifo now: nothing more to say
    return process


def _cgroup(spec: dict[str, Any], container_id: str, systemd: bool) -> Any:
    """Plan the container's cgroup (``linux.cgroupsPath``, else ``/minictr-oci/<id>``); None without cgroups."""
    from minictr.kernel import cgroups

    path = spec.get("linux", {}).get("cgroupsPath") or cgroups.default_path(container_id, cgroups.OCI_PARENT)
    advice = ("minictr-oci makes cgroups itself (cgroupfs): run without --systemd-cgroup "
              "(podman: --cgroup-manager cgroupfs; containerd: SystemdCgroup = false)")  # fmt: skip
    if systemd:
        raise UsageError(f"--systemd-cgroup: the systemd cgroup driver is not supported; {advice}")
    if ":" in path and not path.startswith("/"):
        raise UsageError(f"cgroupsPath {path!r} is the systemd driver's slice:prefix:name, not supported; {advice}")
    if not cgroups.available():
        if spec.get("linux", {}).get("resources"):
            raise UsageError("linux.resources: no cgroups can be made here (not root, or none mounted)")
        return None
    return cgroups.new(path)


def _with_default_devices(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's resources with the standard devices (and ``linux.devices``) allowed after its own rules.

    A bundle's rules usually deny every device; the container still needs
    /dev/null, /dev/tty, the ptys... which every runtime allows on top.
    """
    from minictr.kernel.cgroups.resources import default_device_rules

    linux = spec.get("linux") or {}
    import copy

    resources = copy.deepcopy(linux.get("resources") or {})
    if "devices" in resources:
        nodes = [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"], "access": "rwm"}
                 for d in linux.get("devices") or [] if d.get("type") in ("c", "b")]  # fmt: skip
        resources["devices"] = resources["devices"] + default_device_rules()[1:] + nodes
    return resources


def _connect(path: str) -> socket.socket:
    """Connect to the caller's console socket (conmon, containerd, a test): the pty master goes there."""
    import socket

    console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        console.connect(path)
    except OSError as exc:
        console.close()
        raise UsageError(f"console socket {path}: {exc.strerror}") from exc
    return console


def start(root: str, container_id: str) -> ContainerState:
    """Let a created container's program run: open its fifo, then run the poststart hooks."""
    state = store.load(root, container_id)
    if state.status is not Status.CREATED:
        wording = f"cannot start a container in the {state.status.value} state"
        raise UsageError(_NOT_STARTABLE.get(state.status, wording))
    state = state.moved_to(Status.RUNNING)
    fifo = store.fifo_path(root, container_id)
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"container {container_id} was started already") from None
    try:
        _read_start(fd, state)
    finally:
        os.close(fd)
    os.unlink(fifo)
    store.save(root, state)
    if ((state.spec or {}).get("hooks") or {}).get("poststart"):
        _wait_for_exec(state)
    _warn_hooks(state, "poststart")
    return state


def _wait_for_exec(state: ContainerState) -> None:
    """Wait until the first process has exec'd the program, or exited.

    poststart hooks MUST run after the program started (runtime-spec), not
    beside the startContainer hooks, which run in the container between the
    fifo and execve. Until then the process keeps the name the child gave
    itself (``minictr-child``, see :mod:`minictr.runtime.process.child`).
    """
    waits = ((state.spec or {}).get("hooks") or {}).get("startContainer") or []
    deadline = time.monotonic() + DEADLINE + sum(hook.get("timeout", 0) for hook in waits)
    while time.monotonic() < deadline and _running(state.pid):
        try:
            with open(f"/proc/{state.pid}/comm") as handle:
                if handle.read().strip() != "minictr-child":
                    return
        except OSError:
            return
        time.sleep(0.002)


#: runc's words for ``start`` of a container that is not created (podman and containerd show them).
_NOT_STARTABLE = {Status.RUNNING: "cannot start an already running container",
                  Status.STOPPED: "cannot start a container that has stopped"}  # fmt: skip


def _read_start(fd: int, state: ContainerState) -> None:
    """Wait for the byte the container writes once it has the fifo: it then execs its program."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        data = os.read(fd, 1) if ready else b""
        if data:
            return
        if store.current(state).status is Status.STOPPED:
            raise MinictrError(f"container {state.id} exited before it was started")
    raise MinictrError(f"container {state.id} did not take its exec fifo within {DEADLINE:g} s")


def oci_state(root: str, container_id: str) -> dict[str, Any]:
    """The runtime-spec's state of the container (``minictr-oci state``)."""
    state = store.load(root, container_id)
    return state.oci_state(store.bundle(state))


def parse_signal(text: str) -> int:
    """``KILL``, ``SIGKILL``, ``kill`` or ``9`` -> 9; an unknown name is an error."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UsageError(f"unknown signal {text!r}") from None


def kill(root: str, container_id: str, sig: int, all_processes: bool = False) -> None:
    """Send ``sig`` to the container's first process (``all_processes``: to every process in it)."""
    state = store.load(root, container_id)
    if state.status is Status.STOPPED and not all_processes:
        raise UsageError("container not running")
    targets = processes(state) if all_processes else [state.pid]
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL and state.status is Status.PAUSED:
        freeze(state, False)  # a frozen process cannot die: thawed, it does (runc does the same)


def processes(state: ContainerState) -> list[int]:
    """Host pids of the container's processes: its cgroup's, else those sharing its first process's pid namespace."""
    if state.cgroup:
        from minictr.kernel import cgroups

        try:
            return sorted(cgroups.load(state.cgroup).pids())
        except OSError:
            return []
    if not _running(state.pid):
        return []
    try:
        mine = os.readlink(f"/proc/{state.pid}/ns/pid")
    except OSError:
        return []
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{name}/ns/pid") == mine:
                found.append(int(name))
        except OSError:
            continue
    return sorted(found)


def delete(root: str, container_id: str, force: bool = False) -> None:
    """Remove a stopped (or created) container; a running one only with ``force`` (it is killed first)."""
    try:
        state = store.load(root, container_id)
    except store.NotFound:
        if force:
            return
        raise
    if state.status in (Status.RUNNING, Status.PAUSED) and not force:
        raise UsageError(f"cannot delete container {container_id} that is not stopped: {state.status.value}")
    if state.status is Status.PAUSED:
        freeze(state, False)  # a frozen process cannot die
    _kill_all(state)  # a stopped one too: without a pid namespace, what its program started may live on
    if state.cgroup:
        from minictr.kernel import cgroups

        cgroups.load(state.cgroup).destroy()
    remove_tree(store.directory(root, container_id))
    state.status = Status.STOPPED
    _warn_hooks(state, "poststop")


def _kill_all(state: ContainerState) -> None:
    """SIGKILL every process of the container and wait until they are gone (they are not our children)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        left = [pid for pid in {state.pid, *processes(state)} if _running(pid)]
        if not left:
            return
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    raise MinictrError(f"container {state.id}: processes still running after SIGKILL")


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _warn_hooks(state: ContainerState, phase: str) -> None:
    """poststart and poststop hooks: a failure is logged, the container goes on (the spec says so)."""
    phases = (state.spec or {}).get("hooks") or {}
    if not phases.get(phase):
        return
    import logging

    from minictr.runtime.oci import hooks

    try:
        hooks.run(phases, phase, state.oci_state(store.bundle(state)))
    except hooks.HookError as exc:
        logging.getLogger("minictr-oci").warning("%s", exc)


def write_pid_file(path: str, pid: int) -> None:
    """The bare pid, no newline, written atomically (engines read it the moment create returns)."""
    from minictr.files import write_atomic

    write_atomic(os.path.abspath(path), str(pid).encode(), durable=False)


def _now() -> str:
    """RFC 3339 time with nanoseconds, as runc's ``list`` shows ``created`` (``time``: datetime costs 1 ms)."""
    now = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"


def container_spec(state: ContainerState) -> dict[str, Any]:
    """A copy of the container's spec (for exec's process)."""
    import copy

    return copy.deepcopy(state.spec or {})
