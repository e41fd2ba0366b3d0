"""cgroups: each limit proven by what it does, on this host's layout (and, marked ``cgroups``, again on pure v2).

The tests marked ``cgroups`` run here (v1 or hybrid) and once more inside
the QEMU guest of ``scripts/cgroup2-vm.sh``, on a pure cgroup2 hierarchy:
the same behaviour through the other driver. Unit tests of the conversions
need nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Roots, cli_command, detached

from conftest import cgroup_dirs, run_cli
from minictr.engine import container
from minictr.engine.run_options import RunOptions
from minictr.errors import UsageError
from minictr.kernel import cgroups
from minictr.kernel.cgroups import resources
from minictr.kernel.cgroups.base import plan

# --- conversions and validation (no root needed) ---------------------------------------------------


def test_sizes_are_read_as_docker_reads_them() -> None:
    assert resources.parse_size("512m", "-m") == 512 << 20
    assert resources.parse_size("1G", "-m") == 1 << 30
    assert resources.parse_size("1.5g", "-m") == 3 << 29
    assert resources.parse_size("64kb", "-m") == 64 << 10
    assert resources.parse_size("100", "-m") == 100
    with pytest.raises(UsageError, match=r"^--memory 'abc': invalid size"):
        resources.parse_size("abc", "--memory")


def test_runc_conversions_between_v1_and_v2_units() -> None:
    # runc's own examples: the default share is weight 39, the extremes map to the extremes
    assert [resources.shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 39, 10000]
    assert all(abs(resources.shares_to_weight(resources.weight_to_shares(w)) - w) <= 1 for w in (1, 39, 100, 10000))
    assert [resources.blkio_to_io_weight(w) for w in (10, 500, 1000)] == [1, 4950, 10000]
    assert resources.swap_for_v2(96 << 20, 32 << 20) == 64 << 20
    assert resources.swap_for_v2(-1, 32 << 20) == -1


def test_flags_become_oci_resources() -> None:
    found, nodes = resources.from_flags(memory="32m", cpus="0.5", cpu_shares=512, pids_limit=64, device_rules=False)
    assert found == {
        "memory": {"limit": 32 << 20, "swap": 64 << 20},
        "cpu": {"quota": 50000, "period": 100000, "shares": 512},
        "pids": {"limit": 64},
    }
    assert nodes == []
    assert resources.format_cpuset({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"


@pytest.mark.parametrize(("flags", "message"), [
    ({"memory": "abc"}, "--memory 'abc': invalid size"),
    ({"memory": "1m"}, "--memory 1m: the minimum memory limit is 6MiB"),
    ({"cpus": "-1"}, "--cpus -1: out of range"),
    ({"cpus": "lots"}, "--cpus 'lots': not a number"),
    ({"cpus": "0.5", "cpu_quota": "5000"}, "--cpus: conflicts with --cpu-quota"),
    ({"cpu_period": "10"}, "--cpu-period 10: must be between 1000 and 1000000"),
    ({"cpu_shares": "1"}, "--cpu-shares 1: must be between 2 and 262144"),
    ({"cpuset_cpus": "0-"}, "--cpuset-cpus '0-': invalid list"),
    ({"cpuset_cpus": "4096"}, "--cpuset-cpus 4096: not available"),
    ({"pids_limit": "many"}, "--pids-limit 'many': not an integer"),
    ({"memory": "32m", "memory_reservation": "64m"}, "--memory-reservation 64m: above --memory 32m"),
    ({"memory": "32m", "memory_swap": "16m"}, "--memory-swap 16m: must be at least --memory 32m"),
    ({"memory_swap": "1g"}, "--memory-swap: a swap limit needs a memory limit"),
    ({"blkio_weight": "5"}, "--blkio-weight 5: must be between 10 and 1000"),
    ({"device_write_bps": ["/dev/null:1mb"]}, "--device-write-bps /dev/null: not a block device"),
    ({"device_read_iops": ["/dev/nope"]}, "--device-read-iops '/dev/nope': expected DEVICE:RATE"),
    ({"devices": ["/etc/passwd"]}, "--device /etc/passwd: not a device node"),
])  # fmt: skip
def test_bad_values_name_the_flag_and_the_reason(flags: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        resources.from_flags(**flags)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message), str(caught.value)


def test_cgroups_paths_absolute_relative_and_what_counts_as_ours(tmp_path: pytest.TempPathFactory) -> None:
    mount = str(tmp_path)
    os.makedirs(os.path.join(mount, "existing"))
    assert plan(mount, "/minictr/abc", "/anything") == (f"{mount}/minictr/abc", [f"{mount}/minictr"])
    # relative: below our own cgroup (as runc does); only what does not exist yet is ours to remove
    assert plan(mount, "box/abc", "/existing") == (f"{mount}/existing/box/abc", [f"{mount}/existing/box"])
    with pytest.raises(Exception, match=r"'\.\.' is not allowed"):
        plan(mount, "../escape", "/existing")


def test_a_controller_the_host_lacks_is_refused_before_anything_is_made(tmp_path: pytest.TempPathFactory) -> None:
    # a host whose only v1 hierarchy is memory (the decision is the driver's, on the host's description)
    host = {"layout": "v1", "v1": {"memory": str(tmp_path)}, "v2": {"path": None, "controllers": []}}
    manager = cgroups.new("/minictr/abc", host)
    with pytest.raises(
        UsageError,
        match=r"^--cpus/--cpu-quota: the cpu controller is not available on this host \(cgroup v1 has: memory\)",
    ):
        manager.create({"cpu": {"quota": 50000, "period": 100000}})
    assert os.listdir(tmp_path) == []


# --- behaviour, through the real command line ------------------------------------------------------


def cli(data_root: str, state_root: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real CLI; containers get ``--network none``: these tests are about cgroups (and the cgroup v2
    guest has no bridge module)."""
    if args[:1] == ("run",):
        args = ("run", "--network", "none", *args[1:])
    return run_cli(*args, data_root=data_root, state_root=state_root, timeout=timeout)


def detached_here(data_root: str, state_root: str, *args: str) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """:func:`helpers.detached` on these roots, with ``--network none`` as :func:`cli` gives."""
    return detached(Roots(data_root, state_root), "--network", "none", *args)


@contextlib.contextmanager
def holding_memory(data_root: str, state_root: str, mib: int) -> Iterator[tuple[str, int, Any]]:
    """A detached container (-m 64m) holding ``mib`` MiB in a tmpfs, charged to its cgroup: (id, pid, manager)."""
    script = f"head -c {mib}m /dev/zero > /dev/shm/hold && echo held && exec sleep 60"
    with detached_here(data_root, state_root, "-m", "64m", "busybox", "sh", "-c", script) as (cid, pid):
        manager = container.cgroup_of(cid, state_root)
        deadline = time.monotonic() + 20
        while manager.stats().memory < mib << 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        yield cid, pid, manager


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (/proc/<pid>/stat): the kernel's own measure."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


@pytest.mark.root
@pytest.mark.cgroups
def test_the_oom_killer_kills_at_the_memory_limit_and_is_reported(data_root: str, state_root: str) -> None:
    done = cli(
        data_root, state_root, "run", "-m", "32m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"
    )
    assert done.returncode == 137, done.stderr
    assert "minictr: the container reached its memory limit and was OOM-killed" in done.stderr
    finished = container.run(
        "busybox",
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        RunOptions(memory="32m", network="none"),
        data_root=data_root,
        state_root=state_root,
        capture=True,
    )
    assert (finished.exit_code, finished.oom_killed) == (137, True)
    below = container.run(
        "busybox",
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"],
        RunOptions(memory="32m", network="none"),
        data_root=data_root,
        state_root=state_root,
        capture=True,
    )
    assert (below.exit_code, below.oom_killed) == (0, False)


@pytest.mark.root
@pytest.mark.cgroups
def test_fork_fails_with_eagain_at_the_pids_limit(data_root: str, state_root: str) -> None:
    script = "for i in 1 2 3 4 5 6; do sleep 1 & echo started; done; wait"
    done = cli(data_root, state_root, "run", "--pids-limit", "5", "busybox", "sh", "-c", script)
    # the shell is one of the five: four sleeps start, then fork(2) fails with EAGAIN
    assert done.stdout.count("started") == 4, done
    assert "can't fork: Resource temporarily unavailable" in done.stderr


@pytest.mark.root
@pytest.mark.cgroups
def test_cpus_half_a_core_is_half_a_core(data_root: str, state_root: str) -> None:
    with detached_here(data_root, state_root, "--cpus", "0.5", "busybox", "sh", "-c", "while :; do :; done") as (
        cid,
        pid,
    ):
        time.sleep(0.5)
        start, ticks = time.monotonic(), cpu_ticks(pid)
        time.sleep(3)
        used = (cpu_ticks(pid) - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - start)
        stats = container.cgroup_of(cid, state_root).stats()
    assert 0.3 < used < 0.65, f"a busy loop under --cpus 0.5 used {used:.2f} CPUs"
    assert stats.cpu_limit == 0.5 and stats.cpu_throttled > 0 and stats.cpu_throttled_us > 0


@pytest.fixture
def loop_device() -> Iterator[str]:
    """A loop device over a 16 MiB file in a temporary directory (a block device of the test's own)."""
    if not shutil.which("losetup"):
        pytest.skip("needs losetup (util-linux)")
    directory = tempfile.mkdtemp(prefix="minictr-disk-")
    backing = os.path.join(directory, "disk.img")
    with open(backing, "wb") as handle:
        handle.truncate(16 << 20)
    found = subprocess.run(["losetup", "--find", "--show", backing], capture_output=True, text=True)
    if found.returncode != 0:
        shutil.rmtree(directory)
        pytest.skip(f"no loop device: {found.stderr.strip()}")
    try:
        yield found.stdout.strip()
    finally:
        subprocess.run(["losetup", "-d", found.stdout.strip()], check=False)
        shutil.rmtree(directory)


@pytest.mark.root
@pytest.mark.cgroups
def test_dd_under_a_write_bps_limit_stays_near_it(data_root: str, state_root: str, loop_device: str) -> None:
    # 3 MiB written with O_DIRECT (no page cache to hide in) at 1 MiB/s takes about 3 s; unthrottled, milliseconds
    script = "time dd if=/dev/zero of=/dev/xvdb bs=64k count=48 oflag=direct"
    done = cli(
        data_root,
        state_root,
        "run",
        "--device",
        f"{loop_device}:/dev/xvdb",
        "--device-write-bps",
        f"{loop_device}:1mb",
        "busybox",
        "sh",
        "-c",
        script,
    )
    assert done.returncode == 0, done.stderr
    seconds = re.search(r"real\s+(\d+)m\s*([\d.]+)s", done.stderr)
    assert seconds, done.stderr
    rate = 3 / (int(seconds[1]) * 60 + float(seconds[2]))  # MiB/s
    assert 0.5 < rate < 1.5, f"dd wrote at {rate:.2f} MiB/s under a 1 MiB/s limit"


@pytest.mark.root
@pytest.mark.cgroups
def test_a_denied_device_cannot_be_opened(data_root: str, state_root: str, loop_device: str) -> None:
    # mknod is allowed (as in Docker), opening what the allowlist lacks is not: /dev/mem is 1:1
    script = "mknod /tmp/mem c 1 1 && echo made; head -c1 /tmp/mem; echo > /dev/null && echo null works"
    done = cli(data_root, state_root, "run", "busybox", "sh", "-c", script)
    assert done.stdout.splitlines() == ["made", "null works"]
    assert "/tmp/mem: Operation not permitted" in done.stderr
    # --device gives a device, with only the access asked for
    script = "head -c 1 /dev/xvdb > /dev/null && echo read works; echo x > /dev/xvdb"
    done = cli(data_root, state_root, "run", "--device", f"{loop_device}:/dev/xvdb:r", "busybox", "sh", "-c", script)
    assert done.stdout.strip() == "read works"
    assert "can't create /dev/xvdb: Operation not permitted" in done.stderr


@pytest.mark.root
@pytest.mark.cgroups
@pytest.mark.parametrize(("args", "message"), [
    (["--memory", "abc"], "minictr: error: --memory 'abc': invalid size"),
    (["--cpus", "-1"], "minictr: error: --cpus -1: out of range"),
    (["--cpuset-cpus", "4096"], "minictr: error: --cpuset-cpus 4096: not available"),
])  # fmt: skip
def test_bad_values_are_one_line_and_leave_no_cgroup(
    data_root: str, state_root: str, args: list[str], message: str
) -> None:
    before = cgroup_dirs()
    done = cli(data_root, state_root, "run", *args, "busybox", "true")
    assert done.returncode == 125
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr
    assert cgroup_dirs() - before == set()
    assert os.listdir(os.path.join(state_root, "containers")) == []


@pytest.mark.root
@pytest.mark.cgroups
def test_a_limit_below_current_usage_is_refused(data_root: str, state_root: str) -> None:
    # 20 MiB in a tmpfs inside the container: charged to it, and not reclaimable without swap
    with holding_memory(data_root, state_root, 20) as (cid, pid, manager):
        done = cli(data_root, state_root, "update", "-m", "8m", cid)
        assert done.returncode == 125
        assert re.match(
            r"minictr: error: --memory 8MiB: below the container's current memory usage \(2\d\.?\d*MiB\)", done.stderr
        ), done.stderr
        assert os.path.exists(f"/proc/{pid}")  # refused, not OOM-killed
        assert cli(data_root, state_root, "update", "-m", "48m", cid).returncode == 0
        assert manager.stats().memory_limit == 48 << 20


@pytest.mark.root
@pytest.mark.cgroups
def test_the_container_and_its_execs_are_in_its_own_cgroup_and_it_goes_with_them(
    data_root: str, state_root: str
) -> None:
    with detached_here(data_root, state_root, "--pids-limit", "10", "busybox", "sleep", "60") as (cid, pid):
        manager = container.cgroup_of(cid, state_root)
        assert pid in manager.pids()
        done = cli(data_root, state_root, "exec", cid, "cat", "/proc/self/cgroup")
        # the exec'd program joined the container's cgroup, the root of the container's cgroup namespace
        assert done.stdout and all(line.endswith(":/") for line in done.stdout.splitlines()), done.stdout
        paths = list(manager.dirs.values())
        assert all(os.path.isdir(path) for path in paths)
    assert not any(os.path.exists(path) for path in paths)


@pytest.mark.root
def test_kill_9_of_minictr_leaves_nothing_after_the_next_run(data_root: str, state_root: str) -> None:
    before = cgroup_dirs()
    command = cli_command(
        "run", "--network", "none", "-m", "32m", "busybox", "sleep", "60", data_root=data_root, state_root=state_root
    )
    runner = subprocess.Popen(command)
    deadline = time.monotonic() + 30
    while not (cgroup_dirs() - before) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cgroup_dirs() - before, "the container's cgroup never appeared"
    time.sleep(0.3)
    runner.kill()
    runner.wait()
    assert cli(data_root, state_root, "run", "busybox", "true").returncode == 0  # sweeps what the dead run left
    deadline = time.monotonic() + 10
    while cgroup_dirs() - before and time.monotonic() < deadline:
        container.remove_stale(os.path.join(state_root, "containers"))
        time.sleep(0.05)
    assert cgroup_dirs() - before == set()


@pytest.mark.root
def test_cgroup_parent_places_the_container_and_only_what_it_made_goes(data_root: str, state_root: str) -> None:
    parent = f"/minictr/test-{os.urandom(3).hex()}"
    done = cli(data_root, state_root, "run", "--cgroup-parent", parent, "busybox", "true")
    assert done.returncode == 0, done.stderr
    with detached_here(data_root, state_root, "--cgroup-parent", parent, "busybox", "sleep", "60") as (cid, pid):
        with open(f"/proc/{pid}/cgroup") as handle:
            lines = handle.read().splitlines()
        assert all(line.split(":", 2)[2] == f"{parent}/{cid}" for line in lines), lines
    assert not [d for d in cgroup_dirs() if parent in d]


@pytest.mark.root
def test_bpf_device_program_on_the_unified_hierarchy() -> None:
    """The v2 device filter, on this host's cgroup2 tree (hybrid hosts have one): open is denied, mknod not."""
    from minictr.kernel.cgroups import bpf

    unified = cgroups.layout()["v2"]["path"]
    if not unified:
        pytest.skip("no cgroup2 hierarchy mounted")
    cgroup = os.path.join(unified, "minictr", f"bpf-test-{os.urandom(3).hex()}")
    os.makedirs(cgroup)
    scratch = tempfile.mkdtemp(prefix="minictr-bpf-")
    try:
        bpf.attach_device_filter(cgroup, resources.default_device_rules())
        assert len(bpf.attached(cgroup)) == 1
        script = (
            f"echo $$ > {cgroup}/cgroup.procs; head -c0 /dev/null && echo null; "
            f"mknod {scratch}/mem c 1 1 && echo made; head -c1 {scratch}/mem"
        )
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        assert done.stdout.split() == ["null", "made"]
        assert "Operation not permitted" in done.stderr
    finally:
        os.rmdir(cgroup)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(cgroup))
        shutil.rmtree(scratch)


@pytest.mark.root
def test_the_monitor_follows_a_container_through_an_oom_kill_to_its_end(data_root: str, state_root: str) -> None:
    from xml.dom import minidom

    from minictr.kernel.cgroups.monitor import Monitor

    # awk grows until the OOM killer ends it; the shell lives on a second, so that samples after the kill are
    # certain (the cgroup is removed as soon as the container ends, and a sample may not fall in between)
    awk = 'awk \'BEGIN { while (1) { a[n++] = sprintf("%100000s", ""); if (n % 20 == 0) system("sleep 0.05") } }\''
    grow = f"{awk}; sleep 1"
    with detached_here(data_root, state_root, "-m", "24m", "busybox", "sh", "-c", grow) as (cid, _pid):
        monitor = Monitor(container.cgroup_of(cid, state_root), interval=0.1).start()
        assert monitor.wait(60), "the monitor did not stop when the container ended"
    assert len(monitor.samples) >= 3 and monitor.samples[-1].oom_kills >= 1
    assert max(s.memory for s in monitor.samples) > 16 << 20
    assert re.search(r"OOM kills [1-9]", monitor.text())
    minidom.parseString(monitor.svg())  # one well-formed SVG document


@pytest.mark.root
@pytest.mark.cgroups
def test_the_monitor_takes_no_sample_from_a_removed_cgroup() -> None:
    from minictr.kernel.cgroups.monitor import Monitor

    manager = cgroups.new(cgroups.default_path(f"monitor-test-{os.getpid()}"))
    manager.create({})
    manager.destroy()  # gone before the first read: v1's files would read as zeros
    monitor = Monitor(manager, interval=0.05).start()
    assert monitor.wait(10)
    assert monitor.samples == []


@pytest.mark.root
def test_the_memory_usage_exercise_against_a_real_container(data_root: str, state_root: str) -> None:
    from minictr import tutorial

    with holding_memory(data_root, state_root, 8) as (_, pid, manager):
        assert tutorial.judge_memory_usage(tutorial.reference("memory_usage"), pid, lambda: manager.stats().memory).ok

        def memory_usage(pid: int) -> int:  # the whole host's memory cgroup: the classic mistake
            for name in ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory.current"):
                if os.path.exists(name):
                    with open(name) as handle:
                        return int(handle.read())
            return 0

        verdict = tutorial.judge_memory_usage(memory_usage, pid, lambda: manager.stats().memory)
        assert not verdict.ok, verdict.message
