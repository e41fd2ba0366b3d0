"""Container start: ``minictr run --rm`` next to ``podman run --rm``, without a network and on the default bridge.

Every round runs ``busybox true`` four ways, alternating:

- ``minictr run --rm --network none busybox true`` and the same with podman;
- ``minictr run --rm busybox true`` (minictr's default bridge) and
  ``podman run --rm busybox true`` (podman's default network, ``podman``).

podman runs with its own storage under the work directory (vfs driver,
cgroupfs, no events), runc as its OCI runtime and the ulimits this host
needs (see shared testing notes), on the same busybox root imported as an
image. Each command is timed from outside: wall time, and the user CPU of
the process and of the children it waited for (``RUSAGE_CHILDREN``, as
hyperfine measures it; a helper that daemonises, such as podman's conmon, is
not counted, so podman's user CPU is if anything too low).

It prints medians, the ratios minictr/podman (targets <= 0.5 for both), what
the bridge adds over ``--network none`` (target <= 30 ms) and user CPU beside
wall time (target: minictr's <= podman's).

    sudo .venv/bin/python benchmarks/start_speed.py [--runs 20]

Measured on the 2-core development VM while other test sessions loaded it
(load average 8-12, so wall times are 2-3x a quiet host's; user CPU is the
steadier figure), 15 alternating runs, medians, wall ms / user CPU ms:

    before (main at the package re-layout)   minictr             podman             ratio wall, CPU
      --network none                         594 / 108           784 / 55           0.76x, 1.97x
      default bridge                         2156 / 296          1048 / 87          2.06x, 3.41x
    after (lazy run parser, bridge kept up,
           rtnetlink for the veth)
      --network none                         507 / 95            569 / 43           0.89x, 2.21x
      default bridge                         840 / 115           938 / 85           0.89x, 1.35x
    after, later with the host less loaded (load average 4-6)
      --network none                         296 / 81            355 / 41           0.83x, 1.96x
      default bridge                         393 / 119           580 / 86           0.68x, 1.38x

What each change gave: the five trees, alternating, 12 runs of ``minictr
run --rm [--network none] busybox true`` each, each tree its own state root
(median wall ms / user CPU ms; the same loaded host):

    tree                                     default bridge     --network none
    main                                     1209 / 303         391 / 106
    + only run's parser is built             1088 / 282         423 / 102
    + the default bridge stays up            902 / 252          413 / 97
    + typing off the start path              855 / 247          386 / 100
    + rtnetlink for veth, address, route     516 / 101          391 / 95

Building only ``run``'s parser saves 5-20 ms of CPU; keeping the default
bridge up saves ~30 ms of CPU and ~190 ms of wall here (two ``nft`` runs, a
bridge deletion that waits for the kernel, the host's routes read again);
the veth, address and route through three raw rtnetlink requests instead
of pyroute2 save ~145 ms of CPU (pyroute2's import) and ~340 ms of wall.
That last change was measured and then not kept: the design fixes
pyroute2 for all netlink work, and the rows "after" above include it; without
it a bridged start costs ~145 ms more CPU than they show. A
bridged start now costs 20-40 ms of CPU more than ``--network none`` (the
network modules, the lease, state.json and hosts files written under the
host-wide network lock, the join thread); its wall-time difference on this
host is mostly waiting for that lock and the kernel's rtnl lock, which the
other sessions' containers hold (and their ``system prune`` runs take a
member-less bridge down, so now and then a run here brings it up again,
pyroute2 and all).

The floor, ``--network none``: two interpreter starts (the CLI, and the
container's first process, which runs from a sealed copy of the interpreter
so a container cannot overwrite the host's Python through /proc/self/exe —
CVE-2019-5736; runc re-executes itself for the same reason), ~45 ms of CPU
importing the CLI and the engine (``dataclasses`` with ``inspect`` ~7 ms of
it, ``shutil`` for ``--rm``'s removal ~3-5 ms), ~12 ms importing the child's
modules (~18 before it spared json, socket, enum, signal's wrapper and
runpy: with the CLI it starts ahead, so that shows in CPU more than in wall
time: 109.8 / 72.4 ms against podman's 165.3 / 37.2, 0.66x and 1.95x, 15
runs at load 2.1-2.3, where the last report had 113 / 79 against 159 / 39);
and kernel work podman's runc pays too: joining a cgroup in each of the ten
v1 hierarchies (the first cgroup.procs write waits for an RCU grace period,
~8-11 ms here, the others take ~0.03 ms; runc overlaps that wait with its
bootstrap's start-up),
the overlay mount, pivot_root and the namespaces. podman's user CPU here is
its own process only: conmon daemonises and runc runs below it, so neither
is counted, while minictr's figure includes its container's first process.

Later, after a second round of import cuts (state.json's type without
dataclasses, argparse without shutil, sha256 without OpenSSL, no ipaddress
without ``--dns``; see ``benchmarks/oci_start.py``), with the package
byte-compiled first, load average 1.6-2.4, 12 runs:

                                             minictr             podman             ratio wall, CPU
      --network none                         130 / 83            180 / 41           0.72x, 2.04x
      default bridge                         270 / 214           378 / 77           0.72x, 2.79x

and the trees before and after that round alternately, 30 runs of
``minictr run --rm --network none busybox true``: 153 -> 141 ms wall,
94 -> 88 ms user CPU; the imports of the command (``-X importtime``, sum of
the minimum self times over 5 runs) 46 -> 42 ms. Then the container's
first process is started as soon as its stdio is known (a foreground
``run``): its interpreter starts and imports (~25 ms) while the command
looks the image up, prepares the root, the state and the cgroup, instead
of after. Three A/B runs against the tree before it, 25-30 runs each:
130.0 -> 129.1, 125.9 -> 112.0 and 120.2 -> 108.0 ms wall, the same user
CPU (88.0 / 104.2 in the first, a noisy one; 83.8 / 83.5; 78.7 / 76.4).
It pays only where a core is free: the work is the same, overlapped.
With it, load average 1.3-1.5, 12 runs:

      --network none                         113 / 79            159 / 39           0.71x, 2.00x
      default bridge                         240 / 199           323 / 73           0.74x, 2.71x

Against the targets: wall 0.71-0.74x podman's (target 0.5), user CPU 2.0x
with ``--network none`` and 2.7-2.8x on the bridge (target 1.0), and the
bridge adds 127-140 ms (target 30). The bridge's extra CPU is pyroute2's import, ~120 ms
of CPU on its own: its package ``__init__`` imports every part of the
library (conntrack, ipdb, ndb with asyncio, multiprocessing, psutil...)
whichever one is asked for, and the design keeps pyroute2 for all netlink
work; :mod:`minictr.engine.network.attach` overlaps it with the child's
set-up, so it costs wall time less than CPU. What still costs the
``--network none`` start, beyond the two interpreters and the kernel work
below: ~7 ms of ``dataclasses`` (it imports ``inspect``), which the engine's
option and record types are made of, and the ``--rm`` removal of the
container's directory after it ran (shutil, which podman's ``--rm`` pays in
its own way).

Then each bridge got a netlink agent (``minictr/engine/network/agent.py``):
one detached process per bridge that imported pyroute2 once and, asked over
a unix socket, creates a container's veth and configures its eth0 (the
netlink socket of the container's namespace passed with SCM_RIGHTS), and
deletes the veth at its end; the command no longer imports pyroute2 on a
bridge that is up. Its CPU is not a child's of the command, so it is read
from ``/proc/<agent>/stat`` around each bridged run and printed apart, with
its RSS. Three runs of 12-20 rounds, load average 2-4 (wall / user CPU ms):

                                             minictr             podman             ratio wall, CPU
      --network none                         136 / 98            198 / 45           0.69x, 2.18x
      default bridge                         167 / 107           400 / 88           0.42x, 1.21x
      the agent, per bridged container       9.5 ms CPU (user + system), RSS 33 MiB

The bridge now adds 25-41 ms of wall time over ``--network none`` (31 in the
run above; 24.9 with 168 / 103 against podman's 406 / 82, 0.41x, on this
branch merged with the child's import cuts, 15 runs; 127-140 before) and ~9 ms of the command's user CPU, plus the
agent's ~8-10 ms: with it, 1.32x podman's user CPU on the bridge (2.7x
before). What remains is kernel work podman's netavark pays too (the veth
pair made and moved into the namespace, eth0's address and route, the
veth's deletion, under the kernel's rtnl lock that every other network user
of the host shares) and the lease and state files written under the
host-wide network lock. The first container of a bridge brings it up and
imports pyroute2 itself (as before), and starts the agent, which costs it
~40-50 ms more than before (a user network's first member: 505 -> 553 ms).
Another session's ``system prune`` takes a member-less default bridge down,
so the benchmark also prints how many runs brought it up again.

The Python API (``benchmarks/namespaces_start.py``, a warm interpreter, no
overlay) measured 103 ms against ``runc run``'s 68 ms on the same rootfs in
the same loaded run (1.51x; 1.17x on a quiet host): none of the changes
above is on that path. Its floor is the container's first process, a fresh
interpreter (about 7 ms of CPU to start with ``-S``) importing ~80 modules
(about 18 ms), which a notebook kernel cannot avoid: it may not fork.
Measured again in the run above (load average 1.7): 31.3 ms against
``runc run``'s 27.0 ms, 1.16x.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable

from common import busybox_rootfs, minictr_command, workspace

PODMAN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
Sample = tuple[float, float]  # (wall seconds, user CPU seconds)


def timed_usage(command: list[str]) -> Sample:
    """Wall and user CPU seconds of one run of ``command`` (and the children it waited for); it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before


class AgentMeter:
    """The CPU (user + system) the default bridge's netlink agent spends for minictr's bridged runs.

    The agent is no child of the command, so ``RUSAGE_CHILDREN`` misses it:
    its CPU is read from ``/proc/<agent>/stat`` before and after each run.
    """

    def __init__(self, state_root: str) -> None:
        self.state_root = state_root
        self.samples: list[float] = []
        self.steady: list[Sample] = []  # the runs that found the bridge and its agent up
        self.runs = 0
        self.pid: int | None = None

    def agent(self) -> int | None:
        """The pid of the default bridge's agent (None before the bridge is up)."""
        from minictr.engine.network import agent
        from minictr.engine.network.store import NetworkStore

        definition = NetworkStore(self.state_root).load("bridge")
        return agent.running(definition.bridge) if definition else None

    def cpu(self, pid: int | None) -> float:
        """User + system CPU seconds of ``pid`` so far (0 when there is none)."""
        if pid is None:
            return 0.0
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measured(self, command: list[str]) -> Sample:
        """One timed run of ``command``, noting the agent's CPU during it (an agent that changed: not counted)."""
        pid = self.agent()
        before = self.cpu(pid)
        sample = timed_usage(command)
        self.runs += 1
        if pid is not None and pid == self.agent():
            self.samples.append(self.cpu(pid) - before)
            self.steady.append(sample)
        self.pid = self.agent()
        return sample

    def rss_kib(self) -> int:
        """The agent's resident memory in KiB (0 when none runs)."""
        if self.pid is None:
            return 0
        with open(f"/proc/{self.pid}/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))


def medians(contenders: dict[str, Callable[[], Sample]], runs: int) -> dict[str, Sample]:
    """One warm-up of each, then ``runs`` alternating rounds: the median wall and user CPU of each."""
    for measure in contenders.values():
        measure()
    samples: dict[str, list[Sample]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, measure in contenders.items():
            samples[name].append(measure())
    return {name: (statistics.median(s[0] for s in got), statistics.median(s[1] for s in got))
            for name, got in samples.items()}  # fmt: skip


def podman_image(podman: list[str], data_root: str, work: str) -> str:
    """The busybox root of minictr's store, imported into podman's storage."""
    archive = os.path.join(work, "busybox.tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(busybox_rootfs(data_root), arcname=".")
    subprocess.run([*podman, "import", "--change", "ENV PATH=/bin", archive, "bench-busybox"],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return "bench-busybox"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    shutil.which("podman") or sys.exit("podman is not installed (apt-get install podman)")
    with workspace() as (work, data_root, state_root):
        podman = ["podman", "--root", os.path.join(work, "podman"), "--runroot", os.path.join(work, "podman-run"),
                  "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]  # fmt: skip
        image = podman_image(podman, data_root, work)
        minictr = minictr_command(data_root, state_root, "run", "--rm")
        podman_run = [*podman, "run", "--rm", *PODMAN_FLAGS]
        meter = AgentMeter(state_root)
        try:
            results = medians({
                "minictr-none": lambda: timed_usage([*minictr, "--network", "none", "busybox", "true"]),
                "podman-none": lambda: timed_usage([*podman_run, "--network", "none", image, "true"]),
                "minictr-bridge": lambda: meter.measured([*minictr, "busybox", "true"]),
                "podman-bridge": lambda: timed_usage([*podman_run, image, "true"]),
            }, args.runs)  # fmt: skip
        finally:
            subprocess.run([*podman, "rm", "-a", "-f", "-t", "0"], capture_output=True)
            subprocess.run([*podman, "rmi", "-a", "-f"], capture_output=True)
        print_results(results, args.runs)
        print_agent(meter, results)


def print_agent(meter: AgentMeter, results: dict[str, Sample]) -> None:
    """The agent's CPU per bridged container (not in the figures above) and its memory."""
    if not meter.samples:
        print("  the default bridge's netlink agent did no measured work (did it start?)")
        return
    # another session's ``system prune`` takes a member-less bridge down: the next run here brings it up again
    down = meter.runs - len(meter.steady)
    wall, cpu = (statistics.median(sample[i] for sample in meter.steady) for i in (0, 1))
    print(f"  {down} of {meter.runs} bridged runs (the warm-up included) brought the bridge up; the other "
          f"{len(meter.steady)}: {wall * 1000:.1f} / {cpu * 1000:.1f} ms, "
          f"{(wall - results['minictr-none'][0]) * 1000:.1f} ms over --network none")  # fmt: skip
    per_run = statistics.mean(meter.samples)  # a mean: /proc counts CPU in 10 ms ticks
    total = results["minictr-bridge"][1] + per_run
    print(
        f"  netlink agent (pid {meter.pid}): {per_run * 1000:.1f} ms CPU (user + system) per bridged container, "
        f"mean of {len(meter.samples)}; minictr's bridged user CPU with it at most {total * 1000:.1f} ms "
        f"({total / results['podman-bridge'][1]:.2f}x podman's); its RSS {meter.rss_kib() / 1024:.1f} MiB"
    )


def print_results(results: dict[str, Sample], runs: int) -> None:
    """Medians side by side, the ratios and what the bridge adds."""
    print(f"medians over {runs} alternating runs (wall ms / user CPU ms)")
    for kind in ("none", "bridge"):
        (mine, mine_cpu), (theirs, theirs_cpu) = results[f"minictr-{kind}"], results[f"podman-{kind}"]
        print(
            f"  --network {kind:6}  minictr {mine * 1000:7.1f} / {mine_cpu * 1000:5.1f}   "
            f"podman {theirs * 1000:7.1f} / {theirs_cpu * 1000:5.1f}   "
            f"ratio wall {mine / theirs:.2f}x (target <= 0.5), user CPU {mine_cpu / theirs_cpu:.2f}x (target <= 1.0)"
        )
    added = results["minictr-bridge"][0] - results["minictr-none"][0]
    print(f"  minictr's bridge adds {added * 1000:.1f} ms over --network none (target <= 30 ms)")


if __name__ == "__main__":
    main()
