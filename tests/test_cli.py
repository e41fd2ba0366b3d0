"""The minictr command line, run for real in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import run_cli

pytestmark = pytest.mark.root


def test_run_passes_output_and_exit_status(data_root: str, state_root: str) -> None:
    result = run_cli("run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", data_root=data_root, state_root=state_root)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_default_command_env_workdir_entrypoint(data_root: str, state_root: str) -> None:
    result = run_cli("run", "-i", "busybox", input="echo $0 from sh\n", data_root=data_root, state_root=state_root)
    assert result.stdout.strip() == "sh from sh"
    result = run_cli("run", "-e", "GREETING=hi", "-w", "/etc", "busybox", "sh", "-c", "echo $GREETING $PWD", data_root=data_root, state_root=state_root)
    assert result.stdout.strip() == "hi /etc"
    result = run_cli("run", "--entrypoint", "echo", "busybox", "a", "b", data_root=data_root, state_root=state_root)
    assert result.stdout.strip() == "a b"


def test_changes_stay_in_the_container(data_root: str, state_root: str) -> None:
    first = run_cli("run", "busybox", "sh", "-c", "echo changed > /etc/passwd && rm /bin/ls", data_root=data_root, state_root=state_root)
    assert first.returncode == 0
    second = run_cli("run", "busybox", "sh", "-c", "head -1 /etc/passwd; ls / >/dev/null && echo ls-ok", data_root=data_root, state_root=state_root)
    assert second.stdout.split("\n")[:2] == ["root:x:0:0:root:/root:/bin/sh", "ls-ok"]
    assert os.listdir(os.path.join(state_root, "containers")) == []


def test_errors_are_one_line_and_exit_125(data_root: str, state_root: str) -> None:
    missing = run_cli("run", "--pull", "never", "no-such-image", "true", data_root=data_root, state_root=state_root)
    assert missing.returncode == 125
    assert missing.stderr == "minictr: error: no such image: no-such-image (minictr images lists what the store has)\n"
    # a missing image is pulled; port 9 (discard) on loopback has no registry: one line, no traffic elsewhere
    unreachable = run_cli("run", "127.0.0.1:9/no-such-image", "true", data_root=data_root, state_root=state_root)
    assert unreachable.returncode == 125
    assert unreachable.stderr.splitlines() == [
        "Unable to find image '127.0.0.1:9/no-such-image' locally",
        "minictr: error: GET http://127.0.0.1:9/v2/no-such-image/manifests/latest: [Errno 111] Connection refused",
    ]
    bad_flag = run_cli("run", "--no-such-flag", "busybox", data_root=data_root, state_root=state_root)
    assert bad_flag.returncode == 125 and "unrecognized arguments: --no-such-flag" in bad_flag.stderr
    isolation = run_cli("run", "--isolation", "vm", "busybox", "true", data_root=data_root, state_root=state_root)
    assert isolation.returncode == 125 and "argument --isolation: invalid choice: 'vm'" in isolation.stderr
    not_found = run_cli("run", "busybox", "nope", data_root=data_root, state_root=state_root)
    assert not_found.returncode == 127 and 'exec: "nope": executable file not found in $PATH' in not_found.stderr


def test_images_and_inspect(data_root: str, state_root: str) -> None:
    table = run_cli("images", data_root=data_root, state_root=state_root).stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:2] == ["busybox", "latest"]
    info = json.loads(run_cli("image", "inspect", "busybox", data_root=data_root, state_root=state_root).stdout)
    assert info[0]["Config"]["config"]["Cmd"] == ["sh"]


def test_doctor_json(data_root: str, state_root: str) -> None:
    checks = json.loads(run_cli("doctor", "--json", data_root=data_root, state_root=state_root).stdout)
    assert {c["name"] for c in checks} >= {"root", "kernel", "cgroups", "overlayfs", "busybox"}


def test_kill_9_of_minictr_leaks_nothing(data_root: str, state_root: str) -> None:
    command = [sys.executable, "-m", "minictr.cli", "--data-root", data_root, "--root", state_root, "run", "busybox", "sleep", "60"]
    cli = subprocess.Popen(command)
    containers = os.path.join(state_root, "containers")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (os.path.isdir(containers) and os.listdir(containers)):
        time.sleep(0.05)
    time.sleep(0.5)  # let the container reach its program
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    # the container dies with its minictr (PR_SET_PDEATHSIG) ...
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _sleepers():
        time.sleep(0.05)
    assert not _sleepers()
    assert len(os.listdir(containers)) == 1  # ... its directory stays until the next run ...
    assert run_cli("run", "busybox", "true", data_root=data_root, state_root=state_root).returncode == 0
    assert os.listdir(containers) == []  # ... which removes it


def _sleepers() -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read() == b"sleep\x0060\x00":
                    found.append(pid)
        except OSError:
            pass
    return found


def test_concurrent_runs_do_not_trip_over_each_other(data_root: str, state_root: str) -> None:
    # A new container's directory must never look stale to another run's sweep.
    command = [sys.executable, "-m", "minictr.cli", "--data-root", data_root, "--root", state_root, "run", "busybox", "true"]
    for _ in range(5):
        runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [(run.wait(60), run.stderr.read()) for run in runs]
        assert results == [(0, "")] * 4
    assert os.listdir(os.path.join(state_root, "containers")) == []
