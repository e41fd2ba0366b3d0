"""Secure by default, proven by attempts: each known escape is tried from inside a container.

A default container must fail every attempt; the same attempt from a
``--privileged`` container shows what the protection was worth (and that
the test could fail). The attempts are made by a small static program,
``helpers/attempt.c``, compiled once per session and bind-mounted read-only
at /t; it never changes the host (files are opened for writing and closed
unwritten, mounts are read-only or vanish with the container).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from conftest import REPO, run_cli
from minictr.kernel.security import capabilities, paths

pytestmark = pytest.mark.root

DEFAULT_CAPS = capabilities.mask(list(capabilities.DEFAULT))


@pytest.fixture(scope="session")
def attempt_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A directory holding ``attempt``, the static escape-attempt program (needs gcc and libc6-dev)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is missing (apt-get install gcc libc6-dev): the escape attempts are a small C program")
    directory = tmp_path_factory.mktemp("attempt")
    source = REPO / "tests" / "helpers" / "attempt.c"
    done = subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(directory / "attempt"), str(source)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return str(directory)


def minictr(data_root: str, state_root: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, data_root=data_root, state_root=state_root)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def stop(data_root: str, state_root: str, container: str) -> None:
    """Remove a detached container (``rm -f``): it is killed, and its cgroup, veth, lease and monitor go."""
    done = minictr(data_root, state_root, "rm", "-f", container, check=False)
    assert done.returncode == 0 and not os.path.exists(os.path.join(state_root, "containers", container)), done.stderr


def status(text: str) -> dict[str, str]:
    """/proc/<pid>/status lines -> {key: value}."""
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


def host_pid() -> Iterator[int]:
    """A process of the host's (this test's own sleep)."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        yield sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.fixture(scope="module")
def sleeper() -> Iterator[int]:
    yield from host_pid()


def host_disk() -> tuple[int, int]:
    """major, minor of the block device holding the host's root."""
    device = os.stat("/").st_dev
    return os.major(device), os.minor(device)


def host_can_open(path_or_dev: tuple[str, int, int]) -> bool:
    """Whether the host's own root may open this device read-only (some VMs refuse even it)."""
    kind, major, minor = path_or_dev
    node = f"/tmp/minictr-probe-{os.getpid()}"
    os.mknod(node, 0o600 | (0o060000 if kind == "b" else 0o020000), os.makedev(major, minor))
    try:
        os.close(os.open(node, os.O_RDONLY))
        return True
    except OSError:
        return False
    finally:
        os.unlink(node)


def attempts(sleeper: int) -> dict[str, str]:
    """name -> the command line of the attempt, inside the container."""
    disk = "{} {}".format(*host_disk())
    return {
        "core_pattern": "/t/attempt open-write /proc/sys/kernel/core_pattern",
        "/proc/sys/vm": "/t/attempt open-write /proc/sys/vm/drop_caches",
        "mount tmpfs": "/t/attempt mount none /tmp/m tmpfs",
        "mount host disk": f"mknod /tmp/disk b {disk} && /t/attempt mount /tmp/disk /tmp/m ext4",
        "open host disk": f"/t/attempt mknod-open b {disk}",
        "/dev/mem": "/t/attempt mknod-open c 1 1",
        "/dev/kmsg": "/t/attempt mknod-open c 1 11",
        "load a module": "/t/attempt module",
        "release_agent": "/t/attempt release-agent /tmp/cg pids",
        "ptrace a host process": f"/t/attempt ptrace {sleeper}",
        "host root via /proc": f"/t/attempt open-read /proc/{sleeper}/root/etc/hostname",
        "user namespace": "/t/attempt unshare-user",
        "keyctl": "/t/attempt keyctl",
        "clone new namespace": "/t/attempt clone 20000",  # CLONE_NEWNS
        "clone3": "/t/attempt clone3",
        "AF_VSOCK socket": "/t/attempt socket 40",
        "/proc/keys": "wc -c < /proc/keys",
    }


def run_attempts(data_root: str, state_root: str, attempt_dir: str, sleeper: int, *flags: str) -> dict[str, str]:
    """Run every attempt in one container; name -> what it printed (``ok`` or an errno name)."""
    table = attempts(sleeper)
    script = "mkdir -p /tmp/m /tmp/cg; " + "; ".join(
        f'echo "{name}=$({command} 2>&1)"' for name, command in table.items()
    )
    done = minictr(
        data_root,
        state_root,
        "run",
        "--network",
        "none",
        *flags,
        "-v",
        f"{attempt_dir}:/t:ro",
        "busybox",
        "sh",
        "-c",
        script,
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def default_results(
    data_root: str, tmp_path_factory: pytest.TempPathFactory, attempt_dir: str, sleeper: int
) -> dict[str, str]:
    return run_attempts(data_root, str(tmp_path_factory.mktemp("run")), attempt_dir, sleeper)


@pytest.fixture(scope="module")
def privileged_results(
    data_root: str, tmp_path_factory: pytest.TempPathFactory, attempt_dir: str, sleeper: int
) -> dict[str, str]:
    return run_attempts(data_root, str(tmp_path_factory.mktemp("run")), attempt_dir, sleeper, "--privileged")


# --- the escape suite: (attempt, what a default container gets, what a privileged one gets) ------------------

#: None: no claim (the host decides); "!EPERM": any answer but a permission refusal (the kernel let it through
#: its permission checks; this host may still have no such device or module support).
ESCAPES = [
    ("core_pattern", "EROFS", "ok"),
    ("/proc/sys/vm", "EROFS", "ok"),
    ("mount tmpfs", "EPERM", "ok"),
    ("mount host disk", "EPERM", "!EPERM"),
    ("/dev/mem", "EPERM", "!EPERM"),
    ("/dev/kmsg", "EPERM", "ok"),
    ("load a module", "EPERM", "!EPERM"),
    ("release_agent", "EPERM", "!EPERM"),  # privileged: the cgroup namespace still hides release_agent (ENOENT)
    ("user namespace", "EPERM", "ok"),
    ("keyctl", "EPERM", "ok"),
    ("clone new namespace", "EPERM", "ok"),
    ("clone3", "ENOSYS", "ok"),
    ("AF_VSOCK socket", "EPERM", "!EPERM"),
    ("/proc/keys", "0", None),
    ("ptrace a host process", "ESRCH", "ESRCH"),  # the pid namespace hides it, privileged or not
    ("host root via /proc", "ENOENT", "ENOENT"),
]


@pytest.mark.parametrize(("name", "default", "privileged"), ESCAPES, ids=[e[0] for e in ESCAPES])
def test_escape_attempt_fails_by_default_and_privileged_gives_it_away(
    name: str, default: str, privileged: str | None, default_results: dict[str, str], privileged_results: dict[str, str]
) -> None:
    assert default_results[name] == default, f"default container: {name} -> {default_results[name]}"
    if privileged == "!EPERM":
        assert privileged_results[name] not in ("EPERM", "EACCES"), f"privileged: {name} -> {privileged_results[name]}"
    elif privileged is not None:
        assert privileged_results[name] == privileged, f"privileged: {name} -> {privileged_results[name]}"


def test_a_host_block_device_cannot_be_opened_by_default(
    default_results: dict[str, str], privileged_results: dict[str, str]
) -> None:
    assert default_results["open host disk"] == "EPERM"  # the device cgroup's allowlist
    if host_can_open(("b", *host_disk())):
        assert privileged_results["open host disk"] == "ok"


# --- capabilities, no_new_privs, seccomp as /proc shows them ----------------------------------------------


def test_default_container_has_dockers_capabilities_no_new_privs_and_one_filter(
    data_root: str, state_root: str
) -> None:
    done = minictr(data_root, state_root, "run", "--network", "none", "busybox", "cat", "/proc/self/status")
    got = status(done.stdout)
    for key in ("CapBnd", "CapPrm", "CapEff"):
        assert int(got[key], 16) == DEFAULT_CAPS, f"{key}: {capabilities.decode(got[key])}"
    assert int(got["CapInh"], 16) == 0 and int(got["CapAmb"], 16) == 0
    assert (got["NoNewPrivs"], got["Seccomp"], got["Seccomp_filters"]) == ("1", "2", "1")


def test_privileged_has_every_capability_of_the_host_and_no_filter(data_root: str, state_root: str) -> None:
    done = minictr(
        data_root, state_root, "run", "--network", "none", "--privileged", "busybox", "cat", "/proc/self/status"
    )
    got = status(done.stdout)
    assert capabilities.decode(got["CapEff"]) == capabilities.host_bounding()
    assert (got["NoNewPrivs"], got["Seccomp"]) == ("0", "0")
    assert "--privileged" in done.stderr and "take over the host" in done.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--cap-drop", "ALL"], []),
        (["--cap-drop", "ALL", "--cap-add", "net_bind_service"], ["CAP_NET_BIND_SERVICE"]),
        (
            ["--cap-drop", "NET_RAW", "--cap-drop", "CAP_MKNOD"],
            [c for c in capabilities.DEFAULT if c not in ("CAP_NET_RAW", "CAP_MKNOD")],
        ),
        (["--cap-add", "SYS_ADMIN"], [*capabilities.DEFAULT, "CAP_SYS_ADMIN"]),
    ],
)
def test_cap_add_and_cap_drop(data_root: str, state_root: str, flags: list[str], expected: list[str]) -> None:
    done = minictr(
        data_root, state_root, "run", "--network", "none", *flags, "busybox", "grep", "CapEff", "/proc/self/status"
    )
    assert sorted(capabilities.decode(done.stdout.split()[1])) == sorted(expected)


def test_cap_add_sys_admin_lets_mount_through_the_filter_too(data_root: str, state_root: str) -> None:
    """Docker's profile follows the capabilities: with CAP_SYS_ADMIN, mount(2) is allowed."""
    done = minictr(data_root, state_root, "run", "--network", "none", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                   "mkdir /tmp/m && mount -t tmpfs none /tmp/m && echo mounted")  # fmt: skip
    assert done.stdout.strip() == "mounted"


def test_unknown_capability_is_a_one_line_error(data_root: str, state_root: str) -> None:
    done = minictr(data_root, state_root, "run", "--cap-add", "FLY", "busybox", "true", check=False)
    assert done.returncode == 125
    assert done.stderr.strip() == "minictr: error: unknown capability 'FLY'"


def test_a_non_root_user_has_no_capabilities_and_a_setuid_binary_does_not_restore_them(
    data_root: str, state_root: str, attempt_dir: str, tmp_path: os.PathLike[str]
) -> None:
    """no_new_privileges: the setuid bit of a root-owned program is ignored; turned off, it works again."""
    program = os.path.join(tmp_path, "attempt")
    shutil.copy(os.path.join(attempt_dir, "attempt"), program)
    os.chown(program, 0, 0)
    os.chmod(program, 0o4755)
    os.chmod(tmp_path, 0o755)  # uid 1000 must reach it
    volume = f"{tmp_path}:/s:ro"
    default = minictr(data_root, state_root, "run", "--network", "none", "-u", "1000", "-v", volume, "busybox",
                      "sh", "-c", "grep CapEff /proc/self/status; /s/attempt euid")  # fmt: skip
    assert default.stdout.split()[1:] == ["0000000000000000", "1000"]
    allowed = minictr(data_root, state_root, "run", "--network", "none", "-u", "1000", "-v", volume,
                      "--security-opt", "no-new-privileges=false", "busybox", "/s/attempt", "euid")  # fmt: skip
    assert allowed.stdout.strip() == "0"


def test_exec_gets_the_containers_capabilities_no_new_privs_and_filter(data_root: str, state_root: str) -> None:
    container = minictr(
        data_root, state_root, "run", "-d", "--network", "none", "--cap-drop", "NET_RAW", "busybox", "sleep", "60"
    ).stdout.strip()
    try:
        done = minictr(data_root, state_root, "exec", container, "cat", "/proc/self/status")
    finally:
        stop(data_root, state_root, container)
    got = status(done.stdout)
    assert int(got["CapEff"], 16) == DEFAULT_CAPS & ~(1 << capabilities.NUMBERS["CAP_NET_RAW"])
    assert (got["NoNewPrivs"], got["Seccomp"], got["Seccomp_filters"]) == ("1", "2", "1")


# --- seccomp profiles ---------------------------------------------------------------------------------------


def test_a_profile_file_in_dockers_format_and_unconfined(
    data_root: str, state_root: str, tmp_path: os.PathLike[str]
) -> None:
    profile = os.path.join(tmp_path, "no-mkdir.json")
    with open(profile, "w") as f:
        json.dump(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
            },
            f,
        )
    denied = minictr(data_root, state_root, "run", "--network", "none", "--security-opt", f"seccomp={profile}",
                     "busybox", "sh", "-c", "mkdir /x; unshare -U true && echo unshared")  # fmt: skip
    assert "Permission denied" in denied.stderr  # errnoRet 13 = EACCES, not the default EPERM
    unconfined = minictr(data_root, state_root, "run", "--network", "none", "--security-opt", "seccomp=unconfined",
                         "busybox", "grep", "^Seccomp:", "/proc/self/status")  # fmt: skip
    assert unconfined.stdout.split() == ["Seccomp:", "0"]


def test_an_unknown_syscall_name_in_a_profile_is_an_error_naming_it(
    data_root: str, state_root: str, tmp_path: os.PathLike[str]
) -> None:
    profile = os.path.join(tmp_path, "typo.json")
    with open(profile, "w") as f:
        json.dump(
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}, f
        )
    done = minictr(data_root, state_root, "run", "--security-opt", f"seccomp={profile}", "busybox", "true", check=False)
    assert done.returncode == 125
    assert "unknown system call 'mkdri'" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- paths, fds, working directory ------------------------------------------------------------------------


def test_masked_and_readonly_paths_as_the_container_sees_them(data_root: str, state_root: str) -> None:
    done = minictr(data_root, state_root, "run", "--network", "none", "busybox", "cat", "/proc/self/mountinfo")
    mounts = {line.split()[4]: line.split() for line in done.stdout.splitlines()}
    for path in paths.READONLY:
        if os.path.exists(path):
            assert "ro" in mounts[path][5].split(","), path
    for path in paths.MASKED:
        if os.path.exists(path):
            assert path in mounts, f"{path} is not masked"


def test_no_host_descriptor_or_directory_leaks_into_the_container(data_root: str, state_root: str) -> None:
    """CVE-2024-21626's class: only stdio is open, and the working directory is inside the root."""
    leak = os.open("/etc/hostname", os.O_RDONLY)  # inheritable would be a bug of ours, not of the caller
    os.set_inheritable(leak, True)
    try:
        done = minictr(data_root, state_root, "run", "--network", "none", "-w", "/tmp", "busybox", "sh", "-c",
                       "ls /proc/self/fd; readlink /proc/self/cwd", check=True)  # fmt: skip
    finally:
        os.close(leak)
    *fds, cwd = done.stdout.split()
    assert set(fds) <= {"0", "1", "2", "3"}  # 3: the directory ls is reading
    assert cwd == "/tmp"


def test_a_volume_on_a_symlink_in_the_image_stays_inside_the_root(rootfs: str, tmp_path: os.PathLike[str]) -> None:
    """CVE-2021-30465's class: mount destinations are resolved inside the root, never through a link out of it."""
    from minictr.engine.container_root import copy_tree
    from minictr.runtime.process.parent import spawn
    from minictr.runtime.spec import bind_volume, isolated_spec

    root, outside, volume = (os.path.join(tmp_path, name) for name in ("root", "outside", "volume"))
    copy_tree(rootfs, root)
    os.mkdir(outside)
    os.mkdir(volume)
    with open(os.path.join(volume, "marker"), "w") as f:
        f.write("volume\n")
    os.symlink(outside, os.path.join(root, "evil"))  # absolute: on the host it leads out of the root
    os.symlink(f"../../../../../../..{outside}/created", os.path.join(root, "evilfile"))  # climbs out, relatively
    volumes = [bind_volume(f"{volume}:/evil"), bind_volume(f"{volume}/marker:/evilfile")]
    spec = isolated_spec(root, ["sh", "-c", "cat /evil/marker /evilfile"], namespaces=["mount", "pid"], volumes=volumes)
    process = spawn(spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.start()
    out, err, code = process.communicate()
    assert (code, out.decode().split()) == (0, ["volume", "volume"]), err
    assert os.listdir(outside) == []  # nothing was created or mounted on the host's side of the links
    assert os.path.isdir(os.path.join(root, outside.lstrip("/")))  # the links were followed inside the root instead


def test_the_runtimes_interpreter_is_out_of_the_containers_reach(rootfs: str, tmp_path: os.PathLike[str]) -> None:
    """CVE-2019-5736's class: until it execs, a container's first process runs a sealed copy of the interpreter.

    Its /proc/<pid>/exe — what a program in the container reaches, and what a ``#!/proc/self/exe``
    script makes the runtime exec — is a memfd that refuses writes, not the host's python.
    """
    from minictr.engine.container_root import copy_tree
    from minictr.runtime.process.parent import spawn
    from minictr.runtime.spec import isolated_spec

    root = os.path.join(tmp_path, "root")
    copy_tree(rootfs, root)
    process = spawn(isolated_spec(root, ["true"], namespaces=["mount", "pid"]))  # set up, waiting for start
    try:
        exe = os.readlink(f"/proc/{process.pid}/exe")
        assert exe.startswith("/memfd:minictr-python"), f"the container's first process runs {exe}"
        kept = os.open(
            f"/proc/{process.pid}/exe", os.O_PATH
        )  # as the attack keeps it, to write once it is no longer busy
        process.start()
        assert process.wait() == 0
        try:
            with open(f"/proc/self/fd/{kept}", "r+b", buffering=0) as handle, pytest.raises(PermissionError):
                handle.write(b"\0")  # only ever the sealed copy (asserted above)
        finally:
            os.close(kept)
    finally:
        process.kill()


# --- the host's loopback stays the host's (CVE-2020-8558) -------------------------------------------------


@pytest.fixture
def bridged(data_root: str, state_root: str, attempt_dir: str) -> Iterator[dict[str, str]]:
    """A container on a network of its own, with the attempt program; its address, the gateway and its MAC."""
    minictr(data_root, state_root, "network", "create", "escape")
    container = minictr(data_root, state_root, "run", "-d", "--network", "escape", "-v", f"{attempt_dir}:/t:ro",
                        "busybox", "sleep", "120").stdout.strip()  # fmt: skip
    try:
        network = json.loads(minictr(data_root, state_root, "network", "inspect", "escape").stdout)[0]
        with open(f"/sys/class/net/{network['Bridge']}/address") as f:
            mac = f.read().strip()
        address = network["Containers"][container[:12]]["IPv4Address"].split("/")[0]
        yield {"id": container, "address": address, "gateway": network["Gateway"], "mac": mac}
    finally:
        stop(data_root, state_root, container)
        minictr(data_root, state_root, "network", "rm", "escape", check=False)


def knock(data_root: str, state_root: str, box: dict[str, str], kind: str, address: str, port: int) -> str:
    """From inside the container: a raw frame to the gateway's MAC, for ``address:port``."""
    done = minictr(data_root, state_root, "exec", box["id"], "/t/attempt", kind, "eth0", box["address"], box["mac"],
                   address, str(port), check=False)  # fmt: skip
    return done.stdout.strip()


def udp_arrives(data_root: str, state_root: str, box: dict[str, str], bind: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((bind, 0))
        server.settimeout(3)
        assert knock(data_root, state_root, box, "udp", bind, server.getsockname()[1]) == "ok"
        try:
            return server.recv(64) == b"knock"
        except TimeoutError:
            return False


def tcp_answers(data_root: str, state_root: str, box: dict[str, str], bind: str) -> bool:
    with socket.socket() as server:
        server.bind((bind, 0))
        server.listen()
        return knock(data_root, state_root, box, "syn", bind, server.getsockname()[1]) == "ok"


def test_a_host_service_on_127001_is_unreachable_from_a_bridge_even_by_raw_frames(
    data_root: str, state_root: str, bridged: dict[str, str]
) -> None:
    # the same frames, addressed to the gateway, arrive: the method works, only loopback is closed
    assert udp_arrives(data_root, state_root, bridged, bridged["gateway"])
    assert tcp_answers(data_root, state_root, bridged, bridged["gateway"])
    assert not udp_arrives(data_root, state_root, bridged, "127.0.0.1")
    assert not tcp_answers(data_root, state_root, bridged, "127.0.0.1")


def test_the_container_cannot_turn_route_localnet_on_in_its_own_namespace(
    data_root: str, state_root: str, bridged: dict[str, str]
) -> None:
    done = minictr(data_root, state_root, "exec", bridged["id"], "/t/attempt", "open-write",
                   "/proc/sys/net/ipv4/conf/eth0/route_localnet", check=False)  # fmt: skip
    assert done.stdout.strip() == "EROFS"


# --- equivalence with a real runtime: podman driving runc, same image, same command -----------------------

#: The three capabilities Docker grants and podman's defaults (containers.conf) no longer do.
DOCKER_ONLY = {"CAP_MKNOD", "CAP_NET_RAW", "CAP_AUDIT_WRITE"}

#: Attempts whose answers come from capabilities, the seccomp profile and the paths: they must agree ...
COMPARED = ["mount tmpfs", "load a module", "clone new namespace", "core_pattern", "/proc/sys/vm", "/proc/keys"]
#: ... except where podman's profile (containers/common) is laxer than Docker's, which minictr follows.
PODMAN_ALLOWS = ["user namespace", "keyctl", "clone3", "AF_VSOCK socket"]


@pytest.fixture(scope="module")
def podman_image(rootfs: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's busybox, imported into podman's store under a name of this module's own."""
    if not shutil.which("podman") or not shutil.which("runc"):
        pytest.skip("podman and runc are needed to compare with a real runtime")
    tar = tmp_path_factory.mktemp("podman") / "rootfs.tar"
    subprocess.run(["tar", "-C", rootfs, "-cf", str(tar), "."], check=True)
    name = f"localhost/minictr-security-{os.getpid()}"
    subprocess.run(["podman", "import", "--change", "ENV PATH=/bin", str(tar), name], check=True, capture_output=True)
    yield name
    subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


def podman_run(image: str, *args: str) -> str:
    command = ["podman", "run", "--rm", "--runtime", "runc", "--network", "none", "--ulimit", "nofile=1024:1024",
               "--ulimit", "nproc=4096:4096", *args[:-1], image, "sh", "-c", args[-1]]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def guarded_paths(mountinfo: str) -> tuple[set[str], set[str]]:
    """(masked, read-only) /proc and /sys paths in a mount table: tmpfs or /null binds; read-only proc binds."""
    masked, readonly = set(), set()
    for line in mountinfo.splitlines():
        fields = line.split()
        point, root, kind = fields[4], fields[3], fields[fields.index("-") + 1]
        if not point.startswith(("/proc/", "/sys/")) or point.startswith("/sys/fs/cgroup"):
            continue
        if root == "/null" or kind == "tmpfs":
            masked.add(point)
        elif kind == "proc" and "ro" in fields[5].split(","):
            readonly.add(point)
    return masked, readonly


def test_a_default_container_matches_podman_with_runc(
    data_root: str, state_root: str, podman_image: str, attempt_dir: str, sleeper: int, default_results: dict[str, str]
) -> None:
    script = "cat /proc/self/status; echo ====; cat /proc/self/mountinfo"
    ours = minictr(data_root, state_root, "run", "--network", "none", "busybox", "sh", "-c", script).stdout
    theirs = podman_run(podman_image, script)
    (our_status, our_mounts), (their_status, their_mounts) = (text.split("====\n") for text in (ours, theirs))
    mine, peer = status(our_status), status(their_status)
    for key in ("CapBnd", "CapPrm", "CapEff"):
        assert set(capabilities.decode(mine[key])) - set(capabilities.decode(peer[key])) == DOCKER_ONLY, key
    for key in ("CapInh", "CapAmb", "Seccomp", "Seccomp_filters"):
        assert mine[key] == peer[key], key
    assert (mine["NoNewPrivs"], peer["NoNewPrivs"]) == ("1", "0")  # a difference by choice (README, Security)
    our_masked, our_readonly = guarded_paths(our_mounts)
    their_masked, their_readonly = guarded_paths(their_mounts)
    assert our_readonly == their_readonly
    assert their_masked - our_masked <= {"/sys/dev/block"}  # podman also hides the host's block device links
    script = "mkdir -p /tmp/m; " + "; ".join(
        f'echo "{n}=$({attempts(sleeper)[n]} 2>&1)"' for n in COMPARED + PODMAN_ALLOWS
    )
    answers = podman_run(podman_image, "-v", f"{attempt_dir}:/t:ro", script)
    podman = dict(line.split("=", 1) for line in answers.splitlines() if "=" in line)
    assert {n: default_results[n] for n in COMPARED} == {n: podman[n] for n in COMPARED}
    assert {n: podman[n] for n in PODMAN_ALLOWS} == dict.fromkeys(PODMAN_ALLOWS, "ok")
    assert all(default_results[n] != "ok" for n in PODMAN_ALLOWS)


# --- read-only root with tmpfs, ulimits ---------------------------------------------------------------------


def test_read_only_root_with_a_tmpfs_ulimits_and_oom_score_also_for_exec(data_root: str, state_root: str) -> None:
    container = minictr(
        data_root,
        state_root,
        "run",
        "-d",
        "--network",
        "none",
        "--read-only",
        "--tmpfs",
        "/tmp:size=1m",
        "--ulimit",
        "nofile=100:200",
        "--oom-score-adj",
        "500",
        "busybox",
        "sleep",
        "60",
    ).stdout.strip()
    try:
        script = (
            "ulimit -n; ulimit -Hn; cat /proc/1/oom_score_adj; touch /tmp/ok && echo tmp-writable; "
            "touch /x 2>/dev/null || echo root-read-only"
        )
        done = minictr(data_root, state_root, "exec", container, "sh", "-c", script)
        mounts = minictr(data_root, state_root, "exec", container, "grep", " /tmp ", "/proc/self/mountinfo").stdout
    finally:
        stop(data_root, state_root, container)
    assert done.stdout.split() == ["100", "200", "500", "tmp-writable", "root-read-only"]
    assert {"nosuid", "nodev", "noexec"} <= set(mounts.split()[5].split(",")) and "size=1024k" in mounts


@pytest.mark.parametrize(("flag", "message"), [
    ("--ulimit=nofile", "NAME=SOFT[:HARD]"),
    ("--ulimit=nofile=10:5", "soft limit is above the hard one"),
    ("--tmpfs=tmp", "must be absolute"),
    ("--security-opt=apparmor=x", "minictr knows no-new-privileges"),
    ("--security-opt=no-new-privileges=maybe", "takes true or false"),
])  # fmt: skip
def test_bad_security_flags_fail_in_one_line(data_root: str, state_root: str, flag: str, message: str) -> None:
    done = minictr(data_root, state_root, "run", flag, "busybox", "true", check=False)
    assert done.returncode == 125 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
