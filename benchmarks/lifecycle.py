"""A detached container's round trip and its monitor's memory, next to podman and conmon.

Alternating, each round:

- minictr: ``minictr run -d --network none busybox sleep 600`` then ``minictr rm -f ID``;
- podman: ``podman run -d --network none IMAGE sleep 600`` then ``podman rm -f -t 0 ID``,
  with the same busybox root imported as an image (``podman import``), its own
  storage under the work directory (vfs driver, so the host's podman storage is
  untouched) and runc as its runtime (see TESTING.md for the flags this host needs).

While each container runs, the resident memory (VmRSS) of its monitor is read:
minictr's ``minictr-monitor`` (its lean watch phase) and podman's ``conmon``.

    sudo .venv/bin/python benchmarks/lifecycle.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time

from common import busybox_rootfs, medians, minictr_command, report, workspace

from minictr.engine.container_dir import read_state

PODMAN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "none"]


def rss_kib(pid: int) -> int:
    """A process's resident memory in KiB (/proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def minictr_monitor(state_root: str, container: str) -> int:
    """The pid of the container's monitor, once it is in its watch phase (named ``minictr-monitor``)."""
    waiting = parent_of(read_state(os.path.join(state_root, "containers", container))["pid"])
    monitor = parent_of(waiting)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{monitor}/cmdline", "rb") as handle:
            if b"\0watch\0" in handle.read():
                return monitor
        time.sleep(0.01)
    raise RuntimeError("the monitor never reached its watch phase")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    podman = shutil.which("podman") or sys.exit("podman is not installed (apt-get install podman)")
    with workspace() as (work, data_root, state_root):
        storage = ["--root", os.path.join(work, "podman"), "--runroot", os.path.join(work, "podman-run"),
                   "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]  # fmt: skip
        archive = os.path.join(work, "busybox.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(busybox_rootfs(data_root), arcname=".")
        subprocess.run([podman, *storage, "import", "--change", "ENV PATH=/bin", archive, "bench-busybox"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        monitor_rss: list[int] = []
        conmon_rss: list[int] = []

        def minictr_round() -> float:
            started = time.perf_counter()
            run = subprocess.run(
                minictr_command(data_root, state_root, "run", "-d", "--network", "none", "busybox", "sleep", "600"),
                check=True,
                capture_output=True,
                text=True,
            )
            container = run.stdout.strip()
            elapsed = time.perf_counter() - started
            monitor_rss.append(rss_kib(minictr_monitor(state_root, container)))
            started = time.perf_counter()
            subprocess.run(
                minictr_command(data_root, state_root, "rm", "-f", container), check=True, stdout=subprocess.DEVNULL
            )
            return elapsed + time.perf_counter() - started

        def podman_round() -> float:
            started = time.perf_counter()
            run = subprocess.run([podman, *storage, "run", "-d", *PODMAN_FLAGS, "bench-busybox", "sleep", "600"],
                                 check=True, capture_output=True, text=True)  # fmt: skip
            container = run.stdout.strip()
            elapsed = time.perf_counter() - started
            conmon = subprocess.run([podman, *storage, "inspect", "--format", "{{.State.ConmonPid}}", container],
                                    check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
            conmon_rss.append(rss_kib(int(conmon)))
            started = time.perf_counter()
            subprocess.run([podman, *storage, "rm", "-f", "-t", "0", container], check=True, stdout=subprocess.DEVNULL)
            return elapsed + time.perf_counter() - started

        try:
            results = medians({"minictr": minictr_round, "podman": podman_round}, args.runs)
        finally:
            subprocess.run(
                [podman, *storage, "rm", "-a", "-f", "-t", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            subprocess.run([podman, *storage, "rmi", "-a", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report(
            {
                "minictr": "minictr run -d + rm -f (--network none)",
                "podman": "podman run -d + rm -f (--network none, runc)",
            },
            results,
            args.runs,
        )
        print(f"ratio minictr/podman: {results['minictr'] / results['podman']:.2f}x")
        print(
            f"monitor RSS: minictr-monitor median {statistics.median(monitor_rss) / 1024:.1f} MiB, "
            f"conmon median {statistics.median(conmon_rss) / 1024:.1f} MiB "
            f"(ratio {statistics.median(monitor_rss) / statistics.median(conmon_rss):.1f}x; target <= 15 MiB)"
        )


if __name__ == "__main__":
    main()
