"""kill -9 of minictr at every named step (``MINICTR_FAULT``, see minictr/faults.py), then the next command.

Each test makes minictr SIGKILL itself at one step, checks that the step was
reached (the command died by SIGKILL and left what that step makes), waits
for the container to die with its minictr, runs the next minictr command, and
then finds nothing of that container on the host (the shared snapshot of
conftest.py, narrowed to what this test made).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import cli_command

from conftest import free_port, host_leftovers, host_snapshot, run_cli, wait_until

pytestmark = pytest.mark.root

#: The steps of a container's start, in the order minictr reaches them (lease and nft run beside spawn and pivot).
START_STEPS = ["cgroup", "spawn", "lease", "nft", "pivot", "agent", "veth", "exec"]


def faulty(step: str, *args: str, data_root: str, state_root: str) -> subprocess.CompletedProcess[str]:
    """Run minictr with ``MINICTR_FAULT=step``; it must die by SIGKILL, having reached the step.

    At ``pivot`` the container kills itself instead, and with ``run -d`` the
    step is reached by the container's monitor, which the variable reaches
    too: minictr must report it (125) and clean up.
    """
    command = cli_command(*args, data_root=data_root, state_root=state_root)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "MINICTR_FAULT": step}
    )
    expected = 125 if step == "pivot" or "-d" in args else -signal.SIGKILL
    assert done.returncode == expected, f"minictr never reached the step {step!r}: {done}"
    return done


def system_prune() -> list[str] | None:
    """The arguments of ``minictr system prune`` (with ``-f`` if it asks first), or None before it exists."""
    done = subprocess.run(
        [sys.executable, "-m", "minictr.cli", "system", "prune", "--help"], capture_output=True, text=True
    )
    if done.returncode != 0:
        return None
    return ["system", "prune", *(["-f"] if "--force" in done.stdout else [])]


def next_command(data_root: str, state_root: str, otherwise: tuple[str, ...] = ("run", "busybox", "true")) -> None:
    """What a user runs next: ``minictr system prune`` where there is one, else ``otherwise``."""
    done = run_cli(*(system_prune() or otherwise), data_root=data_root, state_root=state_root)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("step", [*START_STEPS, "exec -d"])
def test_kill_9_at_a_step_of_run_leaves_nothing_after_the_next_command(
    step: str, data_root: str, state_root: str
) -> None:
    mark, port = os.urandom(6).hex(), free_port()
    step, *detach = step.split(" ")  # "exec -d": the monitor of a detached container dies as it starts
    if step == "agent":  # the bridge's agent is asked once the bridge is up (who brings it up does the work)
        assert run_cli("run", "--rm", "busybox", "true", data_root=data_root, state_root=state_root).returncode == 0
    before = host_snapshot(state_root)
    faulty(step, "run", *detach, "-e", f"MINICTR_TEST_MARK={mark}", "-p", f"{port}:80", "--pids-limit", "64",
           "busybox", "sleep", "120", data_root=data_root, state_root=state_root)  # fmt: skip
    containers = os.listdir(os.path.join(state_root, "containers"))
    names = [*containers, *(f"mv-{c}"[:15] for c in containers), mark, f"MINICTR_FAULT={step}", state_root, f"{port} :"]
    network = os.path.join(state_root, "networks", "bridge", "network.json")
    own = list(names)  # the default network's bridge outlives its last container, until a prune
    if os.path.exists(network):
        with open(network) as handle:
            names.append(json.load(handle)["bridge"])
    if step == "pivot" or detach:  # minictr lived (the container, or its monitor, died): it cleaned up itself
        assert wait_until(lambda: not host_leftovers(before, host_snapshot(state_root), *own), timeout=30)
        assert containers == [] and host_leftovers(before, host_snapshot(state_root), *own) == {}
        next_command(data_root, state_root)
        assert host_leftovers(before, host_snapshot(state_root), *names) == {}
        return
    assert len(containers) == 1  # what the step made is still there: only the next command may remove it
    (_,) = containers
    left = lambda: host_leftovers(before, host_snapshot(state_root), *names)  # noqa: E731
    # a foreground container dies with its minictr (PR_SET_PDEATHSIG), whatever it was doing
    assert wait_until(lambda: not left().get("processes"), timeout=30), left()
    next_command(data_root, state_root)
    assert left() == {}


@pytest.mark.parametrize(
    ("step", "partial"), [("blob", ("images/blobs/sha256", ".partial-")), ("unpack", ("layers", ".unpacking-"))]
)
def test_kill_9_during_a_pull_leaves_nothing_after_prune(step: str, partial: tuple[str, str], images: dict[str, str],
                                                         tmp_path, state_root: str) -> None:  # fmt: skip
    data = str(tmp_path / "data")
    faulty(step, "pull", "-q", images["multi"], data_root=data, state_root=state_root)
    directory, prefix = os.path.join(data, partial[0]), partial[1]
    assert [n for n in os.listdir(directory) if n.startswith(prefix)]  # the half-written blob or half-unpacked layer
    pulled = run_cli("pull", "-q", images["multi"], data_root=data, state_root=state_root)
    assert pulled.returncode == 0, pulled.stderr
    assert run_cli("image", "prune", data_root=data, state_root=state_root).returncode == 0
    left = [os.path.join(root, name) for root, dirs, files in os.walk(data) for name in dirs + files
            if name.startswith((".partial-", ".unpacking-"))]  # fmt: skip
    assert left == []
    done = run_cli("run", "--network", "none", images["multi"], "cat", "/top", data_root=data, state_root=state_root)
    assert done.stdout == "plain tar layer\n", done.stderr


def test_kill_9_during_network_create_leaves_nothing_after_prune(data_root: str, state_root: str) -> None:
    faulty("network", "network", "create", "torn", data_root=data_root, state_root=state_root)
    directory = os.path.join(state_root, "networks", "torn")
    assert os.path.isdir(directory) and not os.path.exists(os.path.join(directory, "network.json"))
    assert "torn" not in run_cli("network", "ls", "-q", data_root=data_root, state_root=state_root).stdout.split()
    next_command(data_root, state_root, ("network", "prune"))
    assert not os.path.exists(directory)
    assert run_cli("network", "create", "torn", data_root=data_root, state_root=state_root).returncode == 0
    assert run_cli("network", "rm", "torn", data_root=data_root, state_root=state_root).returncode == 0
