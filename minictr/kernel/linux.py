"""The Linux system calls Python's standard library lacks, through ctypes on libc.

Each wrapper keeps the kernel's semantics (same arguments, same flags) and
raises :class:`~minictr.errors.SyscallError` — an ``OSError`` with ``errno``
set and a message naming the call and its arguments — instead of returning -1::

    >>> mount('proc', '/x/proc', 'proc')
    Traceback (most recent call last):
    ...
    minictr.errors.SyscallError: mount('proc', '/x/proc', 'proc'): No such file or directory

Python already has ``os.chroot``, ``os.mknod``, ``os.sched_setaffinity``,
``os.pidfd_open``, ``os.setns``/``os.unshare`` (3.12 only, so not used) — this
module adds only what is missing, with the kernel's constants beside it.
Importing it is cheap: it loads libc once and nothing else.
"""

from __future__ import annotations

import ctypes
import os

from minictr.errors import SyscallError


def _load_libc() -> ctypes.CDLL:
    """glibc's soname is fixed; ask ``ctypes.util`` (slow: it may run ldconfig) only if it is absent."""
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()

# --- mount(2) flags -----------------------------------------------------------
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# --- umount2(2) flags ---------------------------------------------------------
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# --- clone(2)/unshare(2)/setns(2) namespace flags -----------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SYSVSEM = 0x00040000

#: OCI runtime-spec namespace type -> (clone flag, name of the /proc/<pid>/ns link)
NAMESPACES: dict[str, tuple[int, str]] = {
    "user": (CLONE_NEWUSER, "user"),
    "mount": (CLONE_NEWNS, "mnt"),
    "uts": (CLONE_NEWUTS, "uts"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

# --- prctl(2) options ---------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# --- capabilities (linux/capability.h) ---------------------------------------
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# --- system call numbers for calls glibc does not wrap -----------------------
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "bpf": 321, "seccomp": 317, "openat2": 437},
    "aarch64": {"pivot_root": 41, "bpf": 280, "seccomp": 277, "openat2": 437},
    "armv7l": {"pivot_root": 218, "bpf": 386, "seccomp": 383, "openat2": 437},
    "ppc64le": {"pivot_root": 203, "bpf": 361, "seccomp": 358, "openat2": 437},
    "s390x": {"pivot_root": 217, "bpf": 351, "seccomp": 348, "openat2": 437},
    "riscv64": {"pivot_root": 41, "bpf": 280, "seccomp": 277, "openat2": 437},
}


def _check(result: int, call: str, args: tuple[object, ...], hint: str = "") -> int:
    """Turn libc's ``-1 and errno`` convention into a :class:`SyscallError`."""
    if result == -1:
        raise SyscallError(ctypes.get_errno(), call, args, hint)
    return result


def _b(path: str | bytes | None) -> bytes | None:
    """Encode a path for C the way ``os`` functions do (surrogates kept)."""
    if path is None:
        return None
    return os.fsencode(path)


def mount(
    source: str | None,
    target: str,
    fstype: str | None = None,
    flags: int = 0,
    data: str | None = None,
) -> None:
    """Attach a filesystem (mount(2)).

    ``mount('proc', '/x/proc', 'proc')`` mounts a procfs; ``flags`` combine the
    ``MS_*`` constants: ``MS_BIND | MS_REC`` for a recursive bind mount,
    ``MS_REC | MS_PRIVATE`` with no source to change propagation, ``MS_REMOUNT |
    MS_BIND | MS_RDONLY`` to make a bind mount read-only.
    """
    shown: tuple[object, ...] = (source, target, fstype)
    if flags:
        shown += (flags,)
    if data:
        shown += (data,)
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), "mount", shown)


def umount2(target: str, flags: int = 0) -> None:
    """Detach a filesystem (umount2(2)); ``MNT_DETACH`` detaches lazily, even when busy."""
    _check(_libc.umount2(_b(target), flags), "umount2", (target, flags) if flags else (target,))


def pivot_root(new_root: str, put_old: str) -> None:
    """Make ``new_root`` the root of this mount namespace and move the old root to ``put_old``.

    The kernel's rules (pivot_root(2)) — each broken one is an EINVAL or EBUSY:

    1. ``new_root`` and ``put_old`` must be directories;
    2. they must not be on the same mount as the current root;
    3. ``put_old`` must be at or underneath ``new_root``;
    4. ``new_root`` must be a mount point (bind-mount it onto itself first);
    5. the propagation of ``new_root``, its parent and the current root must
       not be shared — make the tree private (``MS_REC | MS_PRIVATE``) first.

    glibc has no wrapper for it, so this calls the raw system call.
    """
    number = _SYSCALLS.get(os.uname().machine, {}).get("pivot_root")
    if number is None:
        raise SyscallError(38, "pivot_root", (new_root, put_old), f"unknown syscall number on {os.uname().machine}")
    hint = ""
    result = _libc.syscall(ctypes.c_long(number), _b(new_root), _b(put_old))
    if result == -1 and ctypes.get_errno() == 22:  # EINVAL
        hint = "is new_root a mount point, and is the mount tree private rather than shared?"
    elif result == -1 and ctypes.get_errno() == 16:  # EBUSY
        hint = "new_root is on the same mount as the current root: bind-mount it onto itself first"
    _check(result, "pivot_root", (new_root, put_old), hint)


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    """The bpf(2) system call: ``cmd`` (``BPF_PROG_LOAD``...) on the ``union bpf_attr`` in ``attr``.

    glibc has no wrapper. ``attr`` is a zero-filled buffer the caller packed
    (the kernel rejects unknown non-zero bytes past the fields it knows).
    Returns what the call returns (a new file descriptor for a load).
    """
    number = _SYSCALLS.get(os.uname().machine, {}).get("bpf")
    if number is None:
        raise SyscallError(38, "bpf", (cmd,), f"unknown syscall number on {os.uname().machine}")
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    return _check(result, "bpf", (cmd,))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


def openat2(dirfd: int, path: str, flags: int, resolve: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under ``resolve`` rules; returns the new descriptor.

    With ``RESOLVE_IN_ROOT`` the kernel treats ``dirfd`` as the root of the
    lookup: ``..`` and absolute symlinks stop there, so nothing in the tree
    can point the lookup outside it (kernel 5.6 and later; ENOSYS before).
    """
    number = _SYSCALLS.get(os.uname().machine, {}).get("openat2", 437)
    how = _OpenHow(flags, 0, resolve)
    result = _libc.syscall(
        ctypes.c_long(number), ctypes.c_int(dirfd), _b(path), ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how))
    )
    return _check(result, "openat2", (dirfd, path, hex(flags), hex(resolve)))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


SECCOMP_SET_MODE_FILTER = 1


def seccomp_set_filter(program: bytes, flags: int = 0) -> None:
    """Install a classic BPF ``program`` (8 bytes an instruction) as this thread's seccomp filter.

    seccomp(SECCOMP_SET_MODE_FILTER, flags, &sock_fprog); ``flags`` combine
    SECCOMP_FILTER_FLAG_* (TSYNC 1, LOG 2, SPEC_ALLOW 4). The kernel demands
    no_new_privs or CAP_SYS_ADMIN. glibc has no wrapper.
    """
    number = _SYSCALLS.get(os.uname().machine, {}).get("seccomp")
    if number is None:
        raise SyscallError(38, "seccomp", (), f"unknown syscall number on {os.uname().machine}")
    prog = _SockFprog(len(program) // 8, program)
    result = _libc.syscall(
        ctypes.c_long(number), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags), ctypes.byref(prog)
    )
    hint = "the kernel wants no_new_privs or CAP_SYS_ADMIN first" if result == -1 and ctypes.get_errno() == 13 else ""
    _check(result, "seccomp", ("SECCOMP_SET_MODE_FILTER", flags, f"{len(program) // 8} instructions"), hint)


def unshare(flags: int) -> None:
    """Move this process into new namespaces (unshare(2)); ``flags`` combine ``CLONE_NEW*``.

    ``CLONE_NEWUSER`` fails with EINVAL in a multithreaded process — one reason
    minictr always does this in a freshly spawned, single-threaded child.
    """
    hint = ""
    result = _libc.unshare(flags)
    if result == -1 and ctypes.get_errno() == 22 and flags & CLONE_NEWUSER:
        hint = "a multithreaded process cannot create a user namespace"
    _check(result, "unshare", (hex(flags),), hint)


def setns(fd: int, nstype: int = 0) -> None:
    """Join the namespace that ``fd`` refers to (an open /proc/<pid>/ns/* file or a pidfd)."""
    _check(_libc.setns(fd, nstype), "setns", (fd, hex(nstype)))


def sethostname(name: str) -> None:
    """Set the hostname of this UTS namespace (sethostname(2))."""
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname", (name,))


def setdomainname(name: str) -> None:
    """Set the NIS domain name of this UTS namespace (setdomainname(2))."""
    raw = name.encode()
    _check(_libc.setdomainname(raw, len(raw)), "setdomainname", (name,))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Operate on this process (prctl(2)); ``option`` is one of the ``PR_*`` constants."""
    return _check(
        _libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)),
        "prctl",
        (option, arg2),
    )


def set_process_name(name: str) -> None:
    """Name this process as ``ps`` and ``/proc/<pid>/comm`` show it (15 bytes at most)."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(PR_SET_NAME, buf, 0, 0, 0), "prctl", ("PR_SET_NAME", name))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return the (effective, permitted, inheritable) capability sets of ``pid`` as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget", (pid,))

    def join(lo: int, hi: int) -> int:  # two 32-bit halves make one set
        return lo | (hi << 32)

    return (
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (capset(2)); each set is a 64-bit mask of ``1 << CAP_*``."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i, shift in enumerate((0, 32)):
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data), "capset", (hex(effective), hex(permitted), hex(inheritable)))


def namespace_id(pid: int | str, kind: str) -> str:
    """Return what ``/proc/<pid>/ns/<kind>`` points to, e.g. ``'mnt:[4026531841]'``.

    Two processes are in the same namespace exactly when these are equal.
    """
    return os.readlink(f"/proc/{pid}/ns/{kind}")
