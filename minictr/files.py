"""Files that survive a crash: one atomic writer, and readers that take a torn file for what it is.

Every file minictr keeps (state.json, leases, network definitions, the image
index) is written by :func:`write_atomic`: the data goes to a partial file
beside the target, named ``.partial-<pid>-<random>``, and a rename puts it in
place, so a reader sees the old content or the new one, never half. A writer
killed half-way leaves only its partial file, which :func:`remove_partials`
takes away once its writer is dead.

A file can still be torn by what a rename cannot cover: a power loss before
the data reached the disk (``durable=False`` skips the fsync for files on a
tmpfs such as ``/run``, which a reboot empties anyway), or a file written by
hand. :func:`read_json` returns ``{}`` for a missing, empty, torn or
non-object file: callers treat that as what it is, the trace of a crash, and
clean up after it — never as an exception.

:func:`locked` is the one way minictr holds a lock file (``flock``): the
image store, its blobs and layers, the state root's container names, a
container's cp. The host-wide network lock builds on the same call and adds
re-entrancy; the monitor's lock is the one exception, a descriptor it keeps
across exec and others only probe.

Only the standard library, and nothing heavy: the container start path writes
state.json through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

PARTIAL_PREFIX = ".partial-"


def write_atomic(path: str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new content, never half.

    ``durable`` flushes the data to the disk before the rename (a power loss
    then cannot leave an empty file behind); files on a tmpfs skip it.
    """
    temp = os.path.join(os.path.dirname(path), f"{PARTIAL_PREFIX}{os.getpid()}-{os.urandom(4).hex()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(temp, mode)  # the umask may have taken bits away
        os.rename(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def locked(
    path: str, *, shared: bool = False, timeout: float | None = None, make_directory: bool = True,
    this_process: bool = False,
) -> Iterator[int]:  # fmt: skip
    """Hold a ``flock`` on ``path`` (made, with its directory, if missing) for the block; yield its descriptor.

    ``shared`` takes a shared lock (readers, or work that only adds) instead
    of an exclusive one. ``timeout`` gives up after that many seconds with
    :class:`TimeoutError` instead of waiting for as long as the holder keeps
    it. The kernel lets go of the lock when its holder dies, so a killed
    minictr never leaves one behind. Without ``make_directory`` a missing
    directory is a :class:`FileNotFoundError` (a container's, once removed,
    must not come back for its lock).

    ``this_process`` takes a POSIX record lock (``lockf``) instead: held by
    this process alone, never by a child it forks meanwhile. A ``flock``
    belongs to the open file, which a fork shares: a child forked by another
    thread while the lock is held (a container's first process, waiting for
    ``start`` before it execs) would keep it after the block ends. Threads of
    one process do not exclude each other with it: hold a thread lock too.
    """
    import errno
    import fcntl
    import time

    take = fcntl.lockf if this_process else fcntl.flock
    if make_directory:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if timeout is None:
            take(fd, operation)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    take(fd, operation | fcntl.LOCK_NB)
                    break
                except OSError as exc:  # flock says EWOULDBLOCK, lockf EACCES or EAGAIN
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{path} is held by another process") from None
                    time.sleep(0.02)
        yield fd
    finally:
        os.close(fd)  # closing lets go of the lock


def write_json(path: str, value: Any, *, indent: int | None = None, durable: bool = False) -> None:
    """Write ``value`` as JSON with :func:`write_atomic` (state files live on tmpfs: not durable by default)."""
    write_atomic(path, json.dumps(value, indent=indent).encode(), durable=durable)


def read_json(path: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when it is missing, empty, torn or not an object."""
    try:
        with open(path, "rb") as handle:
            value = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def remove_partials(directory: str) -> list[str]:
    """Remove the partial files of writers that died in ``directory``; return their paths.

    A partial file names its writer's pid: one that no longer runs will
    never finish it. (A reused pid only keeps it until a later sweep.)
    """
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PARTIAL_PREFIX):
            continue
        pid = name[len(PARTIAL_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
                removed.append(os.path.join(directory, name))
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_tree(path: str) -> None:
    """Remove a directory tree, including the mode-000 ``work/work`` directory overlayfs leaves.

    As root the mode does not matter; rootless, the owner must give itself
    permission back before it can look inside.
    """

    def unlock(_function: Any, failed: str, _error: Any) -> None:
        locked = failed if os.path.isdir(failed) and not os.path.islink(failed) else os.path.dirname(failed)
        try:
            os.chmod(locked, 0o700)
            if locked == failed:
                _rmtree(failed, unlock)
            else:
                os.unlink(failed)
        except OSError:
            pass  # what cannot be removed stays; remove_stale tries again later

    if os.path.lexists(path):
        _rmtree(path, unlock)


def _rmtree(path: str, handler: Callable[[Any, str, Any], None]) -> None:
    """``shutil.rmtree`` with an error handler: ``onexc`` from Python 3.12 on (``onerror`` is deprecated there)."""
    import shutil  # with bz2, lzma and threading: ~2 ms that only a removal needs

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=handler)
    else:
        shutil.rmtree(path, onerror=handler)
