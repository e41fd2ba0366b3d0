"""The cgroup namespace: the container's cgroup is the root of the tree it sees."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from helpers import Roots, cli_command, container_log, read, stop_detached, wait_until

from minictr.engine import container

pytestmark = pytest.mark.root


@pytest.fixture
def pids_cgroup() -> Iterator[str]:
    """A child of this process's cgroup in the v1 ``pids`` hierarchy, removed afterwards."""
    own = next(
        (
            line.split(":", 2)[2].strip()
            for line in read("/proc/self/cgroup").splitlines()
            if line.split(":")[1] == "pids"
        ),
        None,
    )
    if own is None or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("needs a cgroup v1 pids hierarchy at /sys/fs/cgroup/pids")
    path = os.path.join("/sys/fs/cgroup/pids", own.lstrip("/"), f"minictr-test-{os.urandom(4).hex()}")
    os.mkdir(path)
    try:
        yield path
    finally:
        wait_until(lambda: not read(os.path.join(path, "cgroup.procs")).strip(), timeout=10)
        os.rmdir(path)


def test_cgroup_namespace_roots_the_tree_at_the_containers_cgroup(roots: Roots, pids_cgroup: str) -> None:
    # minictr runs in a test cgroup of its own; the container still gets its own cgroup, /minictr/<id>
    command = cli_command(
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/cgroup; exec sleep 30",
        data_root=roots.data,
        state_root=roots.state,
    )
    result = subprocess.run(
        ["sh", "-c", f'echo $$ > {pids_cgroup}/cgroup.procs && exec "$@"', "sh", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    pid = container.read_state(os.path.join(roots.containers, container_id))["pid"]
    try:
        assert wait_until(lambda: container_log(roots, container_id).endswith("\n"))
        inside = container_log(roots, container_id).splitlines()
        host_view = read(f"/proc/{pid}/cgroup").splitlines()
    finally:
        stop_detached(roots, container_id, pid)
    assert inside and all(line.endswith(":/") for line in inside), inside
    assert [line.split(":", 2)[2] for line in host_view if line.split(":")[1] == "pids"] == [f"/minictr/{container_id}"]
