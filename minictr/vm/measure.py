"""Containers against virtual machines, measured on this host: one run, the same payload in each.

Every instance — a busybox shell on the host, in a minictr container, in a
QEMU guest — runs ``sh -c 'echo ready; exec sh'`` with its input and output on
pipes (:class:`~minictr.vm.lines.LineProcess`), so each figure is read the
same way for both:

============== ======================================= =========================================
figure         container                               virtual machine
============== ======================================= =========================================
first line     ``minictr run`` started → "ready" read  QEMU started → "ready" read
memory         its cgroup's memory (what the kernel     QEMU's resident set (``VmRSS`` in
               charges its processes)                   ``/proc/<pid>/status``)
disk           the image's layers                       the kernel image + the initramfs
CPU work       a shell loop, timed between two lines the shell prints; against the same loop on the host
density        idle instances started one by one until the next would pass the budget, or the cap
============== ======================================= =========================================

The notebook (12) and ``benchmarks/vm_vs_container.py`` both call
:func:`compare`; :func:`density` is separate because it starts several VMs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from minictr.errors import HostError
from minictr.vm.guest import DEFAULT_MEMORY_MIB, Guest, accelerator, host_kernel
from minictr.vm.lines import READY, LineProcess

#: What every instance runs: say it is ready, then read commands (idle while none come; done at the end of its input).
PAYLOAD = f"echo {READY}; exec sh"
#: CPU-bound work in busybox's shell alone (no other program): arithmetic in a loop.
LOOP = "i=0; while [ $i -lt {n} ]; do i=$((i + 1)); done"
#: The directory holding this minictr package: ``python -m minictr.cli`` runs this very copy from there.
_HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Time for a freshly started instance's memory to settle before it is read.
SETTLE = 0.5


class HostShell(LineProcess):
    """The payload run directly on the host: the baseline for CPU-bound work."""

    what = "the host's shell"

    def __init__(self, busybox: str) -> None:
        super().__init__([busybox, "sh", "-c", PAYLOAD])


class ContainerShell(LineProcess):
    """The payload in a busybox container: ``minictr run --rm --network none busybox sh -c PAYLOAD``."""

    what = "the container"

    def __init__(self, data_root: str | None, state_root: str | None) -> None:
        self.name = f"vs-{uuid.uuid4().hex[:10]}"
        self.state_root = state_root
        roots = [*(["--data-root", data_root] if data_root else []), *(["--root", state_root] if state_root else [])]
        command = [sys.executable, "-m", "minictr.cli", *roots, "run", "--rm", *_keep_stdin(), "--name", self.name,
                   "--network", "none", "busybox", "sh", "-c", PAYLOAD]  # fmt: skip
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - read by why_not() while it runs, closed by stop()
        super().__init__(command, stderr=self.errors, cwd=_HERE)

    def why_not(self) -> str:
        """The exit status and what minictr said on stderr."""
        self.errors.seek(0)
        said = self.errors.read().decode(errors="replace").strip()
        return super().why_not() + (f": {said}" if said else "")

    def stop(self, timeout: float = 10) -> None:
        """End the container (its shell ends with its input) and ``minictr run`` with it."""
        try:
            super().stop(timeout)
        finally:
            self.errors.close()

    def memory(self) -> int:
        """Bytes the kernel charges the container's cgroup now."""
        from minictr.engine.container import cgroup_of

        return cgroup_of(self.name, self.state_root).stats().memory

    def waiter_rss(self) -> int:
        """Bytes the ``minictr run`` process waiting in the foreground holds (outside the container's cgroup)."""
        with open(f"/proc/{self.pid}/status") as handle:
            return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmRSS:"))

    def cgroup_dirs(self) -> list[str]:
        """The container's cgroup directories (one per v1 hierarchy, or one on v2)."""
        from minictr.engine.container import cgroup_of

        return sorted(set(cgroup_of(self.name, self.state_root).dirs.values()))


@functools.cache
def _keep_stdin() -> list[str]:
    """``-i`` where ``minictr run`` has it (as with Docker, it keeps stdin open); before -i, stdin passed through."""
    shown = subprocess.run(
        [sys.executable, "-m", "minictr.cli", "run", "--help"], capture_output=True, text=True, cwd=_HERE
    ).stdout
    return ["-i"] if "--interactive" in shown else []


def instance_memory(instance: LineProcess) -> int:
    """Host memory an instance holds: a container's cgroup memory, or QEMU's resident set."""
    if isinstance(instance, Guest):
        return instance.rss()
    if isinstance(instance, ContainerShell):
        return instance.memory()
    raise TypeError(f"no memory figure for {instance!r}")


@dataclass
class Figure:
    """One measurement: the container's and the VM's value (and the host's, for CPU work), and what it is."""

    name: str
    unit: str
    container: float
    vm: float
    host: float | None = None
    note: str = ""
    more_is_better: bool = False  #: density: the ratio is then container / VM

    @property
    def ratio(self) -> float:
        """How many times better the container does: VM / container (container / VM when more is better)."""
        high, low = (self.container, self.vm) if self.more_is_better else (self.vm, self.container)
        return high / low if low else float("inf")

    def line(self) -> str:
        """One line: both values and the ratio."""
        how = "container / VM" if self.more_is_better else "VM / container"
        container, vm = _shown(self.container, self.unit), _shown(self.vm, self.unit)
        return f"{self.name:<12} container {container:>11}   VM {vm:>11}   {how} = {self.ratio:,.1f}x"


def _shown(value: float, unit: str) -> str:
    if unit == "bytes":
        for size, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value >= size:
                return f"{value / size:.1f} {name}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    return f"{value:,.0f} {unit}"


@dataclass
class Comparison:
    """What :func:`compare` measured, and how the VM ran (KVM or TCG, and why)."""

    accel: str
    accel_why: str
    kernel: str
    memory_mib: int
    figures: list[Figure] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  #: ``uname -r`` as each instance saw it

    def figure(self, name: str) -> Figure:
        """The figure called ``name``."""
        return next(figure for figure in self.figures if figure.name == name)

    def report(self) -> str:
        """Every figure on a line, after how the VM ran."""
        head = f"VM: Linux {self.kernel} under QEMU with {self.accel.upper()} ({self.accel_why}), -m {self.memory_mib}M"
        return "\n".join([head, *(figure.line() for figure in self.figures)])


def cpu_overhead(inside: float, host: float) -> float:
    """How much longer the same work took inside than on the host, in % (0: no overhead)."""
    return (inside / host - 1) * 100


def best_times(shells: dict[str, LineProcess], command: str, rounds: int, timeout: float) -> dict[str, float]:
    """The best of ``rounds`` timings of ``command`` in each shell, taking turns.

    The best, as ``timeit`` reports: other work on a shared host only ever
    adds time, so the fastest round is the closest to the work's own cost.
    """
    samples: dict[str, list[float]] = {name: [] for name in shells}
    for _ in range(rounds):
        for name, shell in shells.items():
            samples[name].append(shell.timed(command, timeout)[0])
    return {name: min(values) for name, values in samples.items()}


def compare(
    data_root: str | None = None,
    state_root: str | None = None,
    *,
    loops: int = 100_000,
    rounds: int = 3,
    memory_mib: int = DEFAULT_MEMORY_MIB,
    timeout: float = 120,
) -> Comparison:
    """Start a container and a VM running the same payload; measure both; stop both.

    Figures: the time to the first line, the host memory each holds once
    idle, the bytes on disk each needs, and how long ``loops`` rounds of a
    shell loop take (best of ``rounds``) inside each and on the host.
    """
    from minictr.engine.images.busybox import find_static_busybox

    accel, why = accelerator()
    result = Comparison(accel, why, host_kernel().release, memory_mib)
    with contextlib.ExitStack() as stack:
        box = stack.enter_context(ContainerShell(data_root, state_root))
        box_ready = box.wait_for(READY, timeout) - box.started
        vm = stack.enter_context(Guest(PAYLOAD, memory_mib=memory_mib, accel=accel))
        vm_ready = vm.wait_for(READY, timeout) - vm.started
        time.sleep(SETTLE)
        result.figures.append(Figure("first line", "s", box_ready, vm_ready))
        result.figures.append(
            Figure("memory", "bytes", box.memory(), vm.rss(), note="container: its cgroup; VM: QEMU's resident set")
        )
        result.figures.append(
            Figure(
                "disk",
                "bytes",
                image_bytes(data_root),
                vm.disk_bytes(),
                note="container: the image's layers; VM: kernel + initramfs",
            )
        )
        work = LOOP.format(n=loops)
        host = stack.enter_context(HostShell(find_static_busybox()))
        host.wait_for(READY, timeout)
        times = best_times({"host": host, "container": box, "vm": vm}, work, rounds, timeout)
        result.figures.append(
            Figure(
                "CPU work",
                "s",
                times["container"],
                times["vm"],
                times["host"],
                note=f"{loops:,} rounds of a shell loop, best of {rounds}",
            )
        )
        for name, shell in (("container", box), ("vm", vm)):
            result.outputs[name] = shell.timed("uname -r", timeout)[1][-1]
    return result


def image_bytes(data_root: str | None) -> int:
    """Bytes of the busybox image's layers, as stored (compressed)."""
    from minictr.engine.container_root import get_image, image_store

    return get_image(image_store(data_root), "busybox").size


def distribution_bytes(status: str = "/var/lib/dpkg/status") -> tuple[int, int]:
    """(bytes, packages) of a minimal Debian system: the installed packages of priority required or important.

    Computed from dpkg's own record of this host (``Installed-Size``, in KiB),
    not downloaded: what ``debootstrap`` installs before anything else, the
    disk a VM needs before its application.
    """
    total = count = 0
    with open(status, encoding="utf-8", errors="replace") as handle:
        for paragraph in handle.read().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in paragraph.splitlines() if ": " in line and line[0] != " ")
            if fields.get("Priority") in ("required", "important") and "installed" in fields.get("Status", "").split():
                total += int(fields.get("Installed-Size", "0")) * 1024
                count += 1
    if not count:
        raise HostError(f"no installed packages of priority required or important in {status}")
    return total, count


# --- density --------------------------------------------------------------------------------------


@dataclass
class Density:
    """How many idle instances of one kind fitted in ``budget`` bytes (never more than ``cap``)."""

    kind: str
    budget: int
    cap: int
    sizes: list[int]  #: each instance's memory, in the order started
    stopped_by: str  #: "the cap", "the budget", or why the host refused more

    @property
    def count(self) -> int:
        """Instances that fitted."""
        return len(self.sizes)

    @property
    def each(self) -> float:
        """Mean bytes per instance."""
        return statistics.mean(self.sizes) if self.sizes else 0.0

    @property
    def projected(self) -> int:
        """How many would fit in the budget at the mean size (beyond the cap, for scale)."""
        return int(self.budget // self.each) if self.each else 0


def available_memory() -> int:
    """MemAvailable of this host, in bytes."""
    with open("/proc/meminfo") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemAvailable:"))


def density(start: Callable[[], LineProcess], kind: str, budget: int, cap: int, timeout: float = 120) -> Density:
    """Start idle instances one by one, measuring each, while the next fits in ``budget``; stop them all.

    Before each start the next instance is assumed to be as large as the
    largest so far: the total never passes the budget, and the host always
    keeps twice the budget free (else it stops, saying so).
    """
    sizes: list[int] = []
    stopped_by = "the cap"
    with contextlib.ExitStack() as stack:
        while len(sizes) < cap:
            if sizes and sum(sizes) + max(sizes) > budget:
                stopped_by = "the budget"
                break
            if available_memory() < 2 * budget:
                stopped_by = f"the host (less than {2 * budget >> 20} MiB available)"
                break
            instance = stack.enter_context(start())
            instance.wait_for(READY, timeout)
            time.sleep(SETTLE)
            sizes.append(instance_memory(instance))
        if sizes and sum(sizes) > budget:  # only the first instance can overshoot: it alone was not predicted
            sizes.pop()
            stopped_by = "the budget"
    return Density(kind, budget, cap, sizes, stopped_by)


def densities(
    data_root: str | None = None,
    state_root: str | None = None,
    *,
    budget_mib: int = 512,
    containers: int = 8,
    vms: int = 4,
    memory_mib: int = DEFAULT_MEMORY_MIB,
) -> tuple[Density, Density]:
    """Idle containers (at most ``containers``) and idle VMs (at most ``vms``) in the same memory budget."""
    budget = budget_mib << 20
    boxes = density(lambda: ContainerShell(data_root, state_root), "containers", budget, containers)
    guests = density(lambda: Guest(PAYLOAD, memory_mib=memory_mib), "VMs", budget, vms)
    return boxes, guests


def density_figure(boxes: Density, guests: Density) -> Figure:
    """Density as a figure: how many fit, projected at the measured sizes (the ratio is container / VM)."""
    return Figure(
        "density",
        "instances",
        boxes.projected,
        guests.projected,
        more_is_better=True,
        note=f"in {boxes.budget >> 20} MiB: {boxes.count} containers started (stopped by "
        f"{boxes.stopped_by}), {guests.count} VMs (stopped by {guests.stopped_by}); "
        "projected at their measured sizes",
    )
