"""containerd drives minictr-oci through its runc v2 shim, as it drives runc.

Each test session starts a containerd of its own: its own ``root``,
``state`` and socket under a temporary directory, the CRI plugin off (it
would serve ports and read the host's CNI files), tagged with an
environment variable so that it and its shims count in the leak check.
``ctr run --runc-binary`` is how a client names the runtime for the
``io.containerd.runc.v2`` shim (the ``BinaryName`` of its options;
containerd's own config names it only for CRI clients), and
``--runc-root`` keeps the runtime's state under the same directory. The
image is the session's busybox, written by ``minictr save`` as an OCI
archive and imported with ``ctr images import``.

``MINICTR_OCI_RUNTIME=runc`` runs the same tests with runc.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_oci import RUNTIME

from conftest import wait_for, wait_until
from minictr.engine.container import image_store
from minictr.engine.images.archive import save

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="containerd runs containers as root here"),
    pytest.mark.skipif(
        shutil.which("containerd") is None or shutil.which("ctr") is None,
        reason="containerd is not installed (apt-get install containerd)",
    ),
]

RUNTIME_PATH = shutil.which(RUNTIME) or RUNTIME
IMAGE = "docker.io/library/busybox:latest"
NAMESPACE = "minictr-test"
#: Plugins a private daemon does without: CRI (ports, CNI), /opt/containerd, snapshotters this host cannot use.
DISABLED = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.aufs"]  # fmt: skip


class Containerd:
    """A private containerd under ``home``, and ``ctr`` pointed at it."""

    def __init__(self, home: pathlib.Path) -> None:
        self.home, self.mark = home, f"containerd-{uuid.uuid4().hex[:8]}"
        self.socket, self.runc_root = home / "containerd.sock", home / "runtime"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """containerd's config.toml (version 2): everything under ``home``."""
        quoted = ", ".join(json.dumps(name) for name in DISABLED)
        return (f'version = 2\nroot = "{self.home}/root"\nstate = "{self.home}/state"\n'
                f"disabled_plugins = [{quoted}]\n"
                f'[grpc]\n  address = "{self.socket}"\n[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
                f'[debug]\n  address = ""\n[metrics]\n  address = ""\n')  # fmt: skip

    def start(self) -> None:
        (self.home / "config.toml").write_text(self.config())
        with open(self.home / "containerd.log", "wb") as log:
            self.process = subprocess.Popen(
                ["containerd", "--config", str(self.home / "config.toml")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "MINICTR_TEST_MARK": self.mark},
            )  # fmt: skip
        assert wait_until(lambda: self.ctr("version", check=False).returncode == 0, timeout=30), self.log()

    def log(self) -> str:
        return (self.home / "containerd.log").read_text(errors="replace")[-3000:]

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)  # fmt: skip
        if check:
            assert done.returncode == 0, f"ctr {args}: {done.returncode} {done.stderr}"
        return done

    def run(self, container_id: str, *command: str, detach: bool = False) -> subprocess.CompletedProcess[str]:
        """``ctr run`` of busybox with the runtime under test, in a cgroup the leak check watches."""
        return self.ctr("run", "--detach" if detach else "--rm", "--runc-binary", RUNTIME_PATH,
                        "--runc-root", str(self.runc_root), "--fifo-dir", str(self.home / "fifo"),
                        "--cgroup", f"/minictr-oci/ctr-{self.mark}-{container_id}",
                        IMAGE, container_id, *command, check=False)  # fmt: skip

    def task_status(self, container_id: str) -> str:
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            name, _, status = line.split()
            if name == container_id:
                return status
        return "gone"

    def runtime_state(self, container_id: str) -> subprocess.CompletedProcess[str]:
        """What the runtime itself says (its ``--root`` is the shim's, per namespace)."""
        return subprocess.run([RUNTIME_PATH, "--root", str(self.runc_root / NAMESPACE), "state", container_id],
                              capture_output=True, text=True)  # fmt: skip

    def remove_everything(self) -> None:
        """Every task killed and deleted, every container and image removed: the shims exit with their tasks."""
        for line in self.ctr("container", "ls", "--quiet", check=False).stdout.split():
            self.ctr("task", "kill", "--signal", "SIGKILL", line, check=False)
            self.ctr("task", "delete", "--force", line, check=False)
            self.ctr("container", "rm", line, check=False)
        self.ctr("images", "rm", IMAGE, check=False)

    def stop(self) -> None:
        if self.process is None:
            return
        self.remove_everything()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def processes(self) -> list[str]:
        """Processes carrying this daemon's mark: containerd and its shims (and what they run, but not containers)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if f"MINICTR_TEST_MARK={self.mark}".encode() not in handle.read().split(b"\0"):
                        continue
                with open(f"/proc/{pid}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                found.append(f"{pid} {stat.partition('(')[2].rpartition(')')[0]}")
        return found

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as handle:
            return [line.split()[4] for line in handle if str(self.home) in line.split()[4]]


def import_busybox(daemon: Containerd, data_root: str) -> None:
    """The session's busybox into containerd's store: ``minictr save``'s OCI archive, read by ``ctr images import``."""
    archive = daemon.home / "busybox.tar"
    save(image_store(data_root), ["busybox"], str(archive))
    daemon.ctr("images", "import", str(archive))
    assert IMAGE in daemon.ctr("images", "ls", "--quiet").stdout.split()


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, data_root: str) -> Iterator[Containerd]:
    daemon = Containerd(tmp_path_factory.mktemp("containerd"))
    daemon.start()
    try:
        import_busybox(daemon, data_root)
        yield daemon
    finally:
        daemon.stop()


def test_run_gives_the_output_and_the_exit_status(containerd: Containerd) -> None:
    done = containerd.run("hello", "echo", "hello from busybox")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from busybox\n"
    assert containerd.run("seven", "sh", "-c", "exit 7").returncode == 7
    assert containerd.ctr("container", "ls", "--quiet").stdout.split() == []  # --rm removed both


def test_a_missing_program_shows_the_runtimes_error(containerd: Containerd) -> None:
    done = containerd.run("missing", "no-such-program")
    assert done.returncode != 0
    assert "executable file not found" in done.stderr  # the shim read the runtime's --log (JSON lines)
    containerd.ctr("container", "rm", "missing", check=False)  # create failed: the container record stays


def test_detached_task_exec_ps_kill_delete(containerd: Containerd) -> None:
    assert containerd.run("long", "sleep", "300", detach=True).returncode == 0
    try:
        assert containerd.task_status("long") == "RUNNING"
        ours: dict[str, Any] = json.loads(containerd.runtime_state("long").stdout)
        assert ours["status"] == "running" and os.path.exists(f"/proc/{ours['pid']}")  # the runtime ran it
        listed = containerd.ctr("task", "ls").stdout
        assert str(ours["pid"]) in listed
        done = containerd.ctr("task", "exec", "--exec-id", "e1", "--fifo-dir", str(containerd.home / "fifo"),
                              "long", "sh", "-c", "echo from-exec; exit 3", check=False)  # fmt: skip
        assert (done.returncode, done.stdout) == (3, "from-exec\n"), done.stderr
        pids = containerd.ctr("task", "ps", "long").stdout.split()
        assert str(ours["pid"]) in pids  # from the runtime's ps --format json
        containerd.ctr("task", "kill", "--signal", "SIGKILL", "long")
        wait_for(lambda: containerd.task_status("long") == "STOPPED", "the task to stop after SIGKILL")
        containerd.ctr("task", "delete", "long")
        assert "does not exist" in containerd.runtime_state("long").stderr
    finally:
        containerd.ctr("task", "delete", "--force", "long", check=False)
        containerd.ctr("container", "rm", "long", check=False)


def test_stopping_everything_leaves_no_daemon_shim_or_mount(tmp_path: pathlib.Path, data_root: str) -> None:
    daemon = Containerd(tmp_path / "c")
    daemon.home.mkdir()
    daemon.start()
    try:
        import_busybox(daemon, data_root)
        assert daemon.run("left", "sleep", "300", detach=True).returncode == 0
        assert any("containerd-shim" in p for p in daemon.processes())  # the shim carries the daemon's mark
        assert daemon.mounts()  # the container's root filesystem (an overlay snapshot)
    finally:
        daemon.stop()
    wait_for(lambda: not daemon.processes(), "containerd and its shim to exit")
    assert daemon.mounts() == []
    assert not os.listdir(daemon.runc_root / NAMESPACE)  # the runtime's state went with the task
