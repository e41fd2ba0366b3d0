"""A small VM beside a container (minictr.vm): the initramfs, the guest, and the measurements, for real.

Every guest is QEMU booting this host's kernel (software emulation where KVM
does not work: a few seconds per boot), with 128 MiB and one CPU; at most two
run at once. No timing is asserted: the figures must be positive and come
from the running instances (the container's cgroup, the QEMU process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from minictr.engine.images.busybox import find_static_busybox
from minictr.errors import HostError
from minictr.vm import initramfs, measure
from minictr.vm.guest import Guest, accelerator, host_kernel, running_guests
from minictr.vm.lines import READY, LineError, LineProcess

BOOT = 180  # seconds a boot may take on a busy host under software emulation

try:
    host_kernel()
    NO_VM = "" if shutil.which("qemu-system-x86_64") else "qemu-system-x86_64 is missing"
except HostError as exc:
    NO_VM = str(exc)
needs_vm = pytest.mark.skipif(bool(NO_VM), reason=f"no VM on this host: {NO_VM}")


vm_processes = running_guests


# --- the initramfs ---------------------------------------------------------------------------------


def test_the_initramfs_is_a_cpio_archive_that_cpio_reads(tmp_path: pytest.TempPathFactory) -> None:
    path = str(tmp_path / "initramfs.gz")  # type: ignore[operator]
    size = initramfs.write(
        path,
        initramfs.busybox_root(
            "#!/bin/busybox sh\n", find_static_busybox(), dirs=["a/b"], files={"payload": b"echo hi\n"}
        ),
    )
    assert size == os.path.getsize(path) > 0
    listing = subprocess.run(
        f"zcat {path} | cpio -t -v --quiet", shell=True, capture_output=True, text=True, check=True
    ).stdout
    lines = {line.split()[-1]: line for line in listing.splitlines()}
    assert {"bin/busybox", "init", "payload", "dev/console", "a", "a/b", "proc", "sys"} <= set(lines)
    assert lines["dev/console"].startswith("crw") and "5," in lines["dev/console"]
    assert lines["init"].startswith("-rwxr-xr-x") and lines["a/b"].startswith("d")
    busybox_size = os.path.getsize(find_static_busybox())
    assert f" {busybox_size} " in lines["bin/busybox"]


def test_module_files_are_resolved_with_their_dependencies_in_load_order() -> None:
    release = host_kernel().release if not NO_VM else os.uname().release
    try:
        found = initramfs.module_files(release, ["9p"])
    except HostError as exc:
        pytest.skip(f"no modules for {release}: {exc}")
    names = [os.path.basename(path) for path in found]
    assert names and names[-1].startswith("9p.ko"), names
    assert any(name.startswith("9pnet.ko") for name in names[:-1]), "9p needs 9pnet, loaded before it"


# --- a line process ---------------------------------------------------------------------------------


def test_a_line_process_gives_stamped_lines_and_says_why_none_came() -> None:
    with LineProcess(["sh", "-c", "echo one; read x; echo got $x; read y"]) as shell:
        when, line = shell.readline(10)
        assert line == "one" and when >= shell.started
        shell.send("two")
        assert shell.readline(10)[1] == "got two"
        with pytest.raises(LineError, match=r"printed no line within 0\.2 s"):
            shell.readline(0.2)
    assert shell.process.poll() is not None
    with LineProcess(["sh", "-c", "exit 3"]) as gone, pytest.raises(LineError, match="status 3"):
        gone.readline(10)


def test_timed_measures_between_the_lines_the_shell_prints() -> None:
    with measure.HostShell(find_static_busybox()) as shell:
        shell.wait_for(READY, 10)
        seconds, said = shell.timed("echo a; sleep 0.3; echo b", 10)
    assert said == ["a", "b"]
    assert seconds >= 0.3


# --- the guest ----------------------------------------------------------------------------------------


@needs_vm
def test_accelerator_says_which_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    accel, why = accelerator()
    assert accel in ("kvm", "tcg") and why
    monkeypatch.setenv("MINICTR_VM_ACCEL", "tcg")
    assert accelerator()[0] == "tcg"


@needs_vm
def test_a_guest_runs_the_payload_on_the_host_kernel_and_leaves_nothing() -> None:
    with Guest(measure.PAYLOAD) as guest:
        guest.wait_for(READY, BOOT)
        assert guest.pid in vm_processes()
        with open(f"/proc/{guest.pid}/cmdline", "rb") as handle:
            assert guest.initramfs.encode() in handle.read()
        assert guest.timed("uname -r", BOOT)[1] == [host_kernel().release]
        assert guest.timed("tr '\\0' ' ' < /proc/1/cmdline; echo", BOOT)[1] == ["/bin/busybox sh /init "]  # PID 1
        assert guest.timed("echo $((6 * 7))", BOOT)[1] == ["42"]
        rss = guest.rss()
        with open(f"/proc/{guest.pid}/status") as handle:
            status = dict(line.split(":", 1) for line in handle)
        assert 0 < rss <= int(status["VmHWM"].split()[0]) * 1024
        # the guest's RAM is in QEMU's resident set: more than a container would ever hold
        assert rss > 32 << 20
        scratch = guest.scratch
    assert guest.pid not in vm_processes()
    assert not os.path.exists(scratch)


@needs_vm
def test_a_guest_that_cannot_boot_says_why() -> None:
    with Guest(measure.PAYLOAD, memory_mib=40) as guest, pytest.raises(LineError, match="the VM"):
        guest.wait_for(READY, BOOT)  # Debian's kernel does not fit in 40 MiB: it panics, QEMU exits
    assert guest.pid not in vm_processes()


# --- the measurements (root: containers) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def comparison(data_root: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[measure.Comparison]:
    if os.geteuid() != 0 or NO_VM:
        pytest.skip("needs root and a VM")
    state = str(tmp_path_factory.mktemp("vm-run"))
    yield measure.compare(data_root, state, loops=20_000, rounds=1, timeout=BOOT)
    assert os.listdir(os.path.join(state, "containers")) == []


@pytest.mark.root
@needs_vm
def test_compare_gives_every_figure_positive(comparison: measure.Comparison) -> None:
    names = [figure.name for figure in comparison.figures]
    assert names == ["first line", "memory", "disk", "CPU work"]
    for figure in comparison.figures:
        assert figure.container > 0 and figure.vm > 0, figure
        assert figure.ratio > 0 and figure.line().startswith(figure.name)
    assert comparison.figure("CPU work").host > 0  # type: ignore[operator]
    assert comparison.accel in ("kvm", "tcg") and comparison.accel_why
    assert comparison.report().count("\n") == len(names)


@pytest.mark.root
@needs_vm
def test_the_container_sees_the_hosts_kernel_and_the_vm_its_own(comparison: measure.Comparison) -> None:
    assert comparison.outputs["container"] == os.uname().release
    assert comparison.outputs["vm"] == comparison.kernel == host_kernel().release


@pytest.mark.root
@needs_vm
def test_disk_figures_are_the_images_layers_and_the_kernel_with_its_initramfs(
    comparison: measure.Comparison, data_root: str
) -> None:
    disk = comparison.figure("disk")
    assert disk.container == measure.image_bytes(data_root)
    kernel = os.path.getsize(host_kernel().path)
    assert kernel < disk.vm < kernel + 2 * os.path.getsize(find_static_busybox())


def _usage(directory: str) -> int:
    for name in ("memory.current", "memory.usage_in_bytes"):
        if os.path.exists(os.path.join(directory, name)):
            with open(os.path.join(directory, name)) as handle:
                return int(handle.read())
    raise AssertionError(f"no memory usage file in {directory}")


@pytest.mark.root
def test_a_containers_memory_is_its_cgroups(data_root: str, state_root: str) -> None:
    with measure.ContainerShell(data_root, state_root) as box:
        box.wait_for(READY, 60)
        pid = int(box.timed("echo $$", 60)[1][0])  # PID 1 inside: the shell
        assert pid == 1
        directories = box.cgroup_dirs()
        memory_dirs = [
            d
            for d in directories
            if os.path.exists(os.path.join(d, "memory.current"))
            or os.path.exists(os.path.join(d, "memory.usage_in_bytes"))
        ]
        assert memory_dirs, directories
        with open(os.path.join(memory_dirs[0], "cgroup.procs")) as handle:
            assert handle.read().split(), "the container's shell is in that cgroup"
        figure = box.memory()
        truth = _usage(memory_dirs[0])
        assert figure > 0 and abs(figure - truth) <= max(truth // 4, 256 << 10)
        assert box.waiter_rss() > 0  # the foreground minictr run, outside that cgroup
    assert os.listdir(os.path.join(state_root, "containers")) == []
    assert not any(os.path.exists(d) for d in directories)


@pytest.mark.root
@needs_vm
def test_density_stops_at_the_cap_or_the_budget_and_leaves_nothing(data_root: str, state_root: str) -> None:
    budget = 256 << 20
    before = set(vm_processes())  # another guest (scripts/cgroup2-vm.sh) may be running
    boxes = measure.density(lambda: measure.ContainerShell(data_root, state_root), "containers", budget, 3, BOOT)
    assert boxes.count == 3 and boxes.stopped_by == "the cap"
    assert all(size > 0 for size in boxes.sizes) and sum(boxes.sizes) <= budget
    small = measure.density(lambda: Guest(measure.PAYLOAD), "VMs", 64 << 20, 2, BOOT)
    assert small.count == 0 and small.stopped_by == "the budget"  # one guest alone holds more than 64 MiB
    figure = measure.density_figure(boxes, measure.Density("VMs", budget, 2, [200 << 20], "the budget"))
    assert figure.more_is_better and figure.ratio == boxes.projected / 1
    assert os.listdir(os.path.join(state_root, "containers")) == []
    assert set(vm_processes()) <= before


# --- plain figures ------------------------------------------------------------------------------------------


def test_overhead_and_ratios() -> None:
    assert measure.cpu_overhead(1.1, 1.0) == pytest.approx(10)
    assert measure.Figure("memory", "bytes", 1 << 20, 100 << 20).ratio == 100
    assert "100.0x" in measure.Figure("memory", "bytes", 1 << 20, 100 << 20).line()
    dense = measure.Figure("density", "instances", 1000, 2, more_is_better=True)
    assert dense.ratio == 500 and "container / VM" in dense.line()


def test_distribution_bytes_sums_required_and_important_packages(tmp_path: pytest.TempPathFactory) -> None:
    status = tmp_path / "status"  # type: ignore[operator]
    status.write_text(
        "Package: a\nStatus: install ok installed\nPriority: required\nInstalled-Size: 10\n\n"
        "Package: b\nStatus: install ok installed\nPriority: optional\nInstalled-Size: 99\n\n"
        "Package: c\nStatus: deinstall ok config-files\nPriority: important\nInstalled-Size: 7\n\n"
        "Package: d\nStatus: install ok installed\nPriority: important\nInstalled-Size: 5\n"
        "Description: x\n more: text\n"
    )
    assert measure.distribution_bytes(str(status)) == (15 * 1024, 2)
    if os.path.exists("/var/lib/dpkg/status"):
        size, count = measure.distribution_bytes()
        assert size > 10 << 20 and count > 10


# --- containerd (notebook 12's last part) ------------------------------------------------------------------


@pytest.mark.root
def test_a_private_containerd_runs_busybox_through_runc_and_leaves_nothing(
    data_root: str, tmp_path: pytest.TempPathFactory
) -> None:
    from minictr.tutorial import containerd

    lacking = containerd.missing()
    if lacking:
        pytest.skip(lacking)
    run_dir_existed = os.path.exists(containerd.RUN_DIR)
    place = str(tmp_path / "containerd")  # type: ignore[operator]
    archive = str(tmp_path / "busybox.tar")  # type: ignore[operator]
    saved = subprocess.run(
        [sys.executable, "-m", "minictr.cli", "--data-root", data_root, "save", "-o", archive, "busybox"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr
    with containerd.PrivateContainerd(place) as daemon:
        assert daemon.import_busybox(archive) == containerd.IMAGE
        done = daemon.run(shutil.which("runc") or "runc", "sh", "-c", "uname -r; cat /proc/1/cgroup")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == os.uname().release
        leaf = next(line.rsplit(":", 1)[1] for line in lines[1:] if ":memory:" in line or line.startswith("0::"))
        assert leaf.startswith("/nb12-")  # its own cgroup leaf, named by the notebook
        assert daemon.processes()  # the daemon runs
    assert daemon.processes() == []
    assert not os.path.exists(place)
    assert os.path.exists(containerd.RUN_DIR) == run_dir_existed
    with open("/proc/self/mountinfo") as handle:
        assert place not in handle.read()
    assert not any(
        os.path.exists(os.path.join(root, leaf.lstrip("/")))
        for root in {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup"}
    )
