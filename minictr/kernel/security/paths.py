"""Masked and read-only paths: the kernel's knobs under /proc and /sys stay the host's.

/proc and /sys are the kernel's own interface, and a few of their files act
on the whole machine, not on one namespace: ``/proc/sys/kernel/core_pattern``
names a program the host's kernel runs *as root on the host* when anything
dumps core; ``/proc/sysrq-trigger`` reboots; ``/proc/kcore`` is the host's
memory. As runc does, after the root is in place:

- a *masked* directory gets an empty read-only tmpfs on top, a masked file
  gets ``/dev/null`` bound on top (reading it yields nothing);
- a *read-only* path is bind-mounted onto itself, then remounted read-only.

Paths that do not exist on this kernel are skipped.
"""

from __future__ import annotations

import errno
import os

from minictr.kernel import linux

#: Docker's defaults (OCI ``linux.maskedPaths``).
MASKED = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)  # fmt: skip

#: Docker's defaults (OCI ``linux.readonlyPaths``).
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

#: statvfs flags -> mount flags that a read-only remount must repeat (the kernel refuses to clear locked ones).
_KEPT = {os.ST_NOSUID: linux.MS_NOSUID, os.ST_NODEV: linux.MS_NODEV, os.ST_NOEXEC: linux.MS_NOEXEC}


def mask(path: str) -> bool:
    """Hide ``path``: a read-only tmpfs over a directory, /dev/null over a file. False if it does not exist."""
    try:
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if not os.path.lexists(path):
            return False
        if is_dir:
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY, "size=0k")
        else:
            linux.mount("/dev/null", path, None, linux.MS_BIND)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
    return True


def make_readonly(path: str) -> bool:
    """Bind ``path`` onto itself and remount it read-only (keeping nosuid/nodev/noexec). False if absent."""
    if not os.path.lexists(path):
        return False
    linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    kept = 0
    flags = os.statvfs(path).f_flag
    for st_flag, ms_flag in _KEPT.items():
        if flags & st_flag:
            kept |= ms_flag
    linux.mount(path, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC | kept)
    return True


def apply(masked: list[str], readonly: list[str]) -> None:
    """Read-only paths first, then masks (a mask inside a read-only path still goes on top)."""
    for path in readonly:
        make_readonly(path)
    for path in masked:
        mask(path)
