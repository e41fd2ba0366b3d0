"""Linux namespaces: each gives a process its own view of one kind of global resource.

    kind      flag              what the container gets of its own
    mount     CLONE_NEWNS       the mount table (its root filesystem)
    uts       CLONE_NEWUTS      hostname and NIS domain name
    ipc       CLONE_NEWIPC      System V IPC objects and POSIX message queues
    pid       CLONE_NEWPID      process ids: its first process is PID 1
    network   CLONE_NEWNET      interfaces, addresses, routes, ports
    user      CLONE_NEWUSER     user and group ids: root inside, nobody outside
    cgroup    CLONE_NEWCGROUP   its cgroup appears as the root of the tree
    time      CLONE_NEWTIME     CLOCK_MONOTONIC and CLOCK_BOOTTIME offsets

Every function here changes the *calling* process: call them in a spawned
child (``minictr.runtime.process``), never in a notebook kernel. ``pid`` and ``time``
apply to the caller's *children* only, so the runtime forks after them.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import struct
import time

from minictr.errors import HostError, SyscallError
from minictr.kernel import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The order to join a running container's namespaces: user first (it grants the
#: capabilities the others need), mount last (after it, /proc is the container's).
JOIN_ORDER = ("user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount")

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def flags_for(kinds: list[str] | set[str]) -> int:
    """The CLONE_NEW* flags for OCI namespace kinds (``["uts", "ipc"]`` -> ``CLONE_NEWUTS | CLONE_NEWIPC``)."""
    flags = 0
    for kind in kinds:
        if kind not in linux.NAMESPACES:
            raise ValueError(f"unknown namespace kind {kind!r}: use one of {', '.join(linux.NAMESPACES)}")
        flags |= linux.NAMESPACES[kind][0]
    return flags


def unshare(kinds: list[str] | set[str]) -> None:
    """Move the calling process into new namespaces of these kinds (``pid``/``time``: its children)."""
    if kinds:
        try:
            linux.unshare(flags_for(kinds))
        except SyscallError as exc:
            if "user" in kinds and exc.errno in (1, 28):  # EPERM, ENOSPC
                raise HostError(f"{exc}: this host forbids user namespaces; {userns_hint()}") from exc
            raise


def join(path: str, kind: str) -> None:
    """Join the namespace that ``path`` (``/proc/<pid>/ns/<x>`` or a bind-mounted copy) refers to."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.NAMESPACES[kind][0])
    finally:
        os.close(fd)


def join_all(pid: int, kinds: list[str] | None = None) -> list[str]:
    """Join the namespaces of process ``pid`` that differ from ours, in :data:`JOIN_ORDER`.

    Every link is opened *before* the first ``setns``: after joining the
    mount namespace, ``/proc/<pid>`` may no longer mean the same process.
    Returns the kinds joined.
    """
    wanted = [k for k in JOIN_ORDER if kinds is None or k in kinds]
    opened = []
    try:
        for kind in wanted:
            name = linux.NAMESPACES[kind][1]
            try:
                if os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/self/ns/{name}"):
                    continue  # already there; setns to our own user namespace would fail
            except FileNotFoundError:
                continue  # the kernel lacks this kind
            opened.append((kind, os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)))
        for kind, fd in opened:
            linux.setns(fd, linux.NAMESPACES[kind][0])
    finally:
        for _, fd in opened:
            os.close(fd)
    return [kind for kind, _ in opened]


def format_id_map(mappings: list[dict[str, int]]) -> str:
    """OCI ``uidMappings`` -> the text of ``/proc/<pid>/uid_map`` (``inside outside count`` lines)."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(pid: int, uid_mappings: list[dict[str, int]], gid_mappings: list[dict[str, int]]) -> None:
    """Write a user namespace's uid and gid maps (from the parent: the child cannot map itself freely).

    An unprivileged writer may map only its own ids, and must first give up
    ``setgroups`` (else it could drop a group that was denying it access).
    """
    if os.geteuid() != 0:
        with open(f"/proc/{pid}/setgroups", "w") as handle:
            handle.write("deny")
    for name, mappings in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
        try:
            with open(f"/proc/{pid}/{name}", "w") as handle:
                handle.write(format_id_map(mappings))
        except OSError as exc:
            raise SyscallError(
                exc.errno or 1, "write", (f"/proc/{pid}/{name}", format_id_map(mappings).strip())
            ) from exc


def set_time_offsets(offsets: dict[str, dict[str, int]]) -> None:
    """Shift CLOCK_MONOTONIC and CLOCK_BOOTTIME for the time namespace made by ``unshare(["time"])``.

    ``offsets`` is OCI's ``linux.timeOffsets``: ``{"monotonic": {"secs": -N, "nanosecs": 0}, ...}``.
    It must be written before any process enters the namespace — so after
    unshare and before fork.
    """
    lines = [f"{clock} {value.get('secs', 0)} {value.get('nanosecs', 0)}\n" for clock, value in offsets.items()]
    with open("/proc/self/timens_offsets", "w") as handle:
        handle.write("".join(lines))


def uptime_offsets() -> dict[str, dict[str, int]]:
    """Offsets that make both clocks start near zero in a new time namespace (``uptime`` reads ~0)."""
    monotonic = int(time.clock_gettime(time.CLOCK_MONOTONIC))
    boottime = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    return {"monotonic": {"secs": -monotonic, "nanosecs": 0}, "boottime": {"secs": -boottime, "nanosecs": 0}}


def loopback_up() -> None:
    """Bring ``lo`` up in this (new) network namespace — it starts down, so even 127.0.0.1 fails."""
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)  # the socket module's import is ms the child spares
    try:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request + b"\0" * 22)[:18])[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP) + b"\0" * 22)
    finally:
        sock.close()


def set_hostname(hostname: str | None, domainname: str | None = None) -> None:
    """Set this UTS namespace's hostname and NIS domain name."""
    if hostname:
        linux.sethostname(hostname)
    if domainname:
        linux.setdomainname(domainname)


def userns_hint() -> str:
    """What to change on a host that refuses user namespaces."""
    hints = []
    for path, good in (
        ("/proc/sys/user/max_user_namespaces", "a positive number"),
        ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0"),
        ("/proc/sys/kernel/unprivileged_userns_clone", "1"),
    ):
        try:
            with open(path) as handle:
                value = handle.read().strip()
        except OSError:
            continue
        sysctl = path[len("/proc/sys/") :].replace("/", ".")
        bad = value == "0" if good != "0" else value == "1"
        if bad:
            hints.append(f"sysctl -w {sysctl}={'15000' if good == 'a positive number' else good} (now {value})")
    return "; ".join(hints) or "check user.max_user_namespaces and kernel.apparmor_restrict_unprivileged_userns"


def describe(pid: int | str = "self") -> dict[str, Any]:
    """The namespace links of ``pid``: ``{'mnt': 'mnt:[4026531841]', ...}``."""
    result = {}
    for name in sorted(os.listdir(f"/proc/{pid}/ns")):
        try:
            result[name] = os.readlink(f"/proc/{pid}/ns/{name}")
        except OSError:
            pass
    return result
