"""OCI config building and the root filesystem steps, each on its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from minictr.kernel import linux, rootfs
from minictr.runtime import spec


def test_isolated_spec_has_namespaces_mounts_and_maps() -> None:
    config = spec.isolated_spec(
        "/r",
        ["sh"],
        namespaces=["user", *spec.DEFAULT_NAMESPACES],
        uid_mappings=[spec.id_mapping(0, 100000, 65536)],
        hostname="box",
    )
    assert [ns["type"] for ns in config["linux"]["namespaces"]] == ["user", *spec.DEFAULT_NAMESPACES]
    assert (
        config["linux"]["gidMappings"]
        == config["linux"]["uidMappings"]
        == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    )
    destinations = [m["destination"] for m in config["mounts"]]
    assert destinations == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert "gid=5" not in config["mounts"][2]["options"]  # gid 5 may not be mapped in a user namespace
    assert config["hostname"] == "box"


def test_a_user_namespace_on_the_host_network_binds_sys_instead_of_mounting_sysfs() -> None:
    # sysfs needs root of the user namespace owning the network namespace: the host's root has that, always
    mapped = [spec.id_mapping(0, 1000, 1)]
    shared = spec.isolated_spec("/r", ["sh"], namespaces=["user", "mount", "pid"], uid_mappings=mapped)
    assert shared["mounts"][-1]["type"] == "bind" and "ro" in shared["mounts"][-1]["options"]
    host_root = spec.isolated_spec("/r", ["sh"], namespaces=["mount", "pid"])
    assert host_root["mounts"][-1]["type"] == "sysfs" and "ro" in host_root["mounts"][-1]["options"]


@pytest.mark.parametrize("text", ["0:1", "a:b:c", "0:100000:0", "0:1:2:3"])
def test_bad_id_maps_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="CONTAINER_ID:HOST_ID:SIZE"):
        spec.parse_id_map(text)


def test_volumes() -> None:
    assert spec.bind_volume("/a:/b:ro") == {
        "destination": "/b",
        "type": "bind",
        "source": "/a",
        "options": ["rbind", "rprivate", "ro"],
    }
    for bad in ("a:/b", "/a", "/a:/b:rx"):
        with pytest.raises(ValueError):
            spec.bind_volume(bad)


def test_mount_options_split_into_flags_data_and_propagation() -> None:
    flags, data, propagation = rootfs.split_options(["nosuid", "ro", "mode=755", "size=64k", "rslave", "rw"])
    assert flags == linux.MS_NOSUID | linux.MS_RDONLY
    assert data == "mode=755,size=64k"
    assert propagation == "rslave"


@pytest.mark.root
def test_move_and_chroot_fallback_in_a_child(tmp_path, rootfs: str) -> None:
    # The fallback where pivot_root is impossible, run for real in a child with its own mount namespace.
    target = tmp_path / "newroot"
    target.mkdir()
    code = (
        "import os\n"
        "from minictr.kernel import linux, rootfs\n"
        "linux.unshare(linux.CLONE_NEWNS)\n"
        "rootfs.make_private('/')\n"
        f"linux.mount('tmpfs', {str(target)!r}, 'tmpfs')\n"
        f"os.mkdir({str(target / 'inside-only')!r})\n"
        f"rootfs.move_and_chroot({str(target)!r})\n"
        "print(sorted(os.listdir('/')), os.getcwd())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "['inside-only'] /", result.stderr
    assert not os.listdir(target)  # the tmpfs never reached the host


@pytest.mark.root
def test_create_devices_makes_exactly_the_standard_nodes(tmp_path) -> None:
    (tmp_path / "dev").mkdir()
    rootfs.create_devices(str(tmp_path))
    made = {name: os.lstat(tmp_path / "dev" / name) for name in os.listdir(tmp_path / "dev")}
    assert set(made) == set(rootfs.DEFAULT_DEVICES) | set(rootfs.DEFAULT_LINKS)
    for name, (major, minor) in rootfs.DEFAULT_DEVICES.items():
        assert (os.major(made[name].st_rdev), os.minor(made[name].st_rdev)) == (major, minor)
        assert made[name].st_mode & 0o777 == 0o666
    assert os.readlink(tmp_path / "dev" / "ptmx") == "pts/ptmx"
