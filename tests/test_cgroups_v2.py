"""What only a pure cgroup v2 host has: delegation through subtree_control and the no-internal-processes rule.

Skipped on other layouts; ``scripts/cgroup2-vm.sh`` runs them in a QEMU
guest whose /sys/fs/cgroup is pure cgroup2 (with the ``cgroups``-marked
tests of test_cgroups.py, which then go through the v2 driver).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers import cli_command

from conftest import cgroup_dirs, run_cli

pytestmark = [pytest.mark.root, pytest.mark.cgroup2]
ROOT = "/sys/fs/cgroup"


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


@pytest.fixture
def outer() -> Iterator[str]:
    """A cgroup of the test's own below the root that delegates only memory and pids to its children."""
    path = os.path.join(ROOT, f"minictr-test-{os.urandom(3).hex()}")
    os.mkdir(path)
    with open(os.path.join(path, "cgroup.subtree_control"), "w") as handle:
        handle.write("+memory +pids")
    yield path
    for directory, _, _ in sorted(os.walk(path), key=lambda entry: -len(entry[0])):
        os.rmdir(directory)


def test_minictr_at_the_root_of_its_own_cgroup_namespace(data_root: str, state_root: str, outer: str) -> None:
    """As in a privileged Jupyter pod: the namespace's root holds the pod's processes, so it cannot delegate
    until minictr moves them to a leaf (``/init``); and a controller the pod was not given is a clear error."""
    pod = os.path.join(outer, "pod")
    os.mkdir(pod)
    minictr = shlex.join(cli_command(data_root=data_root, state_root=state_root))
    inside = (
        f"umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && "
        f"{minictr} run --network none -m 32m busybox cat /proc/self/cgroup; echo status $?; "
        f"cat /proc/self/cgroup; {minictr} run --network none --cpus 1 busybox true; echo status $?"
    )
    unshare = "unshare --cgroup --mount --propagation private"
    script = f"echo $$ > {pod}/cgroup.procs && exec {unshare} sh -c {shlex.quote(inside)}"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.splitlines() == ["0::/", "status 0", "0::/init", "status 125"], (done.stdout, done.stderr)
    assert done.stderr.strip() == (
        "minictr: error: --cpus/--cpu-quota: the cpu controller is not available here "
        "(cgroup v2 at /sys/fs/cgroup offers: memory pids)"
    )
    assert [n for n in os.listdir(pod) if os.path.isdir(os.path.join(pod, n))] == ["init"]  # /minictr came and went
    assert read(os.path.join(pod, "cgroup.subtree_control")).split() == ["memory", "pids"]


def test_a_parent_holding_processes_cannot_delegate(data_root: str, state_root: str, outer: str) -> None:
    busy = os.path.join(outer, "busy")
    os.mkdir(busy)
    sleeper = subprocess.Popen(["sh", "-c", f"echo $$ > {busy}/cgroup.procs && exec sleep 60"])
    try:
        while not read(os.path.join(busy, "cgroup.procs")):
            time.sleep(0.01)
        before = cgroup_dirs()
        parent = "/" + os.path.relpath(busy, ROOT)
        done = run_cli(
            "run",
            "--network",
            "none",
            "-m",
            "32m",
            "--cgroup-parent",
            parent,
            "busybox",
            "true",
            data_root=data_root,
            state_root=state_root,
        )
        assert done.returncode == 125
        assert (
            "it holds processes, and cgroup v2 lets only leaves hold processes (the no-internal-processes rule)"
            in done.stderr
        )
        assert cgroup_dirs() == before and [n for n in os.listdir(busy) if os.path.isdir(os.path.join(busy, n))] == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_pause_freezes_through_cgroup_freeze(data_root: str, state_root: str) -> None:
    """``minictr pause`` on v2 writes ``cgroup.freeze``; the kernel's ``cgroup.events`` says when all is frozen."""

    def cli(*args: str) -> str:
        done = run_cli(*args, data_root=data_root, state_root=state_root, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    container = cli("run", "-d", "--network", "none", "busybox", "sleep", "600")
    try:
        (group,) = [d for d in cgroup_dirs() if os.path.basename(d) == container]
        cli("pause", container)
        assert read(os.path.join(group, "cgroup.freeze")) == "1"
        assert "frozen 1" in read(os.path.join(group, "cgroup.events")).splitlines()
        assert '"Status": "paused"' in cli("inspect", container)
        cli("unpause", container)
        assert "frozen 0" in read(os.path.join(group, "cgroup.events")).splitlines()
    finally:
        cli("rm", "-f", container)
    assert [d for d in cgroup_dirs() if os.path.basename(d) == container] == []
