"""chroot changes the root directory and nothing else — proven from both sides."""

from __future__ import annotations

import os
import socket

import pytest

from minictr.errors import ContainerError
from minictr.runtime import chroot

pytestmark = pytest.mark.root


def test_runs_inside_the_root(rootfs: str) -> None:
    result = chroot.run(rootfs, ["ls", "/"])
    assert result.ok
    assert result.stdout.split() == sorted(os.listdir(rootfs))
    assert "work" not in result.stdout.split() or "work" in os.listdir(rootfs)


def test_host_processes_are_visible(rootfs: str) -> None:
    result = chroot.run(rootfs, ["ps", "-o", "pid"], mount_proc=True)
    pids = {int(p) for p in result.stdout.split()[1:]}
    assert os.getpid() in pids  # this test process, seen from inside the "container"
    assert 1 in pids


def test_proc_mount_does_not_reach_the_host(rootfs: str) -> None:
    chroot.run(rootfs, ["true"], mount_proc=True)
    with open("/proc/self/mountinfo") as handle:
        assert not any(line.split()[4].startswith(rootfs) for line in handle)


def test_hostname_is_shared(rootfs: str) -> None:
    assert chroot.run(rootfs, ["hostname"]).stdout.strip() == socket.gethostname()


def test_network_is_shared(rootfs: str) -> None:
    inside = chroot.run(rootfs, ["cat", "/proc/net/dev"], mount_proc=True).stdout
    interfaces = lambda text: sorted(line.split(":")[0].strip() for line in text.splitlines()[2:])  # noqa: E731
    with open("/proc/net/dev") as handle:
        assert interfaces(inside) == interfaces(handle.read())


def test_users_are_shared(rootfs: str) -> None:
    assert chroot.run(rootfs, ["id", "-u"]).stdout.strip() == str(os.getuid())


def test_root_escapes_a_chroot(rootfs: str, tmp_path) -> None:
    marker = tmp_path / "host-only-marker"
    marker.write_text("host")
    assert not os.path.exists(os.path.join(rootfs, str(marker).lstrip("/")))

    def read(path: str) -> str:
        with open(path) as handle:
            return handle.read()

    with pytest.raises(ContainerError, match="FileNotFoundError"):
        chroot.call(rootfs, read, str(marker))  # inside, the host file is out of reach...
    assert sorted(chroot.call(rootfs, chroot.escape)) == sorted(os.listdir("/"))  # ...until the escape
    os.rmdir(os.path.join(rootfs, ".escape"))
