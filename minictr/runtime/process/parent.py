"""Starting a container from any process, without changing that process.

:func:`spawn` runs the child (``python -c`` calling ``minictr.runtime.process.child.main``) with :mod:`subprocess`
(no ``preexec_fn``: it is unsafe in a multithreaded parent such as a Jupyter
kernel), hands it the OCI config over a socketpair and waits until the child
reports READY. :meth:`ContainerProcess.start` lets it exec the program.
Failures in the child come back as :class:`~minictr.errors.ContainerError`
with the child's own message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any, TypeAlias

    _Stream: TypeAlias = int | IO[Any] | None  # what subprocess takes for stdin, stdout and stderr

from minictr import faults
from minictr.runtime.process.channel import Channel, Message, ProtocolError, raise_if_error
from minictr.runtime.validate import validate

#: How long set-up may take before the parent gives up (a stuck child is a bug, not a hang).
SETUP_TIMEOUT = 30.0


def child_command(fd: int, interpreter_fd: int | None = None) -> list[str]:
    """The command line of the container's first process.

    ``-S`` skips ``site`` (and whatever ``.pth`` files it would import: the
    child needs only the standard library and minictr), ``-s`` the user site
    directory, ``-E`` the caller's PYTHON* variables: the child's behaviour
    depends only on its config. It imports minictr from its working directory
    (see :func:`_package_parent`). With ``interpreter_fd`` it runs from that
    sealed copy of the interpreter (:func:`sealed_interpreter`) and closes it.
    ``-c`` calls the child's ``main``, where ``-m`` would import :mod:`runpy`
    first (with ``contextlib``, ``collections`` and ``functools``: ~5 ms).
    """
    program = f"/proc/self/fd/{interpreter_fd}" if interpreter_fd is not None else sys.executable
    tail = [str(interpreter_fd)] if interpreter_fd is not None else []
    return [program, "-S", "-s", "-E", "-c", CHILD_MAIN, str(fd), *tail]


#: What the child's interpreter runs: ``python -m minictr.runtime.process.child`` without runpy.
CHILD_MAIN = "import sys; from minictr.runtime.process.child import main; sys.exit(main(sys.argv))"


def sealed_interpreter() -> int | None:
    """A sealed in-memory copy of this Python interpreter, for the container's first process to run from.

    Until it execs, that process runs the interpreter, and a program in the
    container can reach the interpreter's file through ``/proc/<pid>/exe`` (or
    by being a ``#!/proc/self/exe`` script that the runtime execs) and then
    overwrite the host's Python — CVE-2019-5736, runc's worst. Run from a
    memfd sealed against writing, ``/proc/self/exe`` leads nowhere. An
    interpreter that finds its libraries relative to itself (``$ORIGIN``)
    cannot run from a memfd: then None, and the plain path is used.
    """
    import fcntl
    import mmap

    source = os.open(os.path.realpath(sys.executable), os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(source).st_size
        with mmap.mmap(source, size, prot=mmap.PROT_READ) as image:
            if image.find(b"$ORIGIN") != -1:
                return None
        copy = os.memfd_create("minictr-python", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        done = 0
        while done < size:
            done += os.sendfile(copy, source, done, size - done)
        fcntl.fcntl(
            copy, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        )
        return copy
    except OSError:
        return None  # no memfd here: run as before
    finally:
        os.close(source)


class ContainerProcess:
    """A spawned container process: created (set up, waiting) until :meth:`start`."""

    def __init__(self, popen: subprocess.Popen[bytes], channel: Channel) -> None:
        self.popen = popen
        self.channel = channel
        self.started = False
        self.init_pid: int | None = None
        self.root_method = ""
        self.note = ""
        self.netlink_fd: int | None = None  # a netlink socket in its network namespace, when asked for

    @property
    def pid(self) -> int:
        """The container's first process (its PID 1 when it has a pid namespace), as the host sees it."""
        return self.init_pid or self.popen.pid

    def start(self) -> None:
        """Let the child exec the program; raise :class:`ExecError` if that fails."""
        try:
            self.channel.send(Message.START)
            self.channel.wait_for_exec(SETUP_TIMEOUT)
            self.started = True
        except BaseException:
            self.kill()
            raise
        finally:
            self.channel.close()
            self.close_netlink()

    def close_netlink(self) -> None:
        """Close the netlink socket of the container's namespace, if we hold one."""
        if self.netlink_fd is not None:
            os.close(self.netlink_fd)
            self.netlink_fd = None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to exit and return its status the shell's way (128+N for signal N)."""
        code = self.popen.wait(timeout)
        return 128 - code if code < 0 else code

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> tuple[bytes, bytes, int]:
        """Feed stdin, collect stdout and stderr (when piped) and the exit status."""
        out, err = self.popen.communicate(input, timeout)
        return out or b"", err or b"", self.wait()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the container's first process, if it still runs, and reap it."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGKILL:
            self.popen.wait()


def _seccomp_program(spec: dict[str, Any]) -> dict[str, str]:
    """The compiled filter of ``linux.seccomp``, for the child (which then needs no libseccomp): cached."""
    section = spec.get("linux", {}).get("seccomp")
    if not section:
        return {}
    from minictr import paths
    from minictr.kernel.security import seccomp

    return {"seccomp_program": seccomp.program(section, os.path.join(paths.state_root(), "seccomp")).hex()}


def start_interpreter(
    stdin: _Stream = None, stdout: _Stream = None, stderr: _Stream = None, pass_fds: tuple[int, ...] = ()
) -> ContainerProcess:
    """Start the child interpreter (from a sealed copy, where the host allows) with its end of a new channel.

    :func:`spawn` calls it; a caller may call it first and give :func:`spawn`
    the result as ``process``: the interpreter starts and imports (~25 ms)
    while the caller prepares the rest, then waits for its config. One that
    is not used is ``kill()``-ed.
    """
    channel, child_end = Channel.pair()
    interpreter = sealed_interpreter()
    try:
        popen = subprocess.Popen(
            child_command(child_end.fileno(), interpreter),
            pass_fds=(child_end.fileno(), *pass_fds) + ((interpreter,) if interpreter is not None else ()),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=_child_environment(),
            cwd=_package_parent(),
        )
    except BaseException:
        channel.close()
        raise
    finally:
        child_end.close()
        if interpreter is not None:
            os.close(interpreter)
    return ContainerProcess(popen, channel)


def spawn(
    spec: dict[str, Any],
    *,
    overlay: dict[str, Any] | None = None,
    stdin: _Stream = None,
    stdout: _Stream = None,
    stderr: _Stream = None,
    die_with_parent: bool = False,
    call: dict[str, Any] | None = None,
    init: bool = False,
    join: int | None = None,
    netlink: bool = False,
    cgroup: Callable[[int], None] | None = None,
    console: int | None = None,
    hooks: Callable[[int], dict[str, Any]] | None = None,
    pass_fds: tuple[int, ...] = (),
    extra: dict[str, Any] | None = None,
    process: ContainerProcess | None = None,
) -> ContainerProcess:
    """Create a container process from an OCI runtime-spec ``spec``; return it set up but not started.

    ``overlay`` is an optional copy-on-write plan for the root (``lowerdirs``,
    ``upperdir``, ``workdir``) that the child mounts at ``spec['root']['path']``.
    ``stdin``/``stdout``/``stderr`` are passed to :class:`subprocess.Popen`
    (``subprocess.PIPE`` to capture). Raises :class:`ContainerError` with the
    child's message when set-up fails; nothing is left running then.
    ``call`` (used by :func:`call`) makes the child run a Python function
    instead of exec-ing ``spec['process']['args']``; ``init`` runs a minimal
    init as PID 1 that reaps zombies and passes signals on to the program.
    ``join`` is the host pid of a running container to enter instead of
    creating one (``exec``): its namespaces, then its root directory.
    ``netlink`` asks the child for a netlink socket of its new network
    namespace (``process.netlink_fd``), to wire a bridge network from outside.
    ``cgroup`` places a host pid in the container's cgroup (``Manager.add``):
    it is called for the container's first process (PID 1, not the waiting
    process before it) before that process unshares its cgroup namespace
    and long before the program starts, so everything it forks inherits it.
    ``hooks`` runs the runtime's OCI hooks for the host pid of the container's
    first process once its namespaces exist, and returns the OCI state the
    child passes to the hooks it runs inside. ``pass_fds`` are inherited by
    the child (``--preserve-fds``, a console socket); ``extra`` adds child
    options (``exec_fifo_fd``, ``leave_init``, ``console_fd``: see
    :mod:`minictr.runtime.process.handoff`).
    ``process``: an interpreter started ahead by :func:`start_interpreter`
    (its stdio and ``pass_fds``, a console socket among them, were given
    there), used instead of a new one.
    A spec the runtime-spec forbids raises :class:`~minictr.errors.SpecError` before anything is spawned.
    ``console`` (``process.terminal``) is a connected unix socket the child
    inherits: inside the container, after its mounts, it opens a pty from the
    container's own devpts, sends the master there and makes the slave its
    controlling terminal and stdio (:func:`~minictr.runtime.process.handoff.open_terminal`:
    ``minictr-oci --console-socket`` and the engine's ``-t`` alike).
    """
    try:
        validate(spec)  # a bad value is named here, not met half-way through the child's set-up
    except BaseException:
        if process is not None:
            process.kill()  # started ahead, it would wait for a config that never comes
        raise
    if console is not None:
        extra = {**(extra or {}), "console_fd": console}
        if process is None:
            pass_fds = (*pass_fds, console)
    process = process or start_interpreter(stdin, stdout, stderr, pass_fds)
    channel = process.channel
    faults.point("spawn")
    try:
        options = {
            "die_with_parent": die_with_parent,
            "parent_pid": os.getpid(),
            "init": init,
            "join": join,
            "netlink": netlink,
            "cgroup": cgroup is not None,
            "hooks": hooks is not None,
            **_seccomp_program(spec),
            **(extra or {}),
        }
        channel.send(Message.CONFIG, spec=spec, overlay=overlay, options=options, call=call)
        _wait_until_ready(process, spec, cgroup, hooks)
    except BaseException:
        channel.close()
        process.kill()
        raise
    return process


def _wait_until_ready(
    process: ContainerProcess,
    spec: dict[str, Any],
    cgroup: Callable[[int], None] | None = None,
    hooks: Callable[[int], dict[str, Any]] | None = None,
) -> None:
    """Answer the child's requests (user namespace maps, its cgroup, hooks) until it reports READY."""
    while True:
        message = process.channel.receive(SETUP_TIMEOUT)
        if message is None:
            raise ProtocolError("ready", "end of file (the child exited)")
        raise_if_error(message)
        kind = message["type"]
        if kind == Message.USERNS_READY:
            from minictr.kernel.namespaces import write_id_maps

            linux_spec = spec.get("linux", {})
            write_id_maps(message["pid"], linux_spec.get("uidMappings", []), linux_spec.get("gidMappings", []))
            process.channel.send(Message.MAPPINGS_WRITTEN)
        elif kind == Message.INIT_PID:
            process.init_pid = message["pid"]
        elif kind == Message.JOIN_CGROUP and cgroup is not None:
            cgroup(process.pid)
            process.channel.send(Message.CGROUP_JOINED)
        elif kind == Message.HOOKS and hooks is not None:
            process.channel.send(Message.HOOKS_DONE, state=hooks(process.pid))
        elif kind == Message.READY:
            process.root_method, process.note = message.get("root", ""), message.get("note", "")
            process.netlink_fd = (message.get("fds") or [None])[0]
            return
        else:
            raise ProtocolError("ready", kind)


def call(
    spec: dict[str, Any], function: Callable[..., Any], *args: Any, timeout: float = 60, join: int | None = None
) -> Any:
    """Run ``function(*args)`` inside a container described by ``spec``; return its value.

    The function travels as source code (``inspect.getsource``), so it may be
    defined in a notebook cell; its arguments and return value travel as JSON.
    Inside, only already-imported modules are usable (``os`` is), because the
    root has changed. An exception inside comes back as :class:`ContainerError`
    naming the function, the line and the exception. With ``join`` (a host
    pid) the function runs inside that running container instead, as exec does.
    """
    import inspect  # only lessons and checks need these: keep them off the container start path
    import textwrap

    source = textwrap.dedent(inspect.getsource(function))
    payload = {"source": source, "name": function.__name__, "args": list(args)}
    process = spawn(spec, call=payload, stdin=subprocess.DEVNULL, join=join)
    try:
        process.channel.send(Message.START)
        result = process.channel.expect(Message.RESULT, timeout)
    finally:
        process.channel.close()
        try:
            process.popen.wait(5)  # the child exits right after its RESULT
        except subprocess.TimeoutExpired:
            process.kill()
    return result.get("value")


def _package_parent() -> str:
    """The directory holding the ``minictr`` package this parent runs.

    The child starts there, so ``-m minictr.runtime.process.child`` imports exactly the
    parent's code (installed, editable or a source tree alike); it changes
    directory to the container's root long before the program runs.
    """
    import minictr

    return os.path.dirname(os.path.dirname(os.path.abspath(minictr.__file__)))


def _child_environment() -> dict[str, str]:
    """The child interpreter's environment: nearly empty.

    The container's own environment comes from the spec at exec time, so the
    caller's variables never leak into a container.
    """
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C.UTF-8"}
    if faults.VARIABLE in os.environ:  # a test's fault step may be in the child (see minictr.faults)
        env[faults.VARIABLE] = os.environ[faults.VARIABLE]
    return env
