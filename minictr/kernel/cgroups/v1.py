"""The cgroup v1 driver: one hierarchy per controller (and the hybrid layout's extra cgroup2 tree).

In v1 every controller is its own tree, mounted at
``/sys/fs/cgroup/<controller>`` (some share one: ``cpu,cpuacct``). A
container gets a directory of the same path in each, and its pid is
written to each ``cgroup.procs``. On a hybrid host the cgroup2 tree
(``/sys/fs/cgroup/unified``) gets one too, so the container has its own
cgroup everywhere — and its cgroup namespace shows ``/`` in every line of
``/proc/self/cgroup``.

v1's rough edges, handled here: a new cpuset cgroup has no CPUs (a process
cannot join it until ``cpuset.cpus`` and ``cpuset.mems`` are copied from its
parent); memory and memory+swap limits must be raised or lowered in the
right order; devices are an allowlist written rule by rule; killing every
process is reliable only with the cgroup frozen first.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.cgroups.stats import Stats

from minictr.errors import CgroupError, UsageError
from minictr.kernel.cgroups.base import Manager, flat, read, write
from minictr.kernel.cgroups.resources import FLAGS, wanted_controllers

#: v2 controller names (what resources.wanted_controllers says) -> v1 names.
V1_NAMES = {"cpu": "cpu", "cpuset": "cpuset", "memory": "memory", "pids": "pids", "io": "blkio", "devices": "devices"}

_THROTTLES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


class V1Manager(Manager):
    """A container's cgroup in every v1 hierarchy (``dirs`` is keyed by controller name)."""

    version = "v1"

    @property
    def path(self) -> str:
        return self.dirs.get("memory") or self.dirs.get("pids") or next(iter(self.dirs.values()))

    def _dir(self, controller: str) -> str | None:
        return self.dirs.get(controller)

    def _file(self, controller: str, name: str) -> str:
        directory = self.dirs.get(controller)
        if directory is None:
            raise UsageError(f"the {controller} controller is not mounted on this host")
        return os.path.join(directory, name)

    def add(self, pid: int) -> None:
        for directory in dict.fromkeys(self.dirs.values()):  # cpu and cpuacct may share one
            write(os.path.join(directory, "cgroup.procs"), str(pid))

    # --- creation ----------------------------------------------------------------------------

    def check(self, resources: dict[str, Any]) -> None:
        """Refuse, before anything exists, a limit whose controller this host lacks."""
        for controller, flag in wanted_controllers(resources).items():
            name = V1_NAMES[controller]
            if name not in self.dirs:
                have = ", ".join(sorted(c for c in self.dirs if c != "unified" and not c.startswith("name=")))
                raise UsageError(f"{flag}: the {name} controller is not available on this host (cgroup v1 has: {have})")
        weight = resources.get("blockIO", {}).get("weight")
        if weight and not self._weight_file():
            raise UsageError(
                "--blkio-weight: this host's blkio controller has no weight file (blkio.weight went with "
                "the CFQ scheduler in Linux 5.0; blkio.bfq.weight needs the BFQ scheduler on the disk)"
            )

    def _weight_file(self) -> str | None:
        """blkio.weight (CFQ, before Linux 5.0) or blkio.bfq.weight (BFQ), judged on the nearest existing cgroup."""
        directory = self.dirs.get("blkio") or ""
        while directory and not os.path.isdir(directory):
            directory = os.path.dirname(directory)
        for name in ("blkio.weight", "blkio.bfq.weight"):
            if directory and os.path.exists(os.path.join(directory, name)):
                return name
        return None

    def _make(self) -> None:
        for directory in dict.fromkeys(self.dirs.values()):
            os.makedirs(directory, exist_ok=True)
        cpuset = self.dirs.get("cpuset")
        if cpuset:
            _fill_cpuset(cpuset)

    # --- limits ------------------------------------------------------------------------------

    def apply(self, resources: dict[str, Any], creating: bool = False) -> None:
        if creating:
            self._devices(resources.get("devices") or [])
        self._memory(resources.get("memory") or {})
        cpu = resources.get("cpu") or {}
        for key, name in (("period", "cpu.cfs_period_us"), ("quota", "cpu.cfs_quota_us"), ("shares", "cpu.shares")):
            if cpu.get(key):
                write(self._file("cpu", name), str(cpu[key]), FLAGS[("cpu", key)])
        for key, name in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                write(self._file("cpuset", name), cpu[key], FLAGS[("cpu", key)])
        limit = (resources.get("pids") or {}).get("limit")
        if limit:
            write(self._file("pids", "pids.max"), "max" if limit < 0 else str(limit), "--pids-limit")
        self._block_io(resources.get("blockIO") or {})

    def _memory(self, memory: dict[str, Any]) -> None:
        limit, swap = memory.get("limit", 0), memory.get("swap", 0)
        limit_file, swap_file = (
            self._file("memory", "memory.limit_in_bytes"),
            self._file("memory", "memory.memsw.limit_in_bytes"),
        )
        steps = []
        if limit and swap:
            # memsw may never be below the memory limit: raise memsw first, lower it last
            current = int(read(limit_file))
            raising = swap == -1 or current < swap
            steps = [(swap_file, swap, "--memory-swap"), (limit_file, limit, "--memory")]
            steps = steps if raising else steps[::-1]
        elif limit:
            steps = [(limit_file, limit, "--memory")]
        for path, value, flag in steps:
            write(path, str(value), flag)
        if memory.get("reservation"):
            write(
                self._file("memory", "memory.soft_limit_in_bytes"), str(memory["reservation"]), "--memory-reservation"
            )

    def _block_io(self, block_io: dict[str, Any]) -> None:
        if block_io.get("weight"):
            write(self._file("blkio", self._weight_file() or "blkio.weight"), str(block_io["weight"]), "--blkio-weight")
        for key, name in _THROTTLES.items():
            for entry in block_io.get(key, []):
                write(
                    self._file("blkio", name),
                    f"{entry['major']}:{entry['minor']} {entry['rate']}",
                    FLAGS[("blockIO", key)],
                )

    def _devices(self, rules: list[dict[str, Any]]) -> None:
        """The devices allowlist: each OCI rule is one line written to devices.allow or devices.deny."""
        if not rules or "devices" not in self.dirs:
            return
        for rule in rules:
            kind = rule.get("type", "a")
            major = "*" if rule.get("major") is None else rule["major"]
            minor = "*" if rule.get("minor") is None else rule["minor"]
            line = "a" if kind == "a" else f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"
            write(self._file("devices", "devices.allow" if rule.get("allow") else "devices.deny"), line, "--device")

    # --- accounting --------------------------------------------------------------------------

    def oom_kills(self) -> int:
        try:
            return flat(read(self._file("memory", "memory.oom_control"))).get("oom_kill", 0)
        except (OSError, UsageError):
            return 0

    def stats(self) -> Stats:
        from minictr.kernel.cgroups.stats import Stats, io_bytes, limit_or_none  # a dataclass: off the start path

        stats = Stats(time.monotonic(), oom_kills=self.oom_kills())
        get = self._read_or_empty
        stats.memory = int(get("memory", "memory.usage_in_bytes") or 0)
        stats.memory_peak = int(get("memory", "memory.max_usage_in_bytes") or 0)
        stats.memory_limit = limit_or_none(get("memory", "memory.limit_in_bytes"))
        stats.cpu_usage_us = int(get("cpuacct", "cpuacct.usage") or 0) // 1000
        cpu = flat(get("cpu", "cpu.stat"))
        stats.cpu_periods, stats.cpu_throttled = cpu.get("nr_periods", 0), cpu.get("nr_throttled", 0)
        stats.cpu_throttled_us = cpu.get("throttled_time", 0) // 1000
        quota, period = get("cpu", "cpu.cfs_quota_us"), get("cpu", "cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            stats.cpu_limit = int(quota) / int(period)
        stats.pids = int(get("pids", "pids.current") or 0)
        stats.pids_limit = limit_or_none(get("pids", "pids.max"))
        stats.io_read, stats.io_write = io_bytes(get("blkio", "blkio.throttle.io_service_bytes"))
        return stats

    def _read_or_empty(self, controller: str, name: str) -> str:
        directory = self.dirs.get(controller)
        try:
            return read(os.path.join(directory, name)) if directory else ""
        except OSError:
            return ""

    def kill(self) -> None:
        """Freeze, kill, thaw: a frozen process cannot fork away from the SIGKILL."""
        state = os.path.join(self.dirs["freezer"], "freezer.state") if "freezer" in self.dirs else ""
        if not state or not os.path.exists(state):
            return super().kill()
        try:
            write(state, "FROZEN")
            deadline = time.monotonic() + 1
            while read(state) != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.002)
            super().kill_once()
            write(state, "THAWED")
        except (OSError, CgroupError):
            pass  # removed meanwhile (by a sweep of another minictr): nothing left to kill
        super().kill()


def _fill_cpuset(directory: str) -> None:
    """Give a new cpuset cgroup (and its new parents) the CPUs and memory nodes of its parent.

    v1 starts a cpuset cgroup empty, and a process cannot join an empty one
    (ENOSPC); v2 inherits instead.
    """
    chain = []
    current = directory
    while os.path.exists(os.path.join(os.path.dirname(current), "cpuset.cpus")):
        chain.append(current)
        current = os.path.dirname(current)
    for path in reversed(chain):
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not read(os.path.join(path, name)):
                write(os.path.join(path, name), read(os.path.join(os.path.dirname(path), name)))
