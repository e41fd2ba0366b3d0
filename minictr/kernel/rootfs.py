"""The container's root filesystem: private mounts, /proc, /dev, /sys, pivot_root.

Each function does one step and can be used on its own (in a child process:
they change the calling process's mount namespace). In the order the runtime
calls them::

    make_private("/")          nothing we mount may propagate back to the host
    bind_onto_itself(root)     pivot_root needs the new root to be a mount point
    mount_entry(root, m)       each of the spec's mounts: /proc, /dev, /dev/pts, /sys...
    create_devices(root)       null, zero, full, random, urandom, tty; ptmx, fd links
    pivot_into(root)           the new root becomes /, the old one is detached
    remount_readonly("/")      when the spec says root.readonly

:func:`pivot_into` falls back to :func:`move_and_chroot` — and says why — where
pivot_root is impossible (a root filesystem on ramfs, as in an initramfs);
:func:`pivot_in_place` does its work in a root the caller may not write to.
"""

from __future__ import annotations

import errno
import os
import stat

from minictr.errors import SyscallError
from minictr.kernel import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_PROPAGATION = {
    "private": linux.MS_PRIVATE,
    "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "slave": linux.MS_SLAVE,
    "rslave": linux.MS_SLAVE | linux.MS_REC,
    "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE,
    "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}

#: The devices every container gets (OCI runtime spec, "Default Devices"): name -> (major, minor).
DEFAULT_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}

#: The symbolic links of a standard /dev.
DEFAULT_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}

#: OCI mount options that are mount(2) flags; the rest go to the filesystem as data.
MOUNT_FLAGS = {
    "ro": linux.MS_RDONLY, "nosuid": linux.MS_NOSUID, "nodev": linux.MS_NODEV, "noexec": linux.MS_NOEXEC,
    "sync": linux.MS_SYNCHRONOUS, "dirsync": linux.MS_DIRSYNC, "noatime": linux.MS_NOATIME,
    "nodiratime": linux.MS_NODIRATIME, "relatime": linux.MS_RELATIME, "strictatime": linux.MS_STRICTATIME,
    "bind": linux.MS_BIND, "rbind": linux.MS_BIND | linux.MS_REC,
}  # fmt: skip
_CLEARING = {"rw", "suid", "dev", "exec", "async", "atime", "diratime", "norelatime", "defaults"}


def make_private(path: str = "/", propagation: str = "rprivate") -> None:
    """Change the propagation of the mount at ``path`` (and below, for the ``r`` kinds).

    On most hosts ``/`` is *shared* (systemd's default): a mount made in one
    namespace would appear in the others. Making it private (or slave) first,
    before anything is mounted, keeps the container's mounts its own.
    """
    if propagation not in _PROPAGATION:
        raise ValueError(f"unknown propagation {propagation!r}: use one of {', '.join(_PROPAGATION)}")
    linux.mount(None, path, None, _PROPAGATION[propagation])


def bind_onto_itself(path: str) -> None:
    """Bind-mount ``path`` onto itself, so that it is a mount point (pivot_root's rule 4)."""
    linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)


def split_options(options: list[str]) -> tuple[int, str, str | None]:
    """OCI mount options -> (mount flags, filesystem data, propagation or None)."""
    flags, data, propagation = 0, [], None
    for option in options:
        if option in MOUNT_FLAGS:
            flags |= MOUNT_FLAGS[option]
        elif option in _PROPAGATION:
            propagation = option
        elif option not in _CLEARING:
            data.append(option)
    return flags, ",".join(data), propagation


def resolve_in_root(root: str, path: str) -> str:
    """Where ``path`` is inside ``root`` as the container will see it, as a host path below ``root``.

    Symbolic links are followed *inside* the root: an absolute link starts
    again at ``root`` and ``..`` stops there. ``os.path.join(root, path)``
    would follow an image's link ``/data -> /etc`` to the host's /etc, and a
    volume mounted on /data would then create files and mount there (the
    class of CVE-2021-30465).
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    for _hop in range(256):
        if not parts:
            return os.path.join(root, *resolved)
        part = parts.pop(0)
        if part == "..":
            resolved = resolved[:-1]
            continue
        candidate = os.path.join(root, *resolved, part)
        if not os.path.islink(candidate):
            resolved.append(part)
            continue
        link = os.readlink(candidate)
        if link.startswith("/"):
            resolved = []
        parts = [p for p in link.split("/") if p not in ("", ".")] + parts
    raise SyscallError(errno.ELOOP, "resolve", (root, path), "too many symbolic links")


def _open_in_root(root: str, target: str) -> int:
    """An O_PATH descriptor of ``target`` opened by the kernel *within* ``root`` (openat2 RESOLVE_IN_ROOT).

    Mounting on /proc/self/fd/N of it cannot be redirected by a link swapped
    in after :func:`resolve_in_root` looked. -1 where the kernel lacks openat2.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        relative = os.path.relpath(target, root)
        return linux.openat2(
            root_fd, relative, os.O_PATH | os.O_CLOEXEC, linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
        )
    except SyscallError as exc:
        if exc.errno == errno.ENOSYS:
            return -1
        raise
    finally:
        os.close(root_fd)


def mount_entry(root: str, entry: dict[str, Any]) -> None:
    """Mount one OCI ``mounts`` entry below ``root`` (its destination is inside the container).

    The destination is resolved inside ``root`` (:func:`resolve_in_root`) and
    mounted through a descriptor the kernel opened within it. Bind mounts of
    files get a file to mount on; a read-only bind needs a second, remounting
    call (the kernel ignores MS_RDONLY on the first).
    """
    destination = entry["destination"]
    target = resolve_in_root(root, destination)
    flags, data, propagation = split_options(entry.get("options", []))
    kind = entry.get("type") or ("bind" if flags & linux.MS_BIND else "none")
    source = entry.get("source", kind)
    if kind == "bind":
        flags |= linux.MS_BIND
    if flags & linux.MS_BIND and not os.path.isdir(source):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "a").close()
    else:
        os.makedirs(target, exist_ok=True)
    fd = _open_in_root(root, target)
    at = f"/proc/self/fd/{fd}" if fd >= 0 else target
    try:
        if flags & linux.MS_BIND:
            linux.mount(source, at, None, flags & (linux.MS_BIND | linux.MS_REC))
            if flags & ~(linux.MS_BIND | linux.MS_REC):
                linux.mount(None, target, None, flags | linux.MS_REMOUNT | linux.MS_BIND)
        else:
            linux.mount(source, at, kind, flags, data or None)
    finally:
        if fd >= 0:
            os.close(fd)
    if propagation:
        make_private(target, propagation)


def create_devices(root: str, *, bind_from_host: bool = False) -> None:
    """Populate ``<root>/dev`` (a fresh tmpfs) with the default devices and links.

    As real root, ``mknod`` makes each node. In a user namespace ``mknod`` is
    forbidden, so the host's nodes are bind-mounted instead (as runc does).
    """
    dev = os.path.join(root, "dev")
    for name, (major, minor) in DEFAULT_DEVICES.items():
        path = os.path.join(dev, name)
        if os.path.lexists(path):
            continue
        if bind_from_host:
            open(path, "a").close()
            linux.mount(f"/dev/{name}", path, None, linux.MS_BIND)
        else:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(path, 0o666)  # mknod obeys the umask
    for name, target in DEFAULT_LINKS.items():
        path = os.path.join(dev, name)
        if not os.path.lexists(path):
            os.symlink(target, path)


def create_spec_devices(root: str, devices: list[dict[str, Any]], *, bind_from_host: bool = False) -> None:
    """Make the nodes the spec's ``linux.devices`` lists (``--device``), below ``root``.

    As root each is made with ``mknod`` and given its mode and owner; in a
    user namespace the host's node (same major:minor, found in /dev) is
    bind-mounted instead. The devices cgroup decides separately whether it
    may be opened.
    """
    for device in devices:
        path = os.path.join(root, device["path"].lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        kind = stat.S_IFBLK if device["type"] == "b" else stat.S_IFCHR
        mode = device.get("fileMode", 0o666)
        if bind_from_host:
            open(path, "a").close()
            linux.mount(_host_node(device), path, None, linux.MS_BIND)
            continue
        os.mknod(path, mode | kind, os.makedev(device["major"], device["minor"]))
        os.chmod(path, mode)
        os.chown(path, device.get("uid", 0), device.get("gid", 0))


def _host_node(device: dict[str, Any]) -> str:
    """The host's /dev node with the same type and numbers as ``device`` (for a bind mount)."""
    wanted = os.makedev(device["major"], device["minor"])
    for directory, _, files in os.walk("/dev"):
        for name in files:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if info.st_rdev == wanted and (stat.S_ISBLK(info.st_mode) == (device["type"] == "b")):
                return path
    raise FileNotFoundError(errno.ENOENT, f"no host device {device['major']}:{device['minor']} to bind", device["path"])


def pivot_into(new_root: str) -> str:
    """Make ``new_root`` this mount namespace's ``/``; detach and remove the old root.

    Returns ``"pivot_root"``, or ``"chroot"`` when the kernel refused
    pivot_root because the current root cannot be pivoted (ramfs/rootfs) and
    :func:`move_and_chroot` was used instead. Unlike chroot, afterwards the
    host's root is not reachable at all: it is not in this namespace any more.
    """
    put_old = os.path.join(new_root, ".oldroot")
    os.makedirs(put_old, exist_ok=True)
    try:
        linux.pivot_root(new_root, put_old)
    except SyscallError as exc:
        os.rmdir(put_old)
        if exc.errno == errno.EINVAL and _root_is_ramfs():
            move_and_chroot(new_root)
            return "chroot"
        raise
    os.chdir("/")
    linux.umount2("/.oldroot", linux.MNT_DETACH)
    os.rmdir("/.oldroot")
    return "pivot_root"


def pivot_in_place(new_root: str) -> str:
    """:func:`pivot_into` for a root we may not write to: ``pivot_root(".", ".")`` needs no ``put_old`` directory.

    From inside the new root, the old root is stacked on the same mount
    point, on top, and detached at once (pivot_root(2) documents the idiom).
    A mapped root in a user namespace cannot make ``.oldroot`` in an image
    owned by the host's root, nor can anyone in a read-only one. Returns
    what :func:`pivot_into` returns.
    """
    os.chdir(new_root)
    try:
        linux.pivot_root(".", ".")
    except SyscallError as exc:
        if exc.errno == errno.EINVAL and _root_is_ramfs():
            move_and_chroot(new_root)
            return "chroot"
        raise
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    return "pivot_root"


def move_and_chroot(new_root: str) -> None:
    """The fallback where pivot_root is impossible: move the new root over ``/``, then chroot.

    The initial ramfs cannot be unmounted, so pivot_root refuses to move it;
    moving the new root on top of ``/`` hides the old root instead (runc's
    ``--no-pivot``). It is weaker: the old root is still underneath.
    """
    os.chdir(new_root)
    linux.mount(new_root, "/", None, linux.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def remount_readonly(path: str = "/") -> None:
    """Make the (bind) mount at ``path`` read-only."""
    linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)


def _root_is_ramfs() -> bool:
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split()
                if fields[4] == "/":
                    kind = fields[fields.index("-") + 1]
                    return kind in ("rootfs", "ramfs")
    except (OSError, ValueError, IndexError):
        pass
    return False
