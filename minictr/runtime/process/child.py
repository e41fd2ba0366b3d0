"""The container's first process: a fresh interpreter that sets up, then becomes the program.

Started as ``python -m minictr.runtime.process.child FD`` by :mod:`minictr.runtime.process.parent`.
It is single-threaded and owns nothing of its parent, so it may unshare, mount,
pivot and drop privileges freely. It reads its orders (an OCI runtime-spec
config) from the channel on FD and runs a flat recipe of named steps::

    die_with_parent → enter_user_namespace → join_namespaces → unshare_namespaces
    → set_time_offsets → fork_init (pid and time namespaces apply to children:
      from here on we are the container's PID 1; the process before it waits)
    → controlling_terminal (-t: a session of its own, the pty its terminal)
    → join_cgroup (the parent places us; then the cgroup namespace) → set_rlimits → set_oom_score_adj
    → set_hostname → loopback_up → private_mounts → mount_overlay → bind_root
    → mount_spec_mounts → create_devices → enter_root → readonly_root → mask_paths
    → drop_bounding → load_seccomp_early → keep_capabilities → set_user → set_capabilities
    → no_new_privs → READY … START → load_seccomp → exec (or run a minimal init that execs the program)

Each step reads the spec and does nothing when the spec does not ask for it.
Everything is imported *before* the root changes: afterwards the
interpreter's own files are out of reach.
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import sys
import termios  # for -t; imported here, as everything is, while the host's files are still in reach

from minictr import faults
from minictr.errors import MinictrError, SyscallError
from minictr.kernel import linux, namespaces, rootfs
from minictr.kernel.security import capabilities, paths, seccomp
from minictr.runtime.process import handoff
from minictr.runtime.process.channel import Channel, Message

TYPE_CHECKING = False  # the child imports only what it uses: typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class StepFailed(Exception):
    """A set-up step failed; carries the step's name for the parent's message."""

    def __init__(self, step: str, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.errno = err


class Setup:
    """What the steps share: the spec, the channel, the overlay plan and where the root is."""

    def __init__(self, config: dict[str, Any], channel: Channel) -> None:
        self.channel = channel
        self.spec: dict[str, Any] = config["spec"]
        self.overlay: dict[str, Any] | None = config.get("overlay")
        self.options: dict[str, Any] = config.get("options", {})
        self.rootfs: str = os.path.abspath(self.spec["root"]["path"])
        self.linux: dict[str, Any] = self.spec.get("linux", {})
        entries = self.linux.get("namespaces", [])
        self.new = {ns["type"] for ns in entries if not ns.get("path")}
        self.joined = {ns["type"]: ns["path"] for ns in entries if ns.get("path")}
        self.root_method = "chroot"
        self.root_note = ""
        self.netlink: socket.socket | None = None
        self.lifeline: int | None = None  # PID 1's end of a pipe only the waiting process writes to (fork_init)
        self.fifo: int | None = None  # the OCI exec fifo, held by O_PATH (handoff.open_exec_fifo)
        self.state: dict[str, Any] = {}  # the OCI state for the container's own hooks (handoff.runtime_hooks)

    @property
    def own_mounts(self) -> bool:
        """True when this container has a mount namespace of its own (then it pivots)."""
        return "mount" in self.new or "mount" in self.joined


# --- before the fork: namespaces -------------------------------------------------------


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


def _rlim(value: int) -> int:
    """An OCI rlimit value for setrlimit: 2**64-1 (the spec's unlimited) is RLIM_INFINITY."""
    import resource

    return resource.RLIM_INFINITY if value >= (1 << 63) else value


def _parent_alive(setup: Setup) -> bool:
    """Is our parent still there? PID 1 of a new pid namespace cannot ask getppid() (0): it reads its lifeline."""
    if setup.lifeline is None:
        parent: int = setup.options.get("parent_pid", os.getppid())
        return os.getppid() == parent
    try:
        return os.read(setup.lifeline, 1) != b""  # end of file: the waiting process, its only writer, is gone
    except BlockingIOError:
        return True


def enter_user_namespace(setup: Setup) -> None:
    """Create the user namespace first: it owns the others, and grants us root inside.

    The maps must come from outside (a process cannot freely map itself), so
    we ask the parent to write them, wait, and then become uid/gid 0 inside.
    """
    if "user" in setup.joined:
        namespaces.join(setup.joined["user"], "user")
    elif "user" in setup.new:
        namespaces.unshare(["user"])
        setup.channel.send(Message.USERNS_READY, pid=os.getpid())
        setup.channel.expect(Message.MAPPINGS_WRITTEN)
    else:
        return
    become_root_inside()


def become_root_inside() -> None:
    """Take uid and gid 0 of the user namespace we are in, and stay dumpable.

    Changing credentials clears the "dumpable" flag, which hands our own
    /proc/self files to the host's root: /proc/self/timens_offsets would then
    be out of reach. Setting it again is safe: we are about to exec anyway.
    """
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    linux.prctl(linux.PR_SET_DUMPABLE, 1)


def join_namespaces(setup: Setup) -> None:
    """Join the namespaces the spec gives a ``path`` for (``--network container:…``, exec)."""
    for kind in namespaces.JOIN_ORDER:
        if kind in setup.joined and kind != "user":
            namespaces.join(setup.joined[kind], kind)


def unshare_namespaces(setup: Setup) -> None:
    """Create the new namespaces (user is done already, cgroup comes after joining the cgroup): one unshare(2)."""
    namespaces.unshare(setup.new - {"user", "cgroup"})


def set_time_offsets(setup: Setup) -> None:
    """Shift the clocks of the new time namespace, before any process is in it."""
    if "time" in setup.new and setup.linux.get("timeOffsets"):
        namespaces.set_time_offsets(setup.linux["timeOffsets"])


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


# --- after the fork: the container's view ------------------------------------------------


def controlling_terminal(setup: Setup) -> None:
    """``-t``: a session of our own whose controlling terminal is the pty slave we were given as stdin.

    Job control and ^C inside then work as on any terminal, and the caller's
    terminal (or the monitor's session) is out of the container's reach.
    """
    if setup.options.get("terminal"):
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def join_cgroup(setup: Setup) -> None:
    """Have the parent put us in the container's cgroup, then make that cgroup our namespace's root.

    Only PID 1 joins (the waiting process before the fork stays out: it is
    minictr's, not the container's), and it joins before the cgroup
    namespace is made, so the container sees its own cgroup as ``/``.
    """
    if setup.options.get("cgroup"):
        setup.channel.send(Message.JOIN_CGROUP)
        setup.channel.expect(Message.CGROUP_JOINED)
    if "cgroup" in setup.new:
        namespaces.unshare(["cgroup"])


def set_hostname(setup: Setup) -> None:
    """Name the new UTS namespace (the hostname a container shows in its prompt)."""
    if "uts" in setup.new:
        namespaces.set_hostname(setup.spec.get("hostname"), setup.spec.get("domainname"))


def loopback_up(setup: Setup) -> None:
    """A new network namespace has only ``lo``, and it is down: bring it up.

    For a bridge network the parent configures ``eth0`` from outside; it needs
    a netlink socket *in* this namespace, which it gets with READY. A socket
    belongs to the namespace it was made in, wherever it travels.
    """
    if "network" in setup.new:
        namespaces.loopback_up()
        if setup.options.get("netlink"):
            setup.netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)  # 0: NETLINK_ROUTE


def private_mounts(setup: Setup) -> None:
    """Make mount propagation private (or as the spec says) before anything is mounted.

    On a shared ``/`` (systemd's default) a mount would otherwise propagate
    back to the host. Without a mount namespace in the spec (chroot
    isolation) a private one is made only when there is something to mount,
    so that the overlay and /proc vanish with the container.
    """
    if not setup.own_mounts:
        if not setup.overlay and not setup.spec.get("mounts"):
            return
        namespaces.unshare(["mount"])
    rootfs.make_private("/", setup.linux.get("rootfsPropagation") or "rprivate")


def mount_overlay(setup: Setup) -> None:
    """Mount the copy-on-write root: the image's layers read-only below, the container's changes above."""
    if not setup.overlay:
        return
    lower = ":".join(setup.overlay["lowerdirs"])
    data = f"lowerdir={lower},upperdir={setup.overlay['upperdir']},workdir={setup.overlay['workdir']}"
    if "user" in setup.new:
        data += ",userxattr"  # in a user namespace overlayfs may not use trusted.* xattrs for copy-up
    linux.mount("overlay", setup.rootfs, "overlay", 0, data)


def bind_root(setup: Setup) -> None:
    """pivot_root needs the new root to be a mount point: bind it onto itself."""
    if setup.own_mounts and not setup.overlay:
        rootfs.bind_onto_itself(setup.rootfs)


def mount_spec_mounts(setup: Setup) -> None:
    """Mount the spec's ``mounts`` (/proc, /dev, /sys, volumes...) below the new root."""
    for entry in setup.spec.get("mounts", []):
        try:
            rootfs.mount_entry(setup.rootfs, entry)
        except SyscallError as exc:
            raise StepFailed("mount", f"mounting {entry['destination']}: {exc}", exc.errno) from exc


def create_devices(setup: Setup) -> None:
    """Fill a fresh /dev tmpfs with the standard nodes and links."""
    if any(m["destination"] == "/dev" and m.get("type") == "tmpfs" for m in setup.spec.get("mounts", [])):
        rootfs.create_devices(setup.rootfs, bind_from_host="user" in setup.new or "user" in setup.joined)
    if setup.linux.get("devices"):
        rootfs.create_spec_devices(setup.rootfs, setup.linux["devices"], bind_from_host="user" in setup.new)


def enter_root(setup: Setup) -> None:
    """Make the rootfs our root: pivot_root with a mount namespace, chroot without one.

    ``chdir`` into the root matters: a process whose working directory is
    outside its root can walk back up to the host's root with ``..``.
    """
    try:
        if setup.own_mounts:
            setup.root_method = rootfs.pivot_into(setup.rootfs)
            faults.point("pivot")  # a test's SIGKILL of the container, half set up (see minictr.faults)
            if setup.root_method == "chroot":
                setup.root_note = "pivot_root is impossible on this host (its root is a ramfs); used chroot instead"
        else:
            os.chroot(setup.rootfs)
    except OSError as exc:
        call = "pivot_root" if setup.own_mounts else "chroot"
        message = str(exc) if isinstance(exc, SyscallError) else f"{call}({setup.rootfs!r}): {exc.strerror}"
        raise StepFailed(call, message, exc.errno) from exc
    os.chdir("/")
    cwd = setup.spec.get("process", {}).get("cwd", "/")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise StepFailed("cwd", f"chdir to working directory {cwd!r}: {exc.strerror}", exc.errno) from exc


def readonly_root(setup: Setup) -> None:
    """``root.readonly``: the container cannot change its root filesystem at all."""
    if setup.spec.get("root", {}).get("readonly") and setup.own_mounts:
        rootfs.remount_readonly("/")


def set_user(setup: Setup) -> None:
    """Become the spec's user: supplementary groups, then gid, then uid (the other way round fails)."""
    user = setup.spec.get("process", {}).get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if (uid, gid) == (os.getuid(), os.getgid()) and not user.get("additionalGids"):
        return
    os.setgroups(user.get("additionalGids", []))
    os.setgid(gid)
    os.setuid(uid)


# --- what the process may do from here on (minictr.kernel.security): runc's order ----------------


def set_rlimits(setup: Setup) -> None:
    """``process.rlimits`` (``--ulimit``): set while the standard library is still in reach."""
    limits = setup.spec.get("process", {}).get("rlimits")
    if limits:
        import resource

        for limit in limits:
            try:
                resource.setrlimit(getattr(resource, limit["type"]), (_rlim(limit["soft"]), _rlim(limit["hard"])))
            except (ValueError, OSError) as exc:  # raising a hard limit needs CAP_SYS_RESOURCE
                raise StepFailed("rlimits", f"error setting rlimit {limit['type']}: {exc}", errno.EPERM) from exc


def set_oom_score_adj(setup: Setup) -> None:
    """``process.oomScoreAdj`` (``--oom-score-adj``): how eagerly the OOM killer picks this container."""
    value = setup.spec.get("process", {}).get("oomScoreAdj")
    if value is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))


def mask_paths(setup: Setup) -> None:
    """``linux.maskedPaths``/``readonlyPaths``: hide /proc/kcore and friends, make /proc/sys read-only."""
    if setup.own_mounts:
        paths.apply(setup.linux.get("maskedPaths", []), setup.linux.get("readonlyPaths", []))


def _load_filter(setup: Setup) -> None:
    """Install the BPF program the parent compiled from ``linux.seccomp`` (or compile it here)."""
    compiled = setup.options.get("seccomp_program")
    program = bytes.fromhex(compiled) if compiled else seccomp.program(setup.linux["seccomp"])
    seccomp.install(program, setup.linux["seccomp"].get("flags"))


def drop_bounding(setup: Setup) -> None:
    """Shrink the bounding set first: it needs CAP_SETPCAP, which the spec may not keep."""
    if "capabilities" in setup.spec.get("process", {}):
        capabilities.drop_bounding(setup.spec["process"]["capabilities"])


def load_seccomp_early(setup: Setup) -> None:
    """Without no_new_privs only CAP_SYS_ADMIN may load a filter: do it while we still have it."""
    if setup.linux.get("seccomp") and not setup.spec.get("process", {}).get("noNewPrivileges"):
        _load_filter(setup)


def keep_capabilities(setup: Setup) -> None:
    """Changing uid away from 0 empties the permitted set unless PR_SET_KEEPCAPS says otherwise."""
    if "capabilities" in setup.spec.get("process", {}):
        capabilities.keep_across_setuid(True)


def set_capabilities(setup: Setup) -> None:
    """``process.capabilities``: effective, permitted, inheritable, ambient (bounding is done)."""
    if "capabilities" in setup.spec.get("process", {}):
        capabilities.keep_across_setuid(False)
        capabilities.apply(setup.spec["process"]["capabilities"])


def no_new_privs(setup: Setup) -> None:
    """``process.noNewPrivileges``: no execve may raise privileges again (setuid bits, file capabilities)."""
    if setup.spec.get("process", {}).get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


def load_seccomp(setup: Setup) -> None:
    """The syscall filter, last, right before exec: everything before it may use any call."""
    if setup.linux.get("seccomp") and setup.spec.get("process", {}).get("noNewPrivileges"):
        _load_filter(setup)


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
    die_with_parent, set_rlimits, enter_container, controlling_terminal, join_cgroup, handoff.open_terminal,
    *SECURITY_STEPS,
]  # fmt: skip

STEPS: list[Callable[[Setup], None]] = [
    die_with_parent, enter_user_namespace, join_namespaces, unshare_namespaces, set_time_offsets, fork_init,
    controlling_terminal, join_cgroup, set_rlimits, set_oom_score_adj, set_hostname, loopback_up, private_mounts, mount_overlay, bind_root,
    mount_spec_mounts, create_devices, handoff.open_exec_fifo, handoff.runtime_hooks,
    enter_root, handoff.open_terminal, handoff.set_sysctl, readonly_root, mask_paths, *SECURITY_STEPS, handoff.check_program,
]  # fmt: skip


# --- the program ---------------------------------------------------------------------------


def exec_program(spec: dict[str, Any]) -> None:
    """Replace this interpreter with the container's program (searching the container's PATH)."""
    process = spec.get("process", {})
    args = process.get("args") or []
    env = dict(item.split("=", 1) for item in process.get("env", []) if "=" in item)
    if not args:
        raise StepFailed("exec", "no command given: the image has no Cmd or Entrypoint", errno.EINVAL)
    if "HOME" not in env:  # as runc: the user's home in the container's /etc/passwd, else /
        env["HOME"] = home_of(os.getuid())
    if process.get("user", {}).get("umask") is not None:
        os.umask(process["user"]["umask"])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores SIGPIPE; programs expect the default
    try:
        if "/" in args[0]:
            os.execve(args[0], args, env)
        os.execvpe(args[0], args, env)
    except FileNotFoundError as exc:
        what = "no such file or directory" if "/" in args[0] else "executable file not found in $PATH"
        raise StepFailed("exec", f'exec: "{args[0]}": {what}', exc.errno) from exc
    except OSError as exc:
        raise StepFailed("exec", f'exec: "{args[0]}": {(exc.strerror or str(exc)).lower()}', exc.errno) from exc


def home_of(uid: int) -> str:
    """The home directory of ``uid`` in this root's /etc/passwd; ``/`` without one."""
    try:
        with open("/etc/passwd") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def run_init(setup: Setup) -> None:
    """``--init``: stay as PID 1, run the program as our child, reap every zombie, pass signals on.

    A program that finds itself PID 1 gets no default signal actions (SIGTERM
    is ignored unless it installs a handler) and inherits every orphan of the
    container, which it must ``wait`` for. This small init does both jobs.
    """
    forwarded = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH}
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


def _kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def call_function(call: dict[str, Any]) -> Any:
    """Run a Python function, sent as source, inside the container; return its value.

    Only what is already imported works after the root changed: ``os`` and the
    built-ins are there, new imports are not.
    """
    namespace: dict[str, Any] = {"__name__": "__minictr_call__", "os": os}
    try:
        exec(compile(call["source"], f"<{call['name']}>", "exec"), namespace)  # the caller's own code
        return namespace[call["name"]](*call.get("args", []))
    except Exception as exc:
        line = _innermost_line(exc, f"<{call['name']}>")
        raise StepFailed("call", f"{call['name']}(){line} raised {type(exc).__name__}: {exc}", getattr(exc, "errno", None)) from exc


def _innermost_line(exc: BaseException, filename: str) -> str:
    """' line N' of the deepest frame in ``filename`` (the traceback module cannot load after chroot)."""
    tb, found = exc.__traceback__, ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = f" line {tb.tb_lineno}"
        tb = tb.tb_next
    return found


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
    config = channel.expect(Message.CONFIG)
    setup = Setup(config, channel)
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
    if setup.options.get("init"):
        run_init(setup)
    exec_program(setup.spec)


def main(argv: list[str]) -> int:
    """Entry point of ``python -m minictr.runtime.process.child FD [INTERPRETER_FD]``."""
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
