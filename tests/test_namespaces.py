"""Each namespace isolates one thing — proven from both sides, including what must fail.

Inside, a container reports what it sees; outside, the host checks through
``/proc`` that its own view did not change (its mounts, hostname, IPC objects,
processes, interfaces, ids, clocks). Where isolation means something must not
work (a signal to a host process, an escape from the root, a write to a
read-only mount), the test makes it fail for real.

User namespaces map the container's root to an unprivileged host uid, which
must be able to walk through the state and data roots: this module keeps both
under a world-traversable directory of its own instead of pytest's private
``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conftest import kill_9_of_a_foreground_run_leaks_nothing, remove_all, run_cli, wait_until
from minictr.engine import container, logs
from minictr.engine.container import image_store
from minictr.engine.images.busybox import build_busybox_image
from minictr.kernel.security import paths as security_paths
from minictr.runtime import chroot
from minictr.runtime.process.channel import ProtocolError
from minictr.runtime.process.parent import call
from minictr.runtime.spec import isolated_spec

pytestmark = pytest.mark.root

#: What a container's /dev holds and nothing more: char devices (major, minor) and links.
STANDARD_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
STANDARD_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
STANDARD_DIRS = {"pts", "shm", "mqueue"}
#: The mount points of a default container, as its own mountinfo lists them.
STANDARD_MOUNTS = {"/": "overlay", "/proc": "proc", "/dev": "tmpfs", "/dev/pts": "devpts", "/dev/shm": "tmpfs", "/dev/mqueue": "mqueue", "/sys": "sysfs"}
#: Files bind-mounted from the container's directory (whose file system depends on the host).
NAME_FILES = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"}


def kinds_besides_name_files(table: dict[str, tuple[str, list[str]]]) -> dict[str, str]:
    """Mount point -> type, once the three /etc files minictr writes and the masked and read-only
    /proc and /sys paths (tests/test_security.py) are checked to be there."""
    assert NAME_FILES <= set(table)
    guarded = {p for p in (*security_paths.MASKED, *security_paths.READONLY) if os.path.exists(p)}
    assert guarded <= set(table)
    return {point: kind for point, (kind, _) in table.items() if point not in NAME_FILES | guarded}
SYSTEM_PYTHON = "/usr/bin/python3.11"
NOBODY = 65534


# --- roots a user-namespaced root can walk through -----------------------------------------


@pytest.fixture(scope="session")
def open_base() -> Iterator[str]:
    """A directory under /tmp that every uid may traverse (mode 0711), removed at the end."""
    base = tempfile.mkdtemp(prefix="minictr-ns-", dir="/tmp")
    os.chmod(base, 0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def open_data_root(open_base: str) -> str:
    """A data root holding the busybox image, traversable by the uids containers are mapped to."""
    data = os.path.join(open_base, "data")
    os.mkdir(data)
    os.chmod(data, 0o711)
    build_busybox_image(image_store(data))
    return data


@dataclass
class Roots:
    """The data root and this test's own state root; ``cli`` runs the real ``minictr`` with both."""

    data: str
    state: str

    def cli(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, data_root=self.data, state_root=self.state, **kwargs)

    @property
    def containers(self) -> str:
        return os.path.join(self.state, "containers")


@pytest.fixture
def roots(open_base: str, open_data_root: str) -> Iterator[Roots]:
    state = tempfile.mkdtemp(prefix="run-", dir=open_base)
    os.chmod(state, 0o711)
    yield Roots(open_data_root, state)
    remove_all(state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def open_dir(open_base: str) -> Iterator[str]:
    """A directory any uid may write in (a bind-mount source for user-namespaced containers)."""
    path = tempfile.mkdtemp(prefix="vol-", dir=open_base)
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- helpers -------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict (empty when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return {key: value.strip() for key, _, value in (line.partition(":") for line in handle)}
    except (FileNotFoundError, ProcessLookupError):
        return {}


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (zombies included), as the host numbers them."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        return []


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has finished)."""
    return proc_status(pid).get("State", "Z").split()[0] not in ("Z", "X")


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read()


def stop(roots: Roots, container_id: str, pid: int) -> None:
    """``rm -f`` a detached container: its PID 1 is gone, and its directory."""
    removed = roots.cli("rm", "-f", container_id)
    assert removed.returncode == 0, removed.stderr
    assert not alive(pid), f"container {container_id} (pid {pid}) outlived rm -f"
    assert not os.path.exists(os.path.join(roots.containers, container_id))


@contextlib.contextmanager
def detached(roots: Roots, *run_args: str, command: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """``minictr run -d RUN_ARGS...``: yield (id, host pid of its PID 1); kill it afterwards."""
    result = roots.cli("run", "-d", *run_args, *(command or []))
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    pid = container.read_state(os.path.join(roots.containers, container_id))["pid"]
    try:
        yield container_id, pid
    finally:
        stop(roots, container_id, pid)


def container_log(roots: Roots, container_id: str) -> str:
    """What a detached container wrote to its stdout and stderr so far (from its json-file log)."""
    entries, _ = logs.read_entries(os.path.join(roots.containers, container_id))
    return "".join(entry["log"] for entry in entries)


def exec_cli(roots: Roots, container_id: str, *command: str) -> subprocess.CompletedProcess[str]:
    """``minictr exec`` through the real command line."""
    return roots.cli("exec", container_id, *command)


def host_mounts() -> set[tuple[str, str]]:
    """The host's mounts as (mount point, source) pairs."""
    with open("/proc/self/mountinfo") as handle:
        return {(line.split()[4], line.split(" - ")[1].split()[1]) for line in handle}


def mount_table(mountinfo: str) -> dict[str, tuple[str, list[str]]]:
    """mount point -> (filesystem type, mount options), from mountinfo text."""
    table = {}
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        table[fields.split()[4]] = (rest.split()[0], fields.split()[5].split(","))
    return table


def interfaces(net_dev: str) -> list[str]:
    """Interface names from ``/proc/net/dev`` text."""
    return sorted(line.split(":")[0].strip() for line in net_dev.splitlines()[2:] if ":" in line)


# --- every kind at once --------------------------------------------------------------------


def test_a_container_gets_new_namespaces_of_every_default_kind(roots: Roots) -> None:
    kinds = ("mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time")
    host = {kind: os.readlink(f"/proc/self/ns/{kind}") for kind in kinds}
    with detached(roots, "busybox", command=["sleep", "30"]) as (_, pid):
        inside = {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds}
    with detached(roots, "--network", "host", "busybox", command=["sleep", "30"]) as (_, pid):
        host_network = {kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds}
    assert [kind for kind in kinds if inside[kind] == host[kind]] == ["user", "time"]  # both are opt-in
    assert [kind for kind in kinds if host_network[kind] == host[kind]] == ["net", "user", "time"]


# --- mount ---------------------------------------------------------------------------------


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
    assert all(d.startswith(f"{roots.data}/layers/") for d in lowerdirs[1:])  # the image's layers, below the container's changes
    assert {point for point, _ in host_mounts()} - set(STANDARD_MOUNTS)  # the host has others, which stay outside


def test_mount_dev_holds_exactly_the_standard_nodes_and_links(roots: Roots) -> None:
    script = 'cd /dev && for f in *; do if [ -L "$f" ]; then echo "$f link $(readlink "$f")"; ' \
             'elif [ -c "$f" ]; then echo "$f char $(stat -c %t:%T "$f")"; else echo "$f $(stat -c %F "$f")"; fi; done'  # fmt: skip
    result = roots.cli("run", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    seen = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in result.stdout.splitlines()}
    expected = {name: f"char {major:x}:{minor:x}" for name, (major, minor) in STANDARD_DEVICES.items()}
    expected |= {name: f"link {target}" for name, target in STANDARD_LINKS.items()}
    expected |= {name: "directory" for name in STANDARD_DIRS}
    assert seen == expected
    host_only = sorted(set(os.listdir("/dev")) - set(expected))[0]  # the host has more devices ...
    missing = roots.cli("run", "busybox", "ls", f"/dev/{host_only}")
    assert missing.returncode != 0 and "No such file or directory" in missing.stderr  # ... the container does not


def test_mount_sys_is_read_only(roots: Roots) -> None:
    # EROFS comes only from a read-only mount (a writable sysfs refuses these with other errors)
    result = roots.cli("run", "busybox", "sh", "-c", "touch /sys/minictr-test; mkdir /sys/kernel/minictr-test; ls /sys/kernel >/dev/null && echo read-ok")
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
    result = roots.cli("run", "--read-only", "-v", f"{open_dir}:/vol", "busybox", "sh", "-c", "touch /etc/x; mkdir /newdir; touch /vol/ok && echo vol-ok")
    assert result.stdout == "vol-ok\n"  # a read-write volume stays writable
    assert result.stderr.count("Read-only file system") == 2, result.stderr
    assert os.path.exists(os.path.join(open_dir, "ok"))
    writable = roots.cli("run", "busybox", "sh", "-c", "touch /etc/x && echo ok")  # without --read-only it works
    assert writable.stdout == "ok\n"


# --- uts -----------------------------------------------------------------------------------


def test_uts_hostname_and_domainname_are_the_containers_own(roots: Roots) -> None:
    """Changing the name inside needs CAP_SYS_ADMIN, which a default container lacks (as with Docker)."""
    host_name, host_domain = socket.gethostname(), read("/proc/sys/kernel/domainname")
    refused = roots.cli("run", "busybox", "hostname", "changed-inside")
    assert refused.returncode != 0 and "not permitted" in refused.stderr
    result = roots.cli("run", "-h", "inside-name", "--domainname", "inside.example", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                       "hostname; cat /proc/sys/kernel/domainname; hostname changed-inside && hostname")  # fmt: skip
    assert result.stdout.split() == ["inside-name", "inside.example", "changed-inside"]
    assert socket.gethostname() == host_name != "changed-inside"
    assert read("/proc/sys/kernel/domainname") == host_domain


# --- ipc -----------------------------------------------------------------------------------

#: Creates/removes a SysV shared memory segment with a key and lists the keys there are,
#: in the IPC namespace of the given pid (0: the host's) — run as a separate process.
_SHM_HELPER = r"""
import ctypes, sys
from minictr.kernel.namespaces import join_all
pid, action, key = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if pid:
    join_all(pid, ["ipc"])
libc = ctypes.CDLL("libc.so.6", use_errno=True)
IPC_CREAT, IPC_EXCL, IPC_RMID = 0o1000, 0o2000, 0
if action == "create" and libc.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o600) < 0:
    sys.exit(f"shmget: errno {ctypes.get_errno()}")
if action == "remove" and libc.shmctl(libc.shmget(key, 0, 0), IPC_RMID, None) < 0:
    sys.exit(f"shmctl: errno {ctypes.get_errno()}")
with open("/proc/sysvipc/shm") as handle:
    print(" ".join(line.split()[0] for line in handle.readlines()[1:]))
"""


def shm(pid: int, action: str, key: int = 0) -> set[int]:
    """Do ``action`` in ``pid``'s IPC namespace (0: the host's); return the segment keys seen there."""
    result = subprocess.run([sys.executable, "-c", _SHM_HELPER, str(pid), action, str(key)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return {int(k) for k in result.stdout.split()}


def test_ipc_sysv_shared_memory_is_per_container(roots: Roots) -> None:
    host_key, inside_key = random.sample(range(1 << 20, 1 << 30), 2)
    shm(0, "create", host_key)
    try:
        with detached(roots, "busybox", command=["sleep", "30"]) as (_, first), detached(roots, "busybox", command=["sleep", "30"]) as (_, second):
            assert inside_key in shm(first, "create", inside_key)
            first_sees, second_sees, host_sees = shm(first, "list"), shm(second, "list"), shm(0, "list")
    finally:
        shm(0, "remove", host_key)
    assert inside_key in first_sees and host_key not in first_sees
    assert host_key in host_sees and inside_key not in host_sees
    assert second_sees == set()


def test_ipc_message_queues_are_per_container(roots: Roots) -> None:
    make_queue = ["sh", "-c", "touch /dev/mqueue/minictr-queue && exec sleep 30"]
    with detached(roots, "busybox", command=make_queue) as (_, first), detached(roots, "busybox", command=["sleep", "30"]) as (_, second):
        assert wait_until(lambda: os.path.exists(f"/proc/{first}/root/dev/mqueue/minictr-queue"))
        second_queues = os.listdir(f"/proc/{second}/root/dev/mqueue")
    assert second_queues == []
    assert not os.path.exists("/dev/mqueue/minictr-queue")  # the host's (where mounted) has none either


# --- pid -----------------------------------------------------------------------------------


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
    command = [sys.executable, "-m", "minictr.cli", "--data-root", roots.data, "--root", roots.state, "run", "busybox", "sleep", "30"]
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
    command = [sys.executable, "-m", "minictr.cli", "--data-root", roots.data, "--root", roots.state, "run", "--init", "busybox", "sleep", "30"]
    cli = subprocess.Popen(command, text=True)
    try:
        _foreground_pid_1(cli, "sleep", init=True)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(10) == 143
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


# --- network -------------------------------------------------------------------------------


class HostListener:
    """A TCP server on the host's 127.0.0.1 that counts connections and closes each at once."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def host_listener() -> Iterator[HostListener]:
    listener = HostListener()
    yield listener
    listener.close()


def test_network_none_has_only_loopback_and_it_is_up(roots: Roots, host_listener: HostListener) -> None:
    port = host_listener.port
    result = roots.cli("run", "--network", "none", "busybox", "sh", "-c", f"cat /proc/net/dev; echo ==; ip -o link; timeout 5 nc 127.0.0.1 {port} </dev/null; echo nc=$?")
    net_dev, _, rest = result.stdout.partition("==\n")
    assert interfaces(net_dev) == ["lo"]
    links = [line for line in rest.splitlines() if ": <" in line]
    assert len(links) == 1 and links[0].split()[1] == "lo:" and ",UP," in links[0]
    assert "nc=1" in result.stdout and "Connection refused" in result.stderr  # its 127.0.0.1 is not the host's
    assert host_listener.accepted == 0
    assert len(interfaces(read("/proc/net/dev"))) >= 1


def test_network_host_shares_the_hosts_interfaces(roots: Roots, host_listener: HostListener) -> None:
    port = host_listener.port
    result = roots.cli("run", "--network", "host", "busybox", "sh", "-c", f"cat /proc/net/dev; timeout 5 nc 127.0.0.1 {port} </dev/null; echo nc=$?")
    assert interfaces(result.stdout) == interfaces(read("/proc/net/dev"))
    assert "nc=0" in result.stdout
    assert host_listener.accepted == 1


# --- user ----------------------------------------------------------------------------------


def test_userns_private_maps_root_to_uid_100000(roots: Roots) -> None:
    result = roots.cli("run", "--userns", "private", "busybox", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines == [["0", "100000", "65536"], ["0", "100000", "65536"], ["0"], ["0"]]


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
    result = roots.cli("run", "--uidmap", "0:200000:1000", "-v", f"{open_dir}:/vol", "busybox", "sh", "-c", "cat /proc/self/uid_map; touch /vol/f")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "200000", "1000"]
    assert os.stat(os.path.join(open_dir, "f")).st_uid == 200000


def test_uidmap_malformed_is_refused_with_125(roots: Roots) -> None:
    result = roots.cli("run", "--uidmap", "0:200000", "busybox", "true")
    assert result.returncode == 125
    assert result.stderr == "minictr: error: --uidmap/--gidmap: '0:200000' is not CONTAINER_ID:HOST_ID:SIZE (three numbers, size > 0)\n"
    assert not os.path.isdir(roots.containers) or os.listdir(roots.containers) == []


# --- cgroup --------------------------------------------------------------------------------


@pytest.fixture
def pids_cgroup() -> Iterator[str]:
    """A child of this process's cgroup in the v1 ``pids`` hierarchy, removed afterwards."""
    own = next((line.split(":", 2)[2].strip() for line in read("/proc/self/cgroup").splitlines() if line.split(":")[1] == "pids"), None)
    if own is None or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("needs a cgroup v1 pids hierarchy at /sys/fs/cgroup/pids")
    path = os.path.join("/sys/fs/cgroup/pids", own.lstrip("/"), f"minictr-test-{os.urandom(4).hex()}")
    os.mkdir(path)
    try:
        yield path
    finally:
        wait_until(lambda: not read(os.path.join(path, "cgroup.procs")).strip(), timeout=10)
        os.rmdir(path)


def test_cgroup_namespace_roots_the_tree_at_the_containers_cgroup(roots: Roots, pids_cgroup: str) -> None:
    # minictr runs in a test cgroup of its own; the container still gets its own cgroup, /minictr/<id>
    command = [sys.executable, "-m", "minictr.cli", "--data-root", roots.data, "--root", roots.state,
               "run", "-d", "busybox", "sh", "-c", "cat /proc/self/cgroup; exec sleep 30"]  # fmt: skip
    result = subprocess.run(["sh", "-c", f'echo $$ > {pids_cgroup}/cgroup.procs && exec "$@"', "sh", *command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    pid = container.read_state(os.path.join(roots.containers, container_id))["pid"]
    try:
        assert wait_until(lambda: container_log(roots, container_id).endswith("\n"))
        inside = container_log(roots, container_id).splitlines()
        host_view = read(f"/proc/{pid}/cgroup").splitlines()
    finally:
        stop(roots, container_id, pid)
    assert inside and all(line.endswith(":/") for line in inside), inside
    assert [line.split(":", 2)[2] for line in host_view if line.split(":")[1] == "pids"] == [f"/minictr/{container_id}"]


# --- time ----------------------------------------------------------------------------------


def test_timens_clocks_start_near_zero(roots: Roots) -> None:
    host_uptime = float(read("/proc/uptime").split()[0])
    with detached(roots, "--timens", "busybox", command=["sh", "-c", "cat /proc/uptime; exec sleep 30"]) as (container_id, pid):
        assert wait_until(lambda: container_log(roots, container_id).endswith("\n"))
        offsets = {line.split()[0]: int(line.split()[1]) for line in read(f"/proc/{pid}/timens_offsets").splitlines()}
        time_ns = os.readlink(f"/proc/{pid}/ns/time")
        inside_uptime = float(container_log(roots, container_id).split()[0])
    assert inside_uptime < 60
    assert offsets["monotonic"] < 0 and offsets["boottime"] < 0
    assert abs(offsets["boottime"]) == pytest.approx(host_uptime, abs=60)
    if host_uptime >= 120:
        assert float(read("/proc/uptime").split()[0]) > inside_uptime + 60  # the host's clock was not moved
    assert time_ns != os.readlink("/proc/self/ns/time")
    assert all(int(line.split()[1]) == 0 for line in read("/proc/self/timens_offsets").splitlines())


# --- exec ----------------------------------------------------------------------------------


def test_exec_joins_every_namespace_of_the_container(roots: Roots) -> None:
    kinds = ["cgroup", "ipc", "mnt", "net", "pid", "uts"]
    with detached(roots, "-h", "exec-target", "busybox", command=["sleep", "30"]) as (container_id, pid):
        hostname = exec_cli(roots, container_id, "hostname")
        ps = exec_cli(roots, container_id, "ps", "-o", "pid,comm")
        links = exec_cli(roots, container_id, "sh", "-c", "; ".join(f"readlink /proc/self/ns/{kind}" for kind in kinds))
        expected = [os.readlink(f"/proc/{pid}/ns/{kind}") for kind in kinds]
    assert hostname.stdout == "exec-target\n"
    assert ["1", "sleep"] in [line.split() for line in ps.stdout.splitlines()]
    assert str(pid) not in ps.stdout.split()
    assert links.stdout.split() == expected


def test_exec_of_a_missing_program_exits_127(roots: Roots) -> None:
    with detached(roots, "busybox", command=["sleep", "30"]) as (container_id, _):
        result = exec_cli(roots, container_id, "no-such-program")
    assert result.returncode == 127
    assert 'exec: "no-such-program": executable file not found in $PATH' in result.stderr


def test_exec_into_an_unknown_container_exits_125(roots: Roots) -> None:
    result = roots.cli("exec", "0123456789ab", "true")
    assert result.returncode == 125
    assert result.stderr == "minictr: error: no such container: '0123456789ab'\n"


def test_exec_succeeds_every_time(roots: Roots) -> None:
    with detached(roots, "busybox", command=["sleep", "30"]) as (container_id, _):
        for attempt in range(100):  # a start-up race here once failed a few percent of execs
            finished = container.exec_in(container_id, ["true"], state_root=roots.state, capture=True)
            assert finished.exit_code == 0, f"attempt {attempt}"


# --- rootless ------------------------------------------------------------------------------


@pytest.fixture
def rootless_env(open_base: str) -> Iterator[dict[str, str]]:
    """An environment for running minictr as uid 65534: a readable copy of the package, roots it owns."""
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"needs {SYSTEM_PYTHON} (any user can run it, unlike the project's virtualenv)")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop to another uid")
    home = tempfile.mkdtemp(prefix="rootless-", dir=open_base)
    os.chmod(home, 0o755)
    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "minictr")
    shutil.copytree(package, os.path.join(home, "src", "minictr"), ignore=shutil.ignore_patterns("__pycache__"))
    for directory, dirs, files in os.walk(os.path.join(home, "src")):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    for name in ("run", "data"):
        os.mkdir(os.path.join(home, name))
        os.chown(os.path.join(home, name), NOBODY, NOBODY)
    yield {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": home, "PYTHONPATH": os.path.join(home, "src"),
           "MINICTR_ROOT": os.path.join(home, "run"), "MINICTR_DATA_ROOT": os.path.join(home, "data")}  # fmt: skip
    remove_all(os.path.join(home, "run"))
    shutil.rmtree(home, ignore_errors=True)


def run_rootless(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", SYSTEM_PYTHON, "-m", "minictr.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd="/")


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
