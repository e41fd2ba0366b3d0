"""The cgroup v2 driver: one unified tree, controllers handed down through ``cgroup.subtree_control``.

In v2 a cgroup can use a controller only if its parent lists it in
``cgroup.subtree_control`` (and the parent's parent, up to the root):
delegation, one level at a time. Two rules shape what we do:

- **no internal processes**: a cgroup (other than the root) that hands
  controllers to its children may hold no processes itself. Containers are
  leaves; ``/minictr`` holds only containers.
- In a **cgroup namespace** (a privileged Jupyter pod, a container running
  minictr) the namespace's root is an ordinary cgroup that already holds
  processes — the pod's. It cannot enable controllers for ``/minictr``
  until they move to a leaf: :func:`move_to_leaf` moves them all to
  ``/init`` (what Docker-in-Docker does), once, and then delegation works.

Limits are single files with v2 names and units: ``memory.max``,
``cpu.max`` ("quota period"), ``cpu.weight``, ``pids.max``, ``io.max``.
Devices have no controller in v2: an eBPF program does that job (:mod:`.bpf`).
"""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.cgroups.stats import Stats

from minictr.errors import CgroupError, UsageError
from minictr.kernel.cgroups.base import Manager, flat, read, write
from minictr.kernel.cgroups.resources import (
    FLAGS,
    blkio_to_io_weight,
    shares_to_weight,
    swap_for_v2,
    wanted_controllers,
)

#: Where the processes of a namespace root go so that it may delegate (Docker-in-Docker calls it init too).
LEAF = "init"

_IO_MAX = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def mount_root(directory: str) -> str:
    """The root of the cgroup2 mount holding ``directory`` (the first ancestor whose parent is no cgroup)."""
    current = directory
    while current != "/" and not os.path.exists(os.path.join(current, "cgroup.controllers")):
        current = os.path.dirname(current)  # not made yet
    while current != "/" and os.path.exists(os.path.join(os.path.dirname(current), "cgroup.controllers")):
        current = os.path.dirname(current)
    return current


def controllers(directory: str) -> list[str]:
    """The controllers a cgroup may use (``cgroup.controllers``)."""
    return read(os.path.join(directory, "cgroup.controllers")).split()


def move_to_leaf(root: str) -> int:
    """Move every process of ``root`` into ``root/init``; return how many moved.

    Only for the root of a cgroup namespace, whose processes (this one
    among them: the one exception to "the caller never moves itself") block
    delegation. A process forked meanwhile is caught by the next round.
    """
    leaf = os.path.join(root, LEAF)
    os.makedirs(leaf, exist_ok=True)
    moved = 0
    for _ in range(20):
        pids = read(os.path.join(root, "cgroup.procs")).split()
        if not pids:
            break
        for pid in pids:
            try:
                write(os.path.join(leaf, "cgroup.procs"), pid)
                moved += 1
            except CgroupError as exc:
                if exc.errno != errno.ESRCH:  # gone meanwhile is fine
                    raise
    return moved


def delegate(directory: str, wanted: list[str], is_root: bool) -> None:
    """Enable ``wanted`` controllers for the children of ``directory`` (its ``cgroup.subtree_control``)."""
    control = os.path.join(directory, "cgroup.subtree_control")
    missing = [c for c in wanted if c not in read(control).split()]
    if not missing:
        return
    value = " ".join(f"+{c}" for c in missing)
    try:
        write(control, value)
    except CgroupError as exc:
        if exc.errno != errno.EBUSY:
            raise
        if not is_root:
            raise CgroupError(
                f"cannot enable {', '.join(missing)} in {directory}: it holds processes, and cgroup v2 "
                "lets only leaves hold processes (the no-internal-processes rule); choose a cgroup "
                "path whose parents are empty",
                path=control,
                value=value,
                errno=exc.errno,
            ) from exc
        move_to_leaf(directory)  # the root of our cgroup namespace: move its processes down first
        write(control, value)


class V2Manager(Manager):
    """A container's cgroup in the unified hierarchy (``dirs == {"unified": path}``)."""

    version = "v2"

    def check(self, resources: dict[str, Any]) -> None:
        """Refuse, before anything exists, a limit whose controller this host does not delegate to us."""
        root = mount_root(self.path)
        available = controllers(root)
        for controller, flag in wanted_controllers(resources).items():
            if controller != "devices" and controller not in available:
                raise UsageError(
                    f"{flag}: the {controller} controller is not available here "
                    f"(cgroup v2 at {root} offers: {' '.join(available) or 'none'})"
                )

    def _make(self) -> None:
        root = mount_root(self.path)
        chain = [root]
        for part in os.path.relpath(os.path.dirname(self.path), root).split("/"):
            if part != ".":
                chain.append(os.path.join(chain[-1], part))
        for depth, directory in enumerate(chain):
            os.makedirs(directory, exist_ok=True)
            delegate(directory, controllers(directory), is_root=depth == 0)
        os.makedirs(self.path, exist_ok=True)

    def apply(self, resources: dict[str, Any], creating: bool = False) -> None:
        memory = resources.get("memory") or {}
        if memory.get("limit"):
            self._write("memory.max", str(memory["limit"]), "--memory")
        if memory.get("reservation"):
            self._write("memory.low", str(memory["reservation"]), "--memory-reservation")
        if memory.get("swap"):
            swap = swap_for_v2(memory["swap"], memory.get("limit", 0))
            self._write("memory.swap.max", "max" if swap == -1 else str(swap), "--memory-swap")
        cpu = resources.get("cpu") or {}
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or 0
            self._write(
                "cpu.max", f"{'max' if quota <= 0 else quota} {cpu.get('period') or 100000}", "--cpus/--cpu-quota"
            )
        if cpu.get("shares"):
            self._write("cpu.weight", str(shares_to_weight(cpu["shares"])), "--cpu-shares")
        for key in ("cpus", "mems"):
            if cpu.get(key):
                self._write(f"cpuset.{key}", cpu[key], FLAGS[("cpu", key)])
        limit = (resources.get("pids") or {}).get("limit")
        if limit:
            self._write("pids.max", "max" if limit < 0 else str(limit), "--pids-limit")
        self._io(resources.get("blockIO") or {})
        for name, value in (resources.get("unified") or {}).items():
            if "/" in name or name.startswith("cgroup."):
                raise UsageError(f"linux.resources.unified: {name!r} is not a controller file")
            self._write(name, str(value), f"unified {name}")
        if creating and resources.get("devices"):
            from minictr.kernel.cgroups.bpf import attach_device_filter

            attach_device_filter(self.path, resources["devices"])

    def _write(self, name: str, value: str, flag: str) -> None:
        write(os.path.join(self.path, name), value, flag)

    def _io(self, block_io: dict[str, Any]) -> None:
        weight = block_io.get("weight")
        if weight:
            if os.path.exists(os.path.join(self.path, "io.bfq.weight")):
                self._write("io.bfq.weight", f"default {weight}", "--blkio-weight")
            elif os.path.exists(os.path.join(self.path, "io.weight")):
                self._write("io.weight", f"default {blkio_to_io_weight(weight)}", "--blkio-weight")
            else:
                raise UsageError("--blkio-weight: this kernel has no io.weight (needs the BFQ scheduler or io.cost)")
        for key, name in _IO_MAX.items():
            for entry in block_io.get(key, []):
                self._write(
                    "io.max", f"{entry['major']}:{entry['minor']} {name}={entry['rate']}", FLAGS[("blockIO", key)]
                )

    # --- accounting --------------------------------------------------------------------------

    def _get(self, name: str) -> str:
        try:
            return read(os.path.join(self.path, name))
        except OSError:
            return ""

    def oom_kills(self) -> int:
        return flat(self._get("memory.events")).get("oom_kill", 0)

    def stats(self) -> Stats:
        from minictr.kernel.cgroups.stats import Stats, io_bytes, limit_or_none  # a dataclass: off the start path

        stats = Stats(time.monotonic(), oom_kills=self.oom_kills())
        stats.memory = int(self._get("memory.current") or 0)
        stats.memory_peak = int(self._get("memory.peak") or 0)
        stats.memory_limit = limit_or_none(self._get("memory.max"))
        cpu = flat(self._get("cpu.stat"))
        stats.cpu_usage_us, stats.cpu_periods = cpu.get("usage_usec", 0), cpu.get("nr_periods", 0)
        stats.cpu_throttled, stats.cpu_throttled_us = cpu.get("nr_throttled", 0), cpu.get("throttled_usec", 0)
        quota, _, period = self._get("cpu.max").partition(" ")
        if quota and quota != "max":
            stats.cpu_limit = int(quota) / int(period)
        stats.pids = int(self._get("pids.current") or 0)
        stats.pids_limit = limit_or_none(self._get("pids.max"))
        stats.io_read, stats.io_write = io_bytes(self._get("io.stat"))
        return stats

    def kill(self) -> None:
        """``cgroup.kill`` (Linux 5.14) kills every process at once, forks included; else one by one."""
        kill_file = os.path.join(self.path, "cgroup.kill")
        if os.path.exists(kill_file):
            try:
                write(kill_file, "1")
            except CgroupError:
                pass
        super().kill()
