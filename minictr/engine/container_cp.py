"""``minictr cp``: files and directories between a container and the host, both ways, as ``docker cp``.

    minictr cp [-a] [-L] CONTAINER:SRC DEST|-      minictr cp [-a] [-L] SRC|- CONTAINER:DEST

A container's paths are untrusted: the container may have made any of their
components a symlink (``/etc -> /`` or ``../../..``). Every lookup inside a
container's root goes through ``openat2(RESOLVE_IN_ROOT)``, so ``..`` and
absolute symlinks stop at the container's root, as they would inside it; the
trees below are walked and written by descriptor, never following a symlink
(``O_NOFOLLOW``, ``*at`` calls). A running (or paused) container's root is
``/proc/PID/root``; a stopped one's overlay is mounted by a short-lived helper
in a mount namespace of its own and reached through a descriptor, so nothing
is ever mounted on the host. Docker's rules for the destination:

- SRC a file: DEST an existing directory gets SRC's name inside it; otherwise
  DEST is the file written (its directory must exist; ``DEST/`` must be one).
- SRC a directory: DEST an existing directory gets SRC inside it, a missing
  DEST is created with SRC's contents; ``SRC/.`` copies the contents only.
- ``-`` is a tar archive on stdout (from a container) or stdin (into one).

Files copied into a container belong to its root (``-a``: keep the owners);
copied out, to the caller (``-a``: keep them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import subprocess
import sys

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any


from minictr.engine.managed import MONITOR_LOCK, monitor_alive, resolve, status_of
from minictr.engine.safe_tree import O_PATH, extract, from_tar, lstat, walk, write_tar
from minictr.errors import UsageError
from minictr.kernel.linux import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2
from minictr.runtime.state import read_state


@dataclasses.dataclass
class Side:
    """One end of a copy: a root (the host's, or a container's) and a path in it."""

    root: int  #: an O_PATH descriptor of the root
    path: str
    owner: int = 0  #: the host uid of this root's uid 0 (a user namespace shifts it)
    container: bool = False


# --- the command -------------------------------------------------------------------------------


def split_argument(text: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` → (container, path); a local path (``-``, ``/x``, ``./a:b``) → (None, path)."""
    if text == "-" or text.startswith(("/", ".")) or ":" not in text:
        return None, text
    container, _, path = text.partition(":")
    return container, path


def copy(source: str, dest: str, *, archive: bool = False, follow: bool = False, state_root: str | None = None,
         stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:  # fmt: skip
    """Copy ``source`` to ``dest`` (one of them ``CONTAINER:PATH``), with Docker's rules (see the module)."""
    (src_ctr, src_path), (dst_ctr, dst_path) = split_argument(source), split_argument(dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise UsageError("cp: copying between containers is not supported" if src_ctr else
                         "cp: one of SRC and DEST must be CONTAINER:PATH")  # fmt: skip
    if not src_path or not dst_path:
        raise UsageError("cp: a path is empty")
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(_side(src_ctr, src_path, state_root))
        dst = stack.enter_context(_side(dst_ctr, dst_path, state_root))
        if src.path == "-":
            import tarfile

            with tarfile.open(fileobj=stdin or sys.stdin.buffer, mode="r|*") as tar:
                extract(from_tar(tar), _directory(dst), _owners(None, dst, archive))
            return
        top, name, contents = _source(src, follow)
        if dst.path == "-":
            write_tar(walk(top, name, "" if contents else _basename(src.path)), stdout or sys.stdout.buffer,
                       _owners(src, None, True))  # fmt: skip
            return
        into, arcname = _destination(dst, _is_dir(top, name), _basename(src.path), contents)
        extract(walk(top, name, arcname), into, _owners(src, dst, archive))


@contextlib.contextmanager
def _side(container: str | None, path: str, state_root: str | None) -> Iterator[Side]:
    if container is None:
        root = os.open("/", O_PATH | os.O_CLOEXEC)
        try:
            yield Side(root, path if path == "-" else os.path.abspath(path) + ("/" if path.endswith("/") else ""))
        finally:
            os.close(root)
        return
    with container_root(container, state_root) as (root, owner):
        yield Side(root, "/" + path.lstrip("/"), owner, container=True)


@contextlib.contextmanager
def container_root(container: str, state_root: str | None = None) -> Iterator[tuple[int, int]]:
    """An O_PATH descriptor of the container's root filesystem, and the host uid of its root user."""
    directory = resolve(container, state_root)
    state = read_state(directory)
    owner = state.get("root_owner") or 0
    fd = _live_root(state, directory)
    if fd >= 0:
        pass
    elif state.get("upperdir") and state.get("overlay"):
        with _monitor_lock(directory, state["id"]):
            fd = _mounted_elsewhere(directory, state["overlay"])
            try:
                yield fd, owner
            finally:
                os.close(fd)
        return
    else:  # a flattened copy: the directory is the root
        fd = os.open(os.path.join(directory, "rootfs"), O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd, owner
    finally:
        os.close(fd)


def _live_root(state: dict[str, Any], directory: str) -> int:
    """``/proc/PID/root`` of a running container; -1 once it has stopped (its monitor then done with it)."""
    import time

    if status_of(state, directory) in ("running", "paused"):
        try:
            return os.open(f"/proc/{state['pid']}/root", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:  # it has just exited: let its monitor record that and let go
            deadline = time.monotonic() + 30
            while monitor_alive(directory) and time.monotonic() < deadline:
                time.sleep(0.02)
    return -1


@contextlib.contextmanager
def _monitor_lock(directory: str, container_id: str) -> Iterator[None]:
    """Hold the monitor's lock: no start mounts the same upper directory while we use it."""
    from minictr.files import locked

    try:
        with locked(os.path.join(directory, MONITOR_LOCK), timeout=30):  # a monitor recording an exit lets go soon
            yield
    except TimeoutError:
        raise UsageError(f"container {container_id} is starting or stopping: try again") from None


def _mounted_elsewhere(directory: str, overlay: dict[str, Any]) -> int:
    """The stopped container's overlay, mounted by a helper in a mount namespace of its own; a descriptor of it.

    The descriptor keeps the mount alive after the helper (and its namespace)
    is gone; the host's mount table never sees it, so nothing can leak.
    """
    from minictr.runtime.process.parent import _child_environment, _package_parent

    helper = subprocess.Popen([sys.executable, "-S", "-s", "-E", "-m", "minictr.engine.container_cp", "mount",
                               directory, ":".join(overlay["lowerdirs"]), overlay["upperdir"], overlay["workdir"]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=_package_parent(),
                              env=_child_environment())  # fmt: skip
    assert helper.stdin is not None and helper.stdout is not None
    try:
        word = helper.stdout.readline().decode().strip()
        if word != "ready":
            raise UsageError(f"cp: cannot mount the container's root: {word or 'the helper failed'}")
        return os.open(f"/proc/{helper.pid}/root{directory}/rootfs", O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        helper.stdin.close()
        helper.wait()


def _mount_helper(directory: str, lowers: str, upper: str, work: str) -> int:
    """The helper's side: a private mount namespace, the overlay on ``DIR/rootfs``; wait for stdin to close."""
    from minictr.kernel import linux

    try:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.mount("overlay", os.path.join(directory, "rootfs"), "overlay", 0,
                    f"lowerdir={lowers},upperdir={upper},workdir={work}")  # fmt: skip
    except OSError as exc:
        print(exc, flush=True)
        return 1
    print("ready", flush=True)
    sys.stdin.read()
    return 0


# --- where things are ----------------------------------------------------------------------------


def _open(side: Side, path: str, flags: int) -> int:
    """Open ``path`` of ``side`` (O_PATH): in a container, never outside its root."""
    resolve_flags = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS if side.container else 0
    try:
        return openat2(side.root, path.lstrip("/") or ".", flags | O_PATH | os.O_CLOEXEC, resolve_flags)
    except OSError as exc:
        raise UsageError(f"cp: {path}: {os.strerror(exc.errno or 0)}") from None


def _basename(path: str) -> str:
    return os.path.basename(path.rstrip("/")) or "."


def _source(side: Side, follow: bool) -> tuple[int, str, bool]:
    """(a directory descriptor, a name in it or "" for the descriptor itself, contents only?) of the source."""
    path = side.path
    contents = path.endswith("/.")
    trimmed = path.rstrip("/")
    if contents or follow or not trimmed or _basename(path) in (".", ".."):
        return _open(side, path, 0), "", contents
    top = _open(side, os.path.dirname(trimmed) or "/", os.O_DIRECTORY)
    name = os.path.basename(trimmed)
    try:
        info = os.stat(name, dir_fd=top, follow_symlinks=False)
    except OSError as exc:
        os.close(top)
        raise UsageError(f"cp: {path}: {os.strerror(exc.errno or 0)}") from None
    if path.endswith("/") and not stat.S_ISDIR(info.st_mode):
        os.close(top)
        raise UsageError(f"cp: {path}: not a directory")
    return top, name, False


def _is_dir(top: int, name: str) -> bool:
    return stat.S_ISDIR(lstat(top, name).st_mode)


def _destination(side: Side, directory: bool, name: str, contents: bool) -> tuple[int, str]:
    """(the directory to write in, the name the copy gets there; "" for contents straight into it)."""
    path = side.path
    try:
        existing = _open(side, path, 0)
    except UsageError:
        existing = -1
    if existing >= 0:
        if stat.S_ISDIR(os.fstat(existing).st_mode):
            return existing, "" if contents else name
        os.close(existing)
        if directory:
            raise UsageError(f"cp: cannot copy a directory to the file {path}")
    elif path.endswith("/") and not directory:
        raise UsageError(f"cp: the destination directory {path} does not exist")
    parent = _open(side, os.path.dirname(path.rstrip("/")) or "/", 0)
    if not stat.S_ISDIR(os.fstat(parent).st_mode):
        raise UsageError(f"cp: {os.path.dirname(path.rstrip('/'))} is not a directory")
    return parent, os.path.basename(path.rstrip("/"))


def _directory(side: Side) -> int:
    fd = _open(side, side.path, 0)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        raise UsageError(f"cp: {side.path} must be a directory to take an archive")
    return fd


def _owners(src: Side | None, dst: Side | None, archive: bool) -> Callable[[int, int], tuple[int, int]]:
    """Host owners for the copies: a container's root (or the caller) unless ``archive`` keeps them (shifted)."""
    if not archive:
        owner = dst.owner if dst and dst.container else os.geteuid()
        group = dst.owner if dst and dst.container else os.getegid()
        return lambda _uid, _gid: (owner, group)
    out = src.owner if src and src.container else 0
    into = dst.owner if dst and dst.container else 0
    return lambda uid, gid: (uid - out + into, gid - out + into)


if __name__ == "__main__":  # the mount helper: python -m minictr.engine.container_cp mount DIR LOWERS UPPER WORK
    sys.exit(_mount_helper(*sys.argv[2:6]))
