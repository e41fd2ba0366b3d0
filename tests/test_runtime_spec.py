"""Spec in, process out: what an OCI config makes of a process, checked against the runtime under test.

Each test takes :func:`helpers.base_config` (a minimal config, every
runtime's common ground), changes the one thing it is about, runs it with
:func:`helpers.run_spec` and checks what the program saw. The runtime is
``minictr-oci``; ``MINICTR_TEST_RUNTIME=runc`` (or ``crun``) runs the same
tests through that one, so where minictr behaves otherwise, a test says so.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import (
    BASE_CAPABILITIES,
    RUNTIME,
    RUNTIME_IS_OURS,
    RUNTIME_NAME,
    add_namespaces,
    base_config,
    interfaces,
    mount_table,
    run_spec,
)

from minictr.kernel.security import capabilities

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not RUNTIME_IS_OURS and not shutil.which(RUNTIME), reason=f"{RUNTIME_NAME} is not installed"),
]


@pytest.fixture(scope="session")
def spec_rootfs(open_base: str, rootfs: str) -> Iterator[str]:
    """A copy of the busybox root (a real directory: runc refuses a symlinked one) a mapped root may walk into."""
    path = os.path.join(open_base, "spec-rootfs")
    shutil.copytree(rootfs, path, symlinks=True)
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(config: dict[str, Any], tmp_path: pathlib.Path) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``config`` run by the runtime under test."""
    done = run_spec(config, tmp_path)
    return done.returncode, done.stdout, done.stderr


def sh(spec_rootfs: str, script: str) -> dict[str, Any]:
    """:func:`base_config` running ``sh -c SCRIPT``."""
    return base_config(spec_rootfs, ["sh", "-c", script])


def test_the_programs_output_and_exit_status_come_back(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    assert run(sh(spec_rootfs, "echo out; echo err >&2; exit 3"), tmp_path) == (3, "out\n", "err\n")


def test_the_program_is_pid_1_of_a_new_pid_namespace(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    code, out, err = run(base_config(spec_rootfs, ["ps", "-o", "pid,comm"]), tmp_path)
    assert code == 0, err
    assert [line.split() for line in out.splitlines()[1:]] == [["1", "ps"]]


def test_hostname_env_cwd_and_user_are_the_configs(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    config = sh(spec_rootfs, 'hostname; echo "$GREETING"; pwd; id -u; id -g; id -G')
    config["hostname"] = "from-the-spec"
    config["process"]["env"].append("GREETING=hello there")
    config["process"]["cwd"] = "/tmp"
    config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [1002]}
    code, out, err = run(config, tmp_path)
    assert code == 0, err
    assert out.splitlines() == ["from-the-spec", "hello there", "/tmp", "1000", "1001", "1001 1002"]


def test_the_mounts_are_the_configs_and_sys_is_read_only(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    code, out, err = run(base_config(spec_rootfs, ["cat", "/proc/self/mountinfo"]), tmp_path)
    assert code == 0, err
    table = mount_table(out)
    kinds = {point: kind for point, (kind, _) in table.items() if point != "/"}
    assert kinds == {"/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs",
                     "/dev/mqueue": "mqueue", "/sys": "sysfs"}  # fmt: skip
    assert "ro" in table["/sys"][1] and "ro" in table["/"][1]  # root.readonly


def test_a_read_only_root_refuses_writes(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    code, out, err = run(
        sh(spec_rootfs, "touch /made-inside || echo refused; touch /dev/shm/ok && echo shm-ok"), tmp_path
    )
    assert (code, out) == (0, "refused\nshm-ok\n")
    assert "Read-only file system" in err
    assert not os.path.exists(os.path.join(spec_rootfs, "made-inside"))


def test_a_new_network_namespace_has_only_loopback_and_it_is_up(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    code, out, err = run(sh(spec_rootfs, "cat /proc/net/dev; echo ==; ip -o link"), tmp_path)
    assert code == 0, err
    net_dev, _, links = out.partition("==\n")
    assert interfaces(net_dev) == ["lo"]
    assert ",UP" in links.splitlines()[0] and links.split()[1] == "lo:"


def test_uid_and_gid_mappings_make_a_user_namespace(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    # the mapped root may neither walk into the state root (the exec fifo) nor write to the image (pivot_root)
    script = "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin/busybox; cat /proc/self/mountinfo"
    config = add_namespaces(sh(spec_rootfs, script), "user")
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    code, out, err = run(config, tmp_path)
    assert code == 0, err
    lines = out.splitlines()
    # the image's files belong to the host's root: unmapped inside, they show as the overflow uid
    assert [line.split() for line in lines[:4]] == [
        ["0", "100000", "65536"],
        ["0", "100000", "65536"],
        ["0"],
        ["65534"],
    ]
    # the host's root is gone, not stacked below: one root, the config's mounts and the devices bound into /dev
    points = [line.split()[4] for line in lines[4:]]
    assert points.count("/") == 1, points
    assert {"/proc", "/dev/pts", "/sys"} <= set(points)
    assert all(point == "/" or point.split("/")[1] in ("dev", "proc", "sys") for point in points), points


def test_rlimits_are_set_before_the_program_runs(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    config = sh(spec_rootfs, "ulimit -n; ulimit -H -n")
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 768}]
    code, out, err = run(config, tmp_path)
    assert code == 0, err
    assert out.split() == ["512", "768"]


def test_the_process_has_the_configs_capabilities_and_no_new_privileges(
    spec_rootfs: str, tmp_path: pathlib.Path
) -> None:
    code, out, err = run(
        sh(spec_rootfs, "grep -E '^(CapBnd|CapEff|CapPrm|CapInh|NoNewPrivs)' /proc/self/status"), tmp_path
    )
    assert code == 0, err
    status = dict(line.split(":\t") for line in out.splitlines())
    wanted = f"{capabilities.mask(BASE_CAPABILITIES):016x}"
    assert (status["CapBnd"], status["CapEff"], status["CapPrm"]) == (wanted, wanted, wanted)
    assert (status["CapInh"], status["NoNewPrivs"]) == ("0000000000000000", "1")


def test_masked_and_read_only_paths(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    config = sh(
        spec_rootfs,
        "wc -c < /proc/version; ls /proc/acpi | wc -l; echo x > /proc/sys/kernel/domainname || echo refused",
    )
    config["linux"]["maskedPaths"] = ["/proc/version", "/proc/acpi", "/proc/no-such-path"]
    config["linux"]["readonlyPaths"] = ["/proc/sys"]
    code, out, err = run(config, tmp_path)
    assert code == 0, err
    assert out.split() == ["0", "0", "refused"]  # a file masked by /dev/null, a directory by an empty tmpfs
    assert "Read-only file system" in err


def test_sysctl_is_written_in_the_containers_namespaces(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    config = sh(spec_rootfs, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/domainname")
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.domainname": "spec.example"}
    code, out, err = run(config, tmp_path)
    assert code == 0, err
    assert out.split() == ["1", "spec.example"]


def test_a_missing_program_fails_and_names_it(spec_rootfs: str, tmp_path: pathlib.Path) -> None:
    code, out, err = run(base_config(spec_rootfs, ["no-such-program"]), tmp_path)
    assert code != 0 and out == ""
    assert "no-such-program" in err
    if RUNTIME_IS_OURS:
        assert 'exec: "no-such-program": executable file not found in $PATH' in err  # runc's words
