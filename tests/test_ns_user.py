"""The user namespace: root inside is another uid outside (``--userns private``, ``--uidmap``), and minictr run by
a user that is not root maps that user to root inside."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest
from helpers import NOBODY, Roots, detached, proc_status, read, run_rootless

from conftest import kill_9_of_a_foreground_run_leaks_nothing

pytestmark = pytest.mark.root


# --- user ----------------------------------------------------------------------------------


def test_userns_private_maps_root_to_uid_100000(roots: Roots) -> None:
    result = roots.cli(
        "run", "--userns", "private", "busybox", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g"
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [["0", "100000", "65536"], ["0", "100000", "65536"], ["0"], ["0"]]


def test_userns_private_under_a_private_directory_is_refused_in_one_line_before_anything_is_made(
    open_base: str, open_data_root: str
) -> None:
    """The mapped root (100000) cannot pass a 0700 directory of the host's root: said at once, nothing left; once the
    directory lets others pass, the same command runs.
    """
    private = pathlib.Path(tempfile.mkdtemp(prefix="private-", dir=open_base))  # 0700, as pytest's own are
    roots = Roots(open_data_root, str(private / "run"))
    for verb in (("run", "--rm"), ("create",)):
        refused = roots.cli(*verb, "--network", "none", "--userns", "private", "busybox", "true")
        assert (refused.returncode, refused.stderr) == (125, (
            "minictr: error: the container's root (uid 100000 on the host, a user namespace) cannot pass through "
            f"{private} (mode 0700): let others search it (chmod o+x), or choose a --root and --data-root below "
            "directories every user may pass\n"
        )), verb  # fmt: skip
        assert os.listdir(private / "run" / "containers") == []
    os.chmod(private, 0o711)
    ran = roots.cli("run", "--rm", "--network", "none", "--userns", "private", "busybox", "id", "-u")
    assert (ran.returncode, ran.stdout) == (0, "0\n"), ran.stderr
    assert os.listdir(private / "run" / "containers") == []
    shutil.rmtree(private)


def test_userns_private_files_are_owned_by_100000_and_host_roots_are_not_writable(roots: Roots, open_dir: str) -> None:
    locked = os.path.join(open_dir, "root-only")  # owned by the host's root, mode 0755
    os.mkdir(locked, 0o755)
    script = "touch /vol/made-inside && ls -ln /vol/made-inside; ls -lnd /vol/root-only; touch /vol/root-only/x"
    result = roots.cli("run", "--userns", "private", "-v", f"{open_dir}:/vol", "busybox", "sh", "-c", script)
    info = os.stat(os.path.join(open_dir, "made-inside"))
    assert (info.st_uid, info.st_gid) == (100000, 100000)  # root inside is 100000 outside ...
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0][2:4] == ["0", "0"]  # ... and 0 inside
    assert "Permission denied" in result.stderr  # the container's root is nobody to the host's root ...
    assert not os.path.exists(os.path.join(locked, "x"))
    assert lines[1][2:4] == [str(NOBODY), str(NOBODY)]  # ... and the host root's files show as unmapped


def test_userns_private_pid_1_runs_as_uid_100000_on_the_host(roots: Roots) -> None:
    with detached(roots, "--userns", "private", "busybox", command=["sleep", "30"]) as (_, pid):
        status = proc_status(pid)
        assert read(f"/proc/{pid}/uid_map").split() == ["0", "100000", "65536"]
    assert status["Uid"].split() == ["100000"] * 4
    assert status["Gid"].split() == ["100000"] * 4


def test_uidmap_maps_what_it_is_given(roots: Roots, open_dir: str) -> None:
    result = roots.cli(
        "run",
        "--uidmap",
        "0:200000:1000",
        "-v",
        f"{open_dir}:/vol",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/uid_map; touch /vol/f",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "200000", "1000"]
    assert os.stat(os.path.join(open_dir, "f")).st_uid == 200000


def test_uidmap_malformed_is_refused_with_125(roots: Roots) -> None:
    result = roots.cli("run", "--uidmap", "0:200000", "busybox", "true")
    assert result.returncode == 125
    assert (
        result.stderr
        == "minictr: error: --uidmap/--gidmap: '0:200000' is not CONTAINER_ID:HOST_ID:SIZE (three numbers, size > 0)\n"
    )
    assert not os.path.isdir(roots.containers) or os.listdir(roots.containers) == []


# --- rootless ------------------------------------------------------------------------------


def test_rootless_maps_the_caller_to_root_inside(rootless_env: dict[str, str]) -> None:
    result = run_rootless(rootless_env, "run", "busybox", "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [["0"], ["0", str(NOBODY), "1"]]


def test_rootless_run_leaves_no_container_directory(rootless_env: dict[str, str]) -> None:
    result = run_rootless(rootless_env, "run", "--rm", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert os.listdir(os.path.join(rootless_env["MINICTR_ROOT"], "containers")) == []


def test_rootless_refuses_a_private_user_namespace(rootless_env: dict[str, str]) -> None:
    result = run_rootless(rootless_env, "run", "--userns", "private", "busybox", "true")
    assert result.returncode == 125
    assert result.stderr.startswith("minictr: error: rootless: ") and "--userns private need root" in result.stderr


def test_kill_9_of_minictr_kills_a_user_namespaced_container(roots: Roots) -> None:
    # becoming root of its user namespace made the kernel forget the death signal of the process before PID 1
    kill_9_of_a_foreground_run_leaks_nothing(["--userns", "private"], data_root=roots.data, state_root=roots.state)
