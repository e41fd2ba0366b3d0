"""The PID namespace: the program is PID 1, sees only its container, and is PID 1 with its duties (signals, orphans)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from helpers import Roots, alive, children, cli_command, descendants, detached, proc_status, wait_until

pytestmark = pytest.mark.root


def test_pid_the_program_is_pid_1_and_sees_only_its_container(roots: Roots) -> None:
    result = roots.cli("run", "busybox", "ps", "-o", "pid,comm")
    assert [line.split() for line in result.stdout.splitlines()[1:]] == [["1", "ps"]]
    with detached(roots, "busybox", command=["sleep", "30"]) as (_, pid):
        status = proc_status(pid)
    assert status["NSpid"].split() == [str(pid), "1"]  # host pid, then its pid inside
    assert status["Name"] == "sleep"


def test_pid_host_processes_are_invisible_and_out_of_reach(roots: Roots) -> None:
    host_sleep = subprocess.Popen(["sleep", "60"])
    try:
        script = f"ls /proc; kill -TERM {host_sleep.pid}; echo kill=$?"
        result = roots.cli("run", "busybox", "sh", "-c", script)
        assert host_sleep.poll() is None  # still running
    finally:
        host_sleep.kill()
        host_sleep.wait()
    pids = [int(name) for name in result.stdout.split() if name.isdigit()]
    assert str(host_sleep.pid) not in result.stdout.split()
    assert max(pids) < 10  # sh, ls and nothing of the host
    assert "kill=1" in result.stdout and "No such process" in result.stderr


def test_pid_orphans_become_zombies_without_init(roots: Roots) -> None:
    orphan_maker = ["sh", "-c", "(sleep 0.2 &); exec sleep 30"]  # the subshell exits: its sleep is reparented to PID 1
    with detached(roots, "busybox", command=orphan_maker) as (_, pid):
        zombies = lambda: [c for c in children(pid) if proc_status(c).get("State", "").startswith("Z")]  # noqa: E731
        assert wait_until(zombies, timeout=5), "the orphan never became a zombie of PID 1"
        assert proc_status(pid)["Name"] == "sleep"  # PID 1 is the program, which never calls wait()


def test_pid_init_reaps_zombies(roots: Roots) -> None:
    orphan_maker = ["sh", "-c", "(sleep 0.2 &); exec sleep 30"]
    with detached(roots, "--init", "busybox", command=orphan_maker) as (_, pid):
        names = lambda: [proc_status(p).get("Name") for p in descendants(pid)]  # noqa: E731
        assert wait_until(lambda: names() == ["sleep"], timeout=20), names()  # only the program: the orphan was reaped
        below = descendants(pid)
        assert proc_status(pid)["Name"] == "minictr-init"
        assert all(alive(p) for p in below)


def _foreground_pid_1(cli: subprocess.Popen[str], program: str, init: bool) -> int:
    """The host pid of a foreground container's PID 1 (CLI → minictr-wait → PID 1) once ``program`` runs."""
    found: list[int] = []

    def running() -> bool:
        for wait_pid in children(cli.pid):
            for pid in children(wait_pid):
                names = [proc_status(p).get("Name") for p in children(pid)] if init else [proc_status(pid).get("Name")]
                if program in names:
                    found.append(pid)
                    return True
        return False

    assert wait_until(running, timeout=20), "the container did not start"
    time.sleep(0.2)
    return found[0]


def test_pid_1_ignores_sigterm_without_a_handler(roots: Roots) -> None:
    command = cli_command("run", "busybox", "sleep", "30", data_root=roots.data, state_root=roots.state)
    cli = subprocess.Popen(command, text=True)
    try:
        pid = _foreground_pid_1(cli, "sleep", init=False)
        cli.send_signal(signal.SIGTERM)  # minictr passes it on to PID 1 ...
        time.sleep(1)
        assert alive(pid) and cli.poll() is None  # ... which the kernel spares: no handler, no default action
        os.kill(pid, signal.SIGKILL)  # SIGKILL from the host always works
        assert cli.wait(10) == 137
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_pid_init_passes_sigterm_on_and_exits_143(roots: Roots) -> None:
    command = cli_command("run", "--init", "busybox", "sleep", "30", data_root=roots.data, state_root=roots.state)
    cli = subprocess.Popen(command, text=True)
    try:
        _foreground_pid_1(cli, "sleep", init=True)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(10) == 143
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
