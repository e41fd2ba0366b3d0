"""Capabilities: root's powers, one bit each, and the five sets a process carries.

A process has a *bounding* set (the most it can ever gain, even through a
setuid binary), *permitted* (what it may use), *effective* (what it uses
now), *inheritable* and *ambient* (what survives ``execve`` without file
capabilities). ``/proc/<pid>/status`` shows them as hex masks (CapBnd,
CapPrm, CapEff...): :func:`decode` reads one back into names.

The order of operations in the child is the runtime's (runc's) order::

    drop_bounding(caps)       needs CAP_SETPCAP, so while still root with everything
    keep_across_setuid()      PR_SET_KEEPCAPS: setuid to a non-root user would clear them
    (set the user)
    apply(caps)               capset(effective, permitted, inheritable), then ambient
"""

from __future__ import annotations

from minictr.errors import UsageError
from minictr.kernel import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: linux/capability.h, in bit order.
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
NUMBERS = {name: bit for bit, name in enumerate(NAMES)}

#: What Docker (and podman, as root) leave a container: enough to be root in one's own files, no more.
DEFAULT = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)  # fmt: skip

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")

PR_SET_KEEPCAPS = 8


def last_cap() -> int:
    """The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def canonical(name: str) -> str:
    """``net_admin``, ``NET_ADMIN`` or ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; UsageError when unknown."""
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else f"CAP_{upper}"
    if full not in NUMBERS:
        raise UsageError(f"unknown capability {name!r}")
    return full


def mask(names: list[str] | tuple[str, ...]) -> int:
    """Capability names -> a 64-bit mask as /proc shows it."""
    value = 0
    for name in names:
        value |= 1 << NUMBERS[canonical(name)]
    return value


def decode(value: int | str) -> list[str]:
    """A mask (an int or /proc's hex text, e.g. ``00000000a80425fb``) -> the capability names in it."""
    number = int(value, 16) if isinstance(value, str) else value
    return [NAMES[bit] if bit < len(NAMES) else f"CAP_{bit}" for bit in range(64) if number >> bit & 1]


def host_bounding() -> list[str]:
    """The capabilities this process's bounding set holds (what a --privileged container can get)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("CapBnd:"))
    return [name for name in decode(line.split()[1]) if name in NUMBERS]


def resolve(add: list[str], drop: list[str], base: tuple[str, ...] = DEFAULT) -> list[str]:
    """Docker's ``--cap-add``/``--cap-drop`` over ``base`` (``ALL`` allowed in both; an added one survives drop ALL)."""
    drop_all = any(d.strip().upper() == "ALL" for d in drop)
    add_all = any(a.strip().upper() == "ALL" for a in add)
    dropped = {canonical(d) for d in drop if d.strip().upper() != "ALL"}
    added = {canonical(a) for a in add if a.strip().upper() != "ALL"}
    result = set() if drop_all else set(base) - dropped
    result |= (set(NAMES) - dropped) if add_all else (added - dropped)
    return sorted(result, key=NUMBERS.__getitem__)


def spec_capabilities(names: list[str]) -> dict[str, list[str]]:
    """OCI ``process.capabilities`` for ``names``: bounding, effective, permitted; inheritable stays empty.

    An empty inheritable set is what Docker and podman do since CVE-2022-24769:
    with it full, a program with inheritable file capabilities gained them
    across ``execve`` even as a non-root user.
    """
    return {
        "bounding": list(names),
        "effective": list(names),
        "permitted": list(names),
        "inheritable": [],
        "ambient": [],
    }


def check_available(caps: dict[str, list[str]]) -> list[str]:
    """The capabilities the spec asks for that this host cannot give (not in our bounding set).

    They are dropped with a warning (the kernel cannot grant them), never silently.
    """
    have = set(host_bounding())
    wanted = {c for kind in SETS for c in caps.get(kind, [])}
    return sorted(wanted - have, key=lambda c: NUMBERS.get(c, 99))


def _masks(caps: dict[str, Any]) -> dict[str, int]:
    top = last_cap()
    have = mask(host_bounding())  # in a new user namespace: every capability
    return {kind: mask([c for c in caps.get(kind, []) if NUMBERS[canonical(c)] <= top]) & have for kind in SETS}


def drop_bounding(caps: dict[str, Any]) -> None:
    """Remove from the bounding set every capability the spec's bounding list lacks (needs CAP_SETPCAP)."""
    keep = _masks(caps)["bounding"]
    for bit in range(last_cap() + 1):
        if not keep >> bit & 1 and linux.prctl(linux.PR_CAPBSET_READ, bit) == 1:
            linux.prctl(linux.PR_CAPBSET_DROP, bit)


def keep_across_setuid(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set when the uids change away from 0 (turned off again after)."""
    linux.prctl(PR_SET_KEEPCAPS, 1 if on else 0)


def apply(caps: dict[str, Any]) -> None:
    """Set effective, permitted and inheritable with capset(2); then the ambient set."""
    sets = _masks(caps)
    linux.capset(sets["effective"], sets["permitted"], sets["inheritable"])
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    # The kernel raises an ambient capability only if it is permitted and inheritable; like runc,
    # the others are left out rather than failing (``runc spec`` lists ambient ones it cannot raise).
    raisable = sets["ambient"] & sets["permitted"] & sets["inheritable"]
    for bit in range(last_cap() + 1):
        if raisable >> bit & 1:
            linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, bit)
