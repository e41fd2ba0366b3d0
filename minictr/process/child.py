"""The container's first process: a fresh interpreter that sets up, then becomes the program.

Started as ``python -m minictr.process.child FD`` by :mod:`minictr.process.parent`.
It is single-threaded and owns nothing of its parent, so it may unshare, mount,
chroot and drop privileges freely. It reads its orders (an OCI runtime-spec
config) from the channel on FD, runs a short, flat recipe of named steps,
reports READY, waits for START and ``execve``s the container's program.

Everything it needs is imported *before* it changes its root: after ``chroot``
the interpreter's own files are out of reach.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
TYPE_CHECKING = False  # the child imports only what it uses: typing is for checkers
if TYPE_CHECKING:
    from typing import Any, Callable

from .. import linux
from ..errors import SyscallError
from .channel import Channel, Message


class StepFailed(Exception):
    """A set-up step failed; carries the step's name for the parent's message."""

    def __init__(self, step: str, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.errno = err


class Setup:
    """What the steps share: the spec, the overlay plan and where the root is."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.spec: dict[str, Any] = config["spec"]
        self.overlay: dict[str, Any] | None = config.get("overlay")
        self.options: dict[str, Any] = config.get("options", {})
        self.rootfs: str = os.path.abspath(self.spec["root"]["path"])
        namespaces = self.spec.get("linux", {}).get("namespaces", [])
        self.namespaces = {ns["type"]: ns for ns in namespaces}


# --- the steps, in the order they run ------------------------------------------------


def die_with_parent(setup: Setup) -> None:
    """Ask the kernel to SIGKILL us if the parent dies (foreground ``run``): nothing outlives it."""
    if setup.options.get("die_with_parent"):
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != setup.options.get("parent_pid", os.getppid()):
            os._exit(137)  # the parent is already gone


def private_mounts(setup: Setup) -> None:
    """Give this process its own mount table, so nothing it mounts reaches the host.

    Without a mount namespace in the spec (chroot isolation) this is the only
    namespace used, and only when there is something to mount: the overlay
    root or the spec's mounts. Propagation becomes private *before* anything
    is mounted — on a shared ``/`` (systemd's default) mounts would otherwise
    propagate back to the host.
    """
    if "mount" not in setup.namespaces and not setup.overlay and not setup.spec.get("mounts"):
        return
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)


def mount_overlay(setup: Setup) -> None:
    """Mount the copy-on-write root: the image's layers read-only below, the container's changes above."""
    if not setup.overlay:
        return
    lower = ":".join(setup.overlay["lowerdirs"])
    data = f"lowerdir={lower},upperdir={setup.overlay['upperdir']},workdir={setup.overlay['workdir']}"
    linux.mount("overlay", setup.rootfs, "overlay", 0, data)


def mount_spec_mounts(setup: Setup) -> None:
    """Mount the spec's ``mounts`` (e.g. /proc) below the new root, before entering it."""
    for entry in setup.spec.get("mounts", []):
        target = os.path.join(setup.rootfs, entry["destination"].lstrip("/"))
        os.makedirs(target, exist_ok=True)
        flags, data = _mount_options(entry.get("options", []))
        linux.mount(entry.get("source", entry.get("type")), target, entry.get("type"), flags, data or None)


def enter_root(setup: Setup) -> None:
    """Make the rootfs this process's root: chroot (chroot isolation), then chdir to the cwd.

    ``chdir`` after ``chroot`` matters: a process whose working directory is
    outside its root can walk back up to the host's root with ``..``.
    """
    try:
        os.chroot(setup.rootfs)
    except OSError as exc:
        raise StepFailed("chroot", f"chroot({setup.rootfs!r}): {exc.strerror}", exc.errno) from exc
    os.chdir("/")
    cwd = setup.spec.get("process", {}).get("cwd", "/")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise StepFailed("cwd", f"chdir to working directory {cwd!r}: {exc.strerror}", exc.errno) from exc


def set_user(setup: Setup) -> None:
    """Become the spec's user: supplementary groups, then gid, then uid (the other way round fails)."""
    user = setup.spec.get("process", {}).get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if (uid, gid) == (os.getuid(), os.getgid()) and not user.get("additionalGids"):
        return
    os.setgroups(user.get("additionalGids", []))
    os.setgid(gid)
    os.setuid(uid)


STEPS: list[Callable[[Setup], None]] = [die_with_parent, private_mounts, mount_overlay, mount_spec_mounts, enter_root, set_user]


# --- helpers -----------------------------------------------------------------------

_FLAG_OPTIONS = {
    "ro": linux.MS_RDONLY,
    "nosuid": linux.MS_NOSUID,
    "nodev": linux.MS_NODEV,
    "noexec": linux.MS_NOEXEC,
    "bind": linux.MS_BIND,
    "rbind": linux.MS_BIND | linux.MS_REC,
    "relatime": linux.MS_RELATIME,
    "strictatime": linux.MS_STRICTATIME,
    "noatime": linux.MS_NOATIME,
}
_IGNORED_OPTIONS = {"rw", "defaults"}


def _mount_options(options: list[str]) -> tuple[int, str]:
    """Split OCI mount options into mount(2) flags and the filesystem's data string."""
    flags, data = 0, []
    for option in options:
        if option in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[option]
        elif option not in _IGNORED_OPTIONS:
            data.append(option)
    return flags, ",".join(data)


def exec_program(spec: dict[str, Any]) -> None:
    """Replace this interpreter with the container's program (searching the container's PATH)."""
    process = spec.get("process", {})
    args = process.get("args") or []
    env = dict(item.split("=", 1) for item in process.get("env", []) if "=" in item)
    if not args:
        raise StepFailed("exec", "no command given: the image has no Cmd or Entrypoint", errno.EINVAL)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores SIGPIPE; programs expect the default
    try:
        if "/" in args[0]:
            os.execve(args[0], args, env)
        os.execvpe(args[0], args, env)
    except FileNotFoundError as exc:
        where = "" if "/" in args[0] else " in $PATH"
        what = "no such file or directory" if "/" in args[0] else f"executable file not found{where}"
        raise StepFailed("exec", f'exec: "{args[0]}": {what}', exc.errno) from exc
    except OSError as exc:
        raise StepFailed("exec", f'exec: "{args[0]}": {exc.strerror.lower()}', exc.errno) from exc


def call_function(call: dict[str, Any]) -> Any:
    """Run a Python function, sent as source, inside the container; return its value.

    Only what is already imported works after the root changed: ``os`` and the
    built-ins are there, new imports are not.
    """
    namespace: dict[str, Any] = {"__name__": "__minictr_call__", "os": os}
    try:
        exec(compile(call["source"], f"<{call['name']}>", "exec"), namespace)  # noqa: S102 - the caller's own code
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


def run(channel: Channel) -> None:
    """The whole life of the child: receive, set up, report, wait, exec."""
    config = channel.expect(Message.CONFIG)
    setup = Setup(config)
    for step in STEPS:
        try:
            step(setup)
        except StepFailed:
            raise
        except SyscallError as exc:
            raise StepFailed(step.__name__, str(exc), exc.errno) from exc
        except OSError as exc:
            where = f": {exc.filename!r}" if exc.filename else ""
            raise StepFailed(step.__name__, f"{step.__name__}: {exc.strerror}{where}", exc.errno) from exc
    channel.send(Message.READY, pid=os.getpid())
    channel.expect(Message.START)
    if config.get("call"):
        channel.send(Message.RESULT, value=call_function(config["call"]))
        return
    exec_program(setup.spec)


def main(argv: list[str]) -> int:
    """Entry point of ``python -m minictr.process.child FD``."""
    fd = int(argv[1])
    os.set_inheritable(fd, False)  # close-on-exec: a successful execve tells the parent by EOF
    channel = Channel.from_fd(fd)
    linux.set_process_name("minictr-child")
    try:
        run(channel)
    except StepFailed as exc:
        channel.send(Message.ERROR, step=exc.step, message=str(exc), errno=exc.errno)
        return 127 if exc.step == "exec" else 125
    except Exception as exc:  # anything else is a bug: report it rather than hang the parent
        channel.send(Message.ERROR, step="internal", message=f"{type(exc).__name__}: {exc}", errno=None)
        return 125
    return 0  # after a call; after an exec this line is never reached


if __name__ == "__main__":
    sys.exit(main(sys.argv))
