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

``MINICTR_TEST_RUNTIME=runc`` runs the same tests with runc.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import RUNTIME

from conftest import wait_for
from minictr.engine.container import image_store
from minictr.engine.images.archive import save
from minictr.tutorial import containerd

pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(containerd.missing()), reason=containerd.missing())]

RUNTIME_PATH = shutil.which(RUNTIME) or RUNTIME
IMAGE, NAMESPACE = containerd.IMAGE, containerd.NAMESPACE


class Containerd(containerd.PrivateContainerd):
    """Notebook 12's private containerd, running the runtime under test, with what the tests look at."""

    def __init__(self, home: pathlib.Path) -> None:
        super().__init__(str(home))
        self.home, self.tag = home, uuid.uuid4().hex[:8]
        self.runc_root = home / "runtime"

    def check(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.ctr(*args)
        assert done.returncode == 0, f"ctr {args}: {done.returncode} {done.stderr}"
        return done

    def run(self, container_id: str, *command: str, detach: bool = False) -> subprocess.CompletedProcess[str]:  # type: ignore[override]
        """``ctr run`` of busybox with the runtime under test, in a cgroup the leak check watches."""
        return self.ctr("run", "--detach" if detach else "--rm", "--runc-binary", RUNTIME_PATH,
                        "--runc-root", str(self.runc_root), "--fifo-dir", str(self.home / "fifo"),
                        "--cgroup", f"/minictr-oci/ctr-{self.tag}-{container_id}",
                        IMAGE, container_id, *command)  # fmt: skip

    def run_in_a_terminal(self, container_id: str, *command: str) -> subprocess.CompletedProcess[str]:
        """``ctr run -t`` on a pty of its own (``script``): the shim takes the pty master from the console socket."""
        ctr = ["ctr", "--address", self.socket, "--namespace", NAMESPACE, "run", "--rm", "--tty",
               "--runc-binary", RUNTIME_PATH, "--runc-root", str(self.runc_root),
               "--fifo-dir", str(self.home / "fifo"), "--cgroup", f"/minictr-oci/ctr-{self.tag}-{container_id}",
               IMAGE, container_id, *command]  # fmt: skip
        return subprocess.run(["script", "--quiet", "--return", "--command", shlex.join(ctr), "/dev/null"],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip

    def task_status(self, container_id: str) -> str:
        for line in self.check("task", "ls").stdout.splitlines()[1:]:
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
        for name in self.ctr("container", "ls", "--quiet").stdout.split():
            self.ctr("task", "kill", "--signal", "SIGKILL", name)
            self.ctr("task", "delete", "--force", name)
            self.ctr("container", "rm", name)
        self.ctr("images", "rm", IMAGE)

    def stop(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            self.remove_everything()
        super().stop(timeout)

    def shims(self) -> list[str]:
        """The shims still running for this daemon."""
        found = []
        for pid in self.processes():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/comm") as handle:
                if handle.read().startswith("containerd-shim"):
                    found.append(str(pid))
        return found

    def mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as handle:
            return [line.split()[4] for line in handle if str(self.home) in line.split()[4]]


def import_busybox(daemon: Containerd, data_root: str) -> None:
    """The session's busybox into containerd's store: ``minictr save``'s OCI archive, read by ``ctr images import``."""
    archive = daemon.home / "busybox.tar"
    save(image_store(data_root), ["busybox"], str(archive))
    assert daemon.import_busybox(str(archive)) == IMAGE
    assert IMAGE in daemon.check("images", "ls", "--quiet").stdout.split()


@pytest.fixture(scope="module")
def daemon_home(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("containerd")


@pytest.fixture(scope="module")
def daemon(daemon_home: pathlib.Path, data_root: str) -> Iterator[Containerd]:
    daemon = Containerd(daemon_home)
    daemon.start()
    try:
        import_busybox(daemon, data_root)
        yield daemon
    finally:
        daemon.stop()


def test_run_gives_the_output_and_the_exit_status(daemon: Containerd) -> None:
    done = daemon.run("hello", "echo", "hello from busybox")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from busybox\n"
    assert daemon.run("seven", "sh", "-c", "exit 7").returncode == 7
    assert daemon.ctr("container", "ls", "--quiet").stdout.split() == []  # --rm removed both


def test_a_missing_program_shows_the_runtimes_error(daemon: Containerd) -> None:
    done = daemon.run("missing", "no-such-program")
    assert done.returncode != 0
    assert "executable file not found" in done.stderr  # the shim read the runtime's --log (JSON lines)
    daemon.ctr("container", "rm", "missing")  # create failed: the container record stays


@pytest.mark.skipif(shutil.which("script") is None, reason="script (util-linux) gives ctr the terminal it needs")
def test_a_terminal_through_the_shims_console_socket(daemon: Containerd) -> None:
    done = daemon.run_in_a_terminal("tty", "sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; tty; exit 3")
    assert done.returncode == 3, done.stderr
    assert "is-a-tty" in done.stdout and "/dev/pts/" in done.stdout


def test_detached_task_exec_ps_pause_kill_delete(daemon: Containerd) -> None:
    assert daemon.run("long", "sleep", "300", detach=True).returncode == 0
    try:
        assert daemon.task_status("long") == "RUNNING"
        ours: dict[str, Any] = json.loads(daemon.runtime_state("long").stdout)
        assert ours["status"] == "running" and os.path.exists(f"/proc/{ours['pid']}")  # the runtime ran it
        listed = daemon.ctr("task", "ls").stdout
        assert str(ours["pid"]) in listed
        done = daemon.ctr("task", "exec", "--exec-id", "e1", "--fifo-dir", str(daemon.home / "fifo"),
                          "long", "sh", "-c", "echo from-exec; exit 3")  # fmt: skip
        assert (done.returncode, done.stdout) == (3, "from-exec\n"), done.stderr
        pids = daemon.check("task", "ps", "long").stdout.split()
        assert str(ours["pid"]) in pids  # from the runtime's ps --format json
        daemon.check("task", "pause", "long")
        assert daemon.task_status("long") == "PAUSED"
        assert json.loads(daemon.runtime_state("long").stdout)["status"] == "paused"
        daemon.check("task", "resume", "long")
        assert daemon.task_status("long") == "RUNNING"
        daemon.check("task", "kill", "--signal", "SIGKILL", "long")
        wait_for(lambda: daemon.task_status("long") == "STOPPED", "the task to stop after SIGKILL")
        daemon.check("task", "delete", "long")
        assert "does not exist" in daemon.runtime_state("long").stderr
    finally:
        daemon.ctr("task", "delete", "--force", "long")
        daemon.ctr("container", "rm", "long")


def test_stopping_everything_leaves_no_daemon_shim_or_mount(tmp_path: pathlib.Path, data_root: str) -> None:
    daemon = Containerd(tmp_path / "c")
    daemon.start()
    try:
        import_busybox(daemon, data_root)
        assert daemon.run("left", "sleep", "300", detach=True).returncode == 0
        assert daemon.shims() and daemon.mounts()  # a shim, and the container's root (an overlay snapshot)
        daemon.remove_everything()
        assert os.listdir(daemon.runc_root / NAMESPACE) == []  # the runtime's state went with the task
    finally:
        daemon.stop()
    assert daemon.processes() == []  # stop waited for containerd and every shim
    assert daemon.mounts() == []
    assert not daemon.home.exists()
