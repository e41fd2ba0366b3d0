"""The mount namespace: the container's mounts are its own, its root is overlay, /dev and /sys are what they must be."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import Roots, detached, host_mounts, mount_table, read

from minictr.engine import container
from minictr.engine.container import image_store
from minictr.kernel.security import paths as security_paths
from minictr.runtime import chroot
from minictr.runtime.process.parent import call
from minictr.runtime.spec import isolated_spec

pytestmark = pytest.mark.root


#: What a container's /dev holds and nothing more: char devices (major, minor) and links.
STANDARD_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
STANDARD_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
    "ptmx": "pts/ptmx",
}
STANDARD_DIRS = {"pts", "shm", "mqueue"}
#: The mount points of a default container, as its own mountinfo lists them.
STANDARD_MOUNTS = {
    "/": "overlay",
    "/proc": "proc",
    "/dev": "tmpfs",
    "/dev/pts": "devpts",
    "/dev/shm": "tmpfs",
    "/dev/mqueue": "mqueue",
    "/sys": "sysfs",
}
#: Files bind-mounted from the container's directory (whose file system depends on the host).
NAME_FILES = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}


def kinds_besides_name_files(table: dict[str, tuple[str, list[str]]]) -> dict[str, str]:
    """Mount point -> type, once the three /etc files minictr writes and the masked and read-only
    /proc and /sys paths (tests/test_security.py) are checked to be there."""
    assert set(table) >= NAME_FILES
    guarded = {p for p in (*security_paths.MASKED, *security_paths.READONLY) if os.path.exists(p)}
    assert guarded <= set(table)
    return {point: kind for point, (kind, _) in table.items() if point not in NAME_FILES | guarded}


def test_mount_nothing_mounted_inside_appears_on_the_host(roots: Roots) -> None:
    before = host_mounts()
    with detached(roots, "busybox", command=["sleep", "30"]) as (_, pid):
        during = host_mounts()
        inside = mount_table(read(f"/proc/{pid}/mountinfo"))
    assert during - before == set()
    assert not any(point.startswith(roots.state) for point, _ in during)
    assert kinds_besides_name_files(inside) == STANDARD_MOUNTS  # ... though they exist, in there


def test_mount_inside_root_is_overlay_with_proc_dev_sys(roots: Roots) -> None:
    result = roots.cli("run", "busybox", "cat", "/proc/self/mountinfo")
    table = mount_table(result.stdout)
    assert kinds_besides_name_files(table) == STANDARD_MOUNTS
    assert "ro" in table["/sys"][1] and "rw" in table["/"][1]
    assert {"nosuid", "nodev", "noexec"} <= set(table["/proc"][1])
    root_line = next(line for line in result.stdout.splitlines() if line.split()[4] == "/")
    lowerdirs = root_line.split("lowerdir=", 1)[1].split(",", 1)[0].split(":")
    assert lowerdirs[0].endswith("/init")  # the mount points of /etc/hosts and friends, above the image
    assert all(
        d.startswith(f"{roots.data}/layers/") for d in lowerdirs[1:]
    )  # the image's layers, below the container's changes
    assert {point for point, _ in host_mounts()} - set(STANDARD_MOUNTS)  # the host has others, which stay outside


def test_mount_dev_holds_exactly_the_standard_nodes_and_links(roots: Roots) -> None:
    script = (
        'cd /dev && for f in *; do if [ -L "$f" ]; then echo "$f link $(readlink "$f")"; '
        'elif [ -c "$f" ]; then echo "$f char $(stat -c %t:%T "$f")"; '
        'else echo "$f $(stat -c %F "$f")"; fi; done'
    )
    result = roots.cli("run", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    seen = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in result.stdout.splitlines()}
    expected = {name: f"char {major:x}:{minor:x}" for name, (major, minor) in STANDARD_DEVICES.items()}
    expected |= {name: f"link {target}" for name, target in STANDARD_LINKS.items()}
    expected |= dict.fromkeys(STANDARD_DIRS, "directory")
    assert seen == expected
    host_only = sorted(set(os.listdir("/dev")) - set(expected))[0]  # the host has more devices ...
    missing = roots.cli("run", "busybox", "ls", f"/dev/{host_only}")
    assert missing.returncode != 0 and "No such file or directory" in missing.stderr  # ... the container does not


def test_mount_sys_is_read_only(roots: Roots) -> None:
    # EROFS comes only from a read-only mount (a writable sysfs refuses these with other errors)
    result = roots.cli(
        "run",
        "busybox",
        "sh",
        "-c",
        "touch /sys/minictr-test; mkdir /sys/kernel/minictr-test; ls /sys/kernel >/dev/null && echo read-ok",
    )
    assert result.stdout == "read-ok\n"
    assert result.stderr.count("Read-only file system") == 2, result.stderr


def test_mount_chroot_escape_does_not_reach_the_host(open_data_root: str, tmp_path) -> None:
    store = image_store(open_data_root)
    copy = str(tmp_path / "rootfs")
    subprocess.run(["cp", "-a", container.unpacked_rootfs(store, store.get("busybox")), copy], check=True)
    escaped = call(isolated_spec(copy, ["python-function"]), chroot.escape)
    assert escaped != sorted(os.listdir("/"))
    assert escaped == sorted(os.listdir(copy))  # it climbed to the top — of the container's own root
    assert ".escape" in escaped


def test_mount_read_only_root_refuses_writes(roots: Roots, open_dir: str) -> None:
    result = roots.cli(
        "run",
        "--read-only",
        "-v",
        f"{open_dir}:/vol",
        "busybox",
        "sh",
        "-c",
        "touch /etc/x; mkdir /newdir; touch /vol/ok && echo vol-ok",
    )
    assert result.stdout == "vol-ok\n"  # a read-write volume stays writable
    assert result.stderr.count("Read-only file system") == 2, result.stderr
    assert os.path.exists(os.path.join(open_dir, "ok"))
    writable = roots.cli("run", "busybox", "sh", "-c", "touch /etc/x && echo ok")  # without --read-only it works
    assert writable.stdout == "ok\n"
