"""Every namespace of a container at once: which kinds it gets by default, and ``exec`` joining them all.

Each test_ns_*.py file proves one namespace from both sides, including what
must fail: inside, a container reports what it sees; outside, the host checks
through ``/proc`` that its own view did not change. The roots live where a
user-namespaced root can walk (the ``roots`` fixture, conftest.py).
"""

from __future__ import annotations

import os

import pytest
from helpers import Roots, detached

from minictr.engine.exec import exec_in

pytestmark = pytest.mark.root


# --- every kind at once --------------------------------------------------------------------


def test_a_container_gets_new_namespaces_of_every_default_kind(roots: Roots) -> None:
    kinds = ("mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time")
    host = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in kinds}
    with detached(roots, "busybox", command=["sleep", "30"]) as (_, pid):
        inside = {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds}
    with detached(roots, "--network", "host", "busybox", command=["sleep", "30"]) as (_, pid):
        host_network = {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds}
    assert [kind for kind in kinds if inside[kind] == host[kind]] == ["user", "time"]  # both are opt-in
    assert [kind for kind in kinds if host_network[kind] == host[kind]] == ["net", "user", "time"]


# --- exec ----------------------------------------------------------------------------------


def test_exec_joins_every_namespace_of_the_container(roots: Roots) -> None:
    kinds = ["cgroup", "ipc", "mnt", "net", "pid", "uts"]
    with detached(roots, "-h", "exec-target", "busybox", command=["sleep", "30"]) as (container_id, pid):
        hostname = roots.cli("exec", container_id, "hostname")
        ps = roots.cli("exec", container_id, "ps", "-o", "pid,comm")
        links = roots.cli(
            "exec", container_id, "sh", "-c", "; ".join(f"readlink /proc/self/ns/{kind}" for kind in kinds)
        )
        expected = [os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds]
    assert hostname.stdout == "exec-target\n"
    assert ["1", "sleep"] in [line.split() for line in ps.stdout.splitlines()]
    assert str(pid) not in ps.stdout.split()
    assert links.stdout.split() == expected


def test_exec_of_a_missing_program_exits_127(roots: Roots) -> None:
    with detached(roots, "busybox", command=["sleep", "30"]) as (container_id, _):
        result = roots.cli("exec", container_id, "no-such-program")
    assert result.returncode == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr


def test_exec_into_an_unknown_container_exits_125(roots: Roots) -> None:
    result = roots.cli("exec", "0123456789ab", "true")
    assert result.returncode == 125
    assert result.stderr == "minictr: error: no such container: '0123456789ab'\n"


def test_exec_succeeds_every_time(roots: Roots) -> None:
    with detached(roots, "busybox", command=["sleep", "30"]) as (container_id, _):
        for attempt in range(100):  # a start-up race here once failed a few percent of execs
            finished = exec_in(container_id, ["true"], state_root=roots.state, capture=True)
            assert finished.exit_code == 0, f"attempt {attempt}"
