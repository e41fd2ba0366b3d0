"""What a container's cgroup has counted: one :class:`Stats` for both cgroup versions.

The kernel accounts continuously; reading is cheap (a few small files), so
a monitor can sample several times a second. Where v1 and v2 name things
differently the drivers translate:

=================  ==================================  ======================================
                   v1                                  v2
=================  ==================================  ======================================
memory now, peak   memory.usage_in_bytes,               memory.current, memory.peak
                   memory.max_usage_in_bytes
OOM kills          memory.oom_control ``oom_kill``      memory.events ``oom_kill``
CPU time           cpuacct.usage (ns)                   cpu.stat ``usage_usec``
throttling         cpu.stat ``nr_throttled``,           cpu.stat ``nr_throttled``,
                   ``throttled_time`` (ns)              ``throttled_usec``
processes          pids.current                         pids.current
disk bytes         blkio.throttle.io_service_bytes      io.stat ``rbytes`` ``wbytes``
=================  ==================================  ======================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass
class Stats:
    """One reading of a container's cgroup. Limits are ``None`` when there is none."""

    time: float  #: time.monotonic() when read
    memory: int = 0  #: bytes in use now (v1 counts page cache too)
    memory_peak: int = 0  #: the most ever in use
    memory_limit: int | None = None
    cpu_usage_us: int = 0  #: CPU time used, all CPUs together, in microseconds
    cpu_periods: int = 0  #: CFS periods in which the cgroup could run (only with a quota)
    cpu_throttled: int = 0  #: of those, the periods in which it hit its quota
    cpu_throttled_us: int = 0  #: total time spent throttled
    cpu_limit: float | None = None  #: the quota in CPUs (quota / period)
    pids: int = 0  #: processes and threads now
    pids_limit: int | None = None
    oom_kills: int = 0  #: processes the OOM killer has killed
    io_read: int = 0  #: bytes read from block devices
    io_write: int = 0  #: bytes written to block devices

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def cpu_between(before: Stats, after: Stats) -> float:
    """CPUs used on average between two readings (1.0 is one core busy all the time)."""
    elapsed = after.time - before.time
    return (after.cpu_usage_us - before.cpu_usage_us) / 1e6 / elapsed if elapsed > 0 else 0.0


def limit_or_none(text: str, unlimited_above: int = 1 << 62) -> int | None:
    """A limit file's value: ``max`` (v2) or a huge number (v1's "no limit") is None."""
    text = text.strip()
    if text in ("max", "-1", ""):
        return None
    value = int(text)
    return None if value >= unlimited_above else value


def io_bytes(lines: str) -> tuple[int, int]:
    """Bytes read and written, summed over devices, from v1 ``io_service_bytes`` or v2 ``io.stat``."""
    read = written = 0
    for line in lines.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] in ("Read", "Write"):  # v1: "8:0 Read 4096"
            if fields[1] == "Read":
                read += int(fields[2])
            else:
                written += int(fields[2])
        for field in fields[1:]:  # v2: "8:0 rbytes=4096 wbytes=0 rios=1 ..."
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                written += int(value)
    return read, written
