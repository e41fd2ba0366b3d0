"""The OCI runtime-spec validator: what minictr builds passes, each rule names the field it refuses.

The specs checked clean are made by minictr's own builders (and by ``runc
spec``), never written out by hand; each failing case changes one field of a
full, valid spec and asserts the exact message. The integration tests show
the runtime refusing a bad spec in the caller, before any process exists.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
from typing import Any

import pytest

import minictr
from conftest import remove_container, run_cli
from minictr.engine.container import run
from minictr.engine.container_root import image_store
from minictr.engine.container_spec import container_spec, limit_spec
from minictr.engine.exec import exec_in
from minictr.engine.run_options import RunOptions
from minictr.errors import MinictrError, SpecError, UsageError
from minictr.kernel import rootfs
from minictr.runtime.process.parent import spawn
from minictr.runtime.spec import PROC_MOUNT, bind_volume, default_spec, id_mapping, isolated_spec
from minictr.runtime.validate import CAPABILITIES, problems, validate
from minictr.runtime.validate_linux import PROPAGATIONS

ALL_NAMESPACES = ["user", "pid", "network", "ipc", "uts", "mount", "cgroup", "time"]
DELETE = object()


def full_spec() -> dict[str, Any]:
    """A valid spec using every part the validator checks (built by minictr, then extended)."""
    spec = isolated_spec(
        "/containers/abc/rootfs", ["sh", "-c", "true"], namespaces=ALL_NAMESPACES, hostname="box",
        uid_mappings=[id_mapping(0, 100000, 65536)], gid_mappings=[id_mapping(0, 100000, 65536)],
        time_offsets={"monotonic": {"secs": -5, "nanosecs": 0}},
        volumes=[bind_volume("/srv:/data:ro")], env=["PATH=/bin", "EMPTY="],
    )  # fmt: skip
    spec["process"]["user"]["additionalGids"] = [10, 20]
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}]
    spec["process"]["capabilities"] = {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"]}
    spec["linux"].update({
        "resources": {
            "memory": {"limit": 1 << 28, "reservation": -1, "swap": -1},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 64},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}]},
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
        },
        "cgroupsPath": "minictr/abc",
        "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666},
                    {"path": "/dev/fifo", "type": "p"}],
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
            {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
        "rootfsPropagation": "rslave",
    })  # fmt: skip
    return spec


def changed(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with the field at ``path`` (``a.b[2].c``) set to ``value``, or removed (DELETE)."""
    spec = copy.deepcopy(spec)
    keys: list[str | int] = [
        int(index) if index else name for name, index in re.findall(r"([A-Za-z]+)|\[(\d+)\]", path)
    ]
    target: Any = spec
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return spec


def test_the_full_spec_is_valid() -> None:
    assert problems(full_spec()) == []


# --- what minictr builds today validates clean ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [
    default_spec("/r", ["sh"]),
    default_spec("/r", ["sh"], mounts=[PROC_MOUNT], env=["A=1"], cwd="/tmp", uid=1000, gid=1000),
    default_spec("/proc/1/root", ["ls"], terminal=True),  # as exec_in builds it
    isolated_spec("/r", ["sh"]),
    isolated_spec("/r", ["sh"], namespaces=["mount", "pid"], readonly=True, volumes=[bind_volume("/a:/b")]),
    isolated_spec("/r", ["sh"], namespaces=["user", "mount", "uts"], uid_mappings=[id_mapping(0, 1000, 1)],
                  gid_mappings=[id_mapping(0, 1000, 1)], hostname="h"),
    isolated_spec("/r", ["sh"], namespaces=["time", "mount"], time_offsets={"boottime": {"secs": -9, "nanosecs": 5}}),
    isolated_spec("/r", ["sh"], namespaces=[], uid=65534),
], ids=["chroot", "chroot-proc", "exec", "isolated", "mount-pid", "user", "time", "no-namespaces"])  # fmt: skip
def test_specs_minictr_builds_are_valid(spec: dict[str, Any]) -> None:
    assert problems(spec) == []


RUN_OPTIONS = {
    "full": RunOptions(),
    "chroot": RunOptions(isolation="chroot"),
    "userns-private": RunOptions(userns="private", hostname="web", domainname="example.org"),
    "uidmap": RunOptions(uidmap=["0:200000:1000"], gidmap=["0:300000:1000"], timens=True, read_only=True),
    "user-and-volume": RunOptions(user="1000:1000", volumes=["/srv:/srv:ro"], workdir="/tmp", env=["A=b"]),
    "limits": RunOptions(memory="64m", memory_swap="128m", cpus="0.5", cpu_shares=512, pids_limit=20,
                         blkio_weight=300, devices=["/dev/null:/dev/mynull:rw"], cgroup_parent="/minictr-test"),
    "chroot-limits": RunOptions(isolation="chroot", memory_reservation="32m", pids_limit=0, cpu_quota=-1),
}  # fmt: skip


@pytest.mark.root
@pytest.mark.parametrize("name", list(RUN_OPTIONS))
def test_run_specs_with_limits_and_network_files_are_valid(name: str, data_root: str, tmp_path: pathlib.Path) -> None:
    """``minictr run``'s own conversion (container_spec, network files, limit_spec) passes the validator."""
    from minictr.engine.network.attach import plan

    options = RUN_OPTIONS[name]
    image = image_store(data_root).get("busybox")
    network = plan(str(tmp_path), "none", hostname="abc") if options.isolation == "full" else None
    spec = container_spec(image, str(tmp_path / "rootfs"), [], options, "abc123", None, network)
    limit_spec(spec, options, "abc123")  # reads the host's cgroup layout, creates nothing
    assert problems(spec) == []


RUNC = shutil.which("runc")


@pytest.mark.skipif(RUNC is None, reason="runc is not installed (scripts/test-packages.txt installs it)")
@pytest.mark.parametrize("flags", [[], ["--rootless"]], ids=["root", "rootless"])
def test_runc_spec_is_valid(flags: list[str], tmp_path: pathlib.Path) -> None:
    """The spec the reference runtime writes (``runc spec``) passes too."""
    subprocess.run([str(RUNC), "spec", *flags], cwd=tmp_path, check=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["linux"]["namespaces"] and spec["linux"]["maskedPaths"]  # the real thing, not an empty file
    assert problems(spec) == []


def test_capability_table_matches_the_kernel_and_libcap() -> None:
    """Numbered as the kernel numbers them (capsh decodes a mask into names in bit order)."""
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        assert len(CAPABILITIES) == int(handle.read()) + 1
    capsh = shutil.which("capsh")
    if capsh:
        decoded = subprocess.run([capsh, f"--decode={(1 << len(CAPABILITIES)) - 1:#x}"], capture_output=True, text=True)
        assert decoded.stdout.strip().split("=", 1)[1].upper().split(",") == list(CAPABILITIES)


def test_the_propagations_accepted_are_those_the_runtime_applies() -> None:
    assert set(rootfs._PROPAGATION) == PROPAGATIONS


# --- each rule, with its exact message --------------------------------------------------------------------------------

ONLY_MOUNT_UTS = [{"type": "mount"}, {"type": "uts"}]

CASES = [
    ("ociVersion", DELETE, "ociVersion: required"),
    ("ociVersion", 1, "ociVersion: must be a string, not an integer"),
    ("ociVersion", "2.0.0", 'ociVersion: "2.0.0" is not a 1.x version (1.MINOR.PATCH)'),
    ("ociVersion", "1.0", 'ociVersion: "1.0" is not a 1.x version (1.MINOR.PATCH)'),
    ("root", DELETE, "root: required"),
    ("root.path", DELETE, "root.path: required"),
    ("root.path", "", "root.path: must not be empty"),
    ("root.readonly", "yes", "root.readonly: must be a boolean, not a string"),
    ("process", DELETE, "process: required"),
    ("process.args", DELETE, "process.args: required"),
    ("process.args", [], "process.args: must name the program to run (it is empty)"),
    ("process.args", "sh", "process.args: must be an array, not a string"),
    ("process.args[1]", 7, "process.args[1]: must be a string, not an integer"),
    ("process.cwd", DELETE, "process.cwd: required"),
    ("process.cwd", "tmp", 'process.cwd: must be an absolute path, not "tmp"'),
    ("process.env[1]", "FOO", 'process.env[1]: "FOO" is not NAME=VALUE'),
    ("process.env[0]", "=x", 'process.env[0]: "=x" is not NAME=VALUE'),
    ("process.terminal", 1, "process.terminal: must be a boolean, not an integer"),
    ("process.user.uid", -1, "process.user.uid: must be an integer >= 0, not -1"),
    ("process.user.uid", DELETE, "process.user.uid: required"),
    ("process.user.gid", "0", "process.user.gid: must be an integer, not a string"),
    ("process.user.gid", True, "process.user.gid: must be an integer, not a boolean"),
    ("process.user.additionalGids[1]", -2, "process.user.additionalGids[1]: must be an integer >= 0, not -2"),
    ("process.user.additionalGids", 5, "process.user.additionalGids: must be an array, not an integer"),
    ("process.rlimits[0].type", "RLIMIT_FOO", 'process.rlimits[0].type: unknown resource limit "RLIMIT_FOO"'),
    ("process.rlimits[0].soft", 8192, "process.rlimits[0]: soft limit 8192 is above the hard limit 4096"),
    ("process.rlimits[0].hard", -1, "process.rlimits[0].hard: must be an integer >= 0, not -1"),
    ("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2,
     'process.rlimits[1].type: "RLIMIT_CORE" is listed twice'),
    ("process.capabilities.bounding[1]", "CAP_FOO", 'process.capabilities.bounding[1]: unknown capability "CAP_FOO"'),
    ("process.capabilities.effective", "CAP_KILL", "process.capabilities.effective: must be an array, not a string"),
    ("process.capabilities.sometimes", [], "process.capabilities.sometimes: unknown capability set "
                                           "(known: bounding, effective, inheritable, permitted, ambient)"),
    ("mounts[0].destination", "proc", 'mounts[0].destination: must be an absolute path, not "proc"'),
    ("mounts[0].destination", DELETE, "mounts[0].destination: required"),
    ("mounts[0].type", 5, "mounts[0].type: must be a string, not an integer"),
    ("mounts[0].source", None, "mounts[0].source: must be a string, not null"),
    ("mounts[0].options", "ro", "mounts[0].options: must be an array, not a string"),
    ("mounts[1]", "tmpfs", "mounts[1]: must be an object, not a string"),
    ("hostname", 7, "hostname: must be a string, not an integer"),
    ("linux.namespaces[4].path", "/proc/1/ns/uts",
     "hostname: needs a new uts namespace (linux.namespaces creates none)"),
    ("linux.namespaces[2].type", "foo", 'linux.namespaces[2].type: unknown namespace "foo"'),
    ("linux.namespaces[2].type", "pid", 'linux.namespaces[2].type: "pid" is listed twice'),
    ("linux.namespaces[1].type", DELETE, "linux.namespaces[1].type: required"),
    ("linux.namespaces[1].path", "proc/1/ns/pid",
     'linux.namespaces[1].path: must be an absolute path, not "proc/1/ns/pid"'),
    ("linux.namespaces", [*ONLY_MOUNT_UTS, {"type": "time"}],
     ("linux.uidMappings: needs a user namespace (linux.namespaces has none)",
      "linux.gidMappings: needs a user namespace (linux.namespaces has none)")),
    ("linux.namespaces", [*ONLY_MOUNT_UTS, {"type": "user"}],
     "linux.timeOffsets: needs a time namespace (linux.namespaces has none)"),
    ("linux.uidMappings[0].size", 0, "linux.uidMappings[0].size: must be an integer from 1 to 4294967295, not 0"),
    ("linux.gidMappings[0].hostID", -1, "linux.gidMappings[0].hostID: must be an integer from 0 to 4294967295, not -1"),
    ("linux.uidMappings[0].containerID", DELETE, "linux.uidMappings[0].containerID: required"),
    ("linux.uidMappings", [id_mapping(0, 100000, 1000), id_mapping(500, 200000, 10)],
     "linux.uidMappings[1].containerID: ids 500-509 overlap 0-999 of linux.uidMappings[0]"),
    ("linux.gidMappings", [id_mapping(0, 100000, 10), id_mapping(10, 100005, 10)],
     "linux.gidMappings[1].hostID: ids 100005-100014 overlap 100000-100009 of linux.gidMappings[0]"),
    ("linux.timeOffsets.realtime", {"secs": 1},
     "linux.timeOffsets.realtime: unknown clock (known: monotonic, boottime)"),
    ("linux.timeOffsets.monotonic.nanosecs", 10**9,
     "linux.timeOffsets.monotonic.nanosecs: must be an integer from 0 to 999999999, not 1000000000"),
    ("linux.resources.memory.limit", -2, "linux.resources.memory.limit: must be an integer >= -1, not -2"),
    ("linux.resources.memory.swap", "1g", "linux.resources.memory.swap: must be an integer, not a string"),
    ("linux.resources.cpu.shares", -1, "linux.resources.cpu.shares: must be an integer >= 0, not -1"),
    ("linux.resources.cpu.quota", -5, "linux.resources.cpu.quota: must be an integer >= -1, not -5"),
    ("linux.resources.cpu.cpus", 0, "linux.resources.cpu.cpus: must be a string, not an integer"),
    ("linux.resources.pids.limit", DELETE, "linux.resources.pids.limit: required"),
    ("linux.resources.blockIO.weight", 5, "linux.resources.blockIO.weight: must be an integer from 10 to 1000, not 5"),
    ("linux.resources.blockIO.throttleReadBpsDevice[0].rate", -1,
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate: must be an integer >= 0, not -1"),
    ("linux.resources.devices[0].allow", DELETE, "linux.resources.devices[0].allow: required"),
    ("linux.resources.devices[1].allow", "yes", "linux.resources.devices[1].allow: must be a boolean, not a string"),
    ("linux.resources.devices[1].type", "x", 'linux.resources.devices[1].type: unknown device type "x"'),
    ("linux.resources.devices[1].access", "rwx", 'linux.resources.devices[1].access: "rwx" is not made of r, w and m'),
    ("linux.resources.devices[1].major", -2, "linux.resources.devices[1].major: must be an integer >= -1, not -2"),
    ("linux.cgroupsPath", 5, "linux.cgroupsPath: must be a string, not an integer"),
    ("linux.devices[0].path", "dev/fuse", 'linux.devices[0].path: must be an absolute path, not "dev/fuse"'),
    ("linux.devices[0].type", "x", 'linux.devices[0].type: unknown device type "x"'),
    ("linux.devices[0].major", DELETE, "linux.devices[0].major: required"),
    ("linux.devices[1].minor", "0", "linux.devices[1].minor: must be an integer, not a string"),
    ("linux.maskedPaths[0]", "proc/kcore", 'linux.maskedPaths[0]: must be an absolute path, not "proc/kcore"'),
    ("linux.readonlyPaths[0]", 5, "linux.readonlyPaths[0]: must be a string, not an integer"),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1},
     'linux.sysctl["net.ipv4.ip_forward"]: must be a string, not an integer'),
    ("linux.seccomp.defaultAction", "SCMP_ACT_MAYBE", 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_MAYBE"'),
    ("linux.seccomp.defaultAction", DELETE, "linux.seccomp.defaultAction: required"),
    ("linux.seccomp.architectures[0]", "x86", 'linux.seccomp.architectures[0]: unknown architecture "x86"'),
    ("linux.seccomp.syscalls[0].names", [], "linux.seccomp.syscalls[0].names: must name at least one syscall"),
    ("linux.seccomp.syscalls[0].action", DELETE, "linux.seccomp.syscalls[0].action: required"),
    ("linux.seccomp.syscalls[0].args[0].op", "SCMP_CMP_ISH",
     'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_ISH"'),
    ("linux.rootfsPropagation", "bogus", 'linux.rootfsPropagation: unknown propagation "bogus"'),
    ("annotations", {"a": 1}, 'annotations["a"]: must be a string, not an integer'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    CASES,
    ids=[f"{c[0]}=" + ("DELETE" if c[1] is DELETE else repr(c[1])[:40]) for c in CASES],
)
def test_each_rule_names_the_field(path: str, value: Any, expected: str | tuple[str, ...]) -> None:
    with pytest.raises(SpecError) as caught:
        validate(changed(full_spec(), path, value))
    wanted = [expected] if isinstance(expected, str) else list(expected)
    assert caught.value.problems == wanted
    assert str(caught.value) == "invalid OCI runtime spec: " + "; ".join(wanted)


def test_every_problem_is_listed_in_one_error() -> None:
    spec = changed(changed(full_spec(), "process.cwd", "tmp"), "linux.namespaces[2].type", "foo")
    with pytest.raises(SpecError) as caught:
        validate(spec)
    assert caught.value.problems == [
        'process.cwd: must be an absolute path, not "tmp"',
        'linux.namespaces[2].type: unknown namespace "foo"',
    ]
    assert "\n" not in str(caught.value)  # the CLI prints it as one line
    assert isinstance(caught.value, UsageError) and isinstance(caught.value, MinictrError)


def test_a_spec_that_is_not_an_object() -> None:
    assert problems([]) == ["config: must be an object, not an array"]


def test_a_spec_only_created_may_leave_out_its_process() -> None:
    spec = changed(full_spec(), "process", DELETE)
    assert problems(spec, run=False) == []
    assert problems(changed(full_spec(), "process.args", []), run=False) == []
    assert problems(spec) == ["process: required"]


# --- the runtime refuses a bad spec before it spawns anything ---------------------------------------------------------


def _child_processes() -> set[int]:
    """This process's children, as the kernel lists them."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as handle:
            found |= {int(pid) for pid in handle.read().split()}
    return found


@pytest.mark.root
def test_spawn_refuses_a_bad_propagation_before_the_child_exists(rootfs: str) -> None:
    """Unchecked, "bogus" reached the child and failed there as step "internal" (make_private's ValueError)."""
    spec = isolated_spec(rootfs, ["true"], namespaces=["mount"])
    spec["linux"]["rootfsPropagation"] = "bogus"
    before = _child_processes()
    with pytest.raises(minictr.UsageError) as caught:
        minictr.runtime.process.spawn(spec)
    assert isinstance(caught.value, SpecError)
    assert caught.value.problems == ['linux.rootfsPropagation: unknown propagation "bogus"']
    assert _child_processes() <= before
    spec["linux"]["rootfsPropagation"] = "rslave"  # the same spec with a known value runs
    process = spawn(spec)
    process.start()
    assert process.wait(60) == 0


@pytest.mark.root
def test_run_refuses_a_relative_workdir_and_leaves_nothing(data_root: str, state_root: str) -> None:
    with pytest.raises(SpecError) as caught:
        run("busybox", ["true"], RunOptions(isolation="chroot", workdir="tmp"), data_root=data_root,
            state_root=state_root, capture=True)  # fmt: skip
    assert caught.value.problems == ['process.cwd: must be an absolute path, not "tmp"']
    assert os.listdir(os.path.join(state_root, "containers")) == []


@pytest.mark.root
def test_exec_into_a_container_validates_too(data_root: str, state_root: str) -> None:
    """exec builds its own spec from the running container's: an empty command is refused by name."""
    started = run("busybox", ["sleep", "90"], RunOptions(network="none", detach=True), data_root=data_root,
                  state_root=state_root)  # fmt: skip
    try:
        with pytest.raises(SpecError) as caught:
            exec_in(started.id, [], state_root=state_root)
        assert caught.value.problems == ["process.args: must name the program to run (it is empty)"]
        assert exec_in(started.id, ["true"], state_root=state_root, capture=True).exit_code == 0
    finally:
        remove_container(started.id, data_root=data_root, state_root=state_root)


@pytest.mark.root
def test_the_cli_prints_the_field_on_one_line_and_exits_125(data_root: str, state_root: str) -> None:
    result = run_cli("run", "--isolation", "chroot", "-w", "tmp", "busybox", "true", data_root=data_root,
                     state_root=state_root)  # fmt: skip
    assert result.returncode == 125
    message = 'invalid OCI runtime spec: process.cwd: must be an absolute path, not "tmp"'
    assert result.stderr == f"minictr: error: {message}\n"
