"""12 · beyond one machine: a containerd of the notebook's own, driving an OCI runtime through ``ctr``.

containerd is the daemon Kubernetes (through the CRI) and Docker use to run
containers: it keeps images and snapshots, and starts one *shim* per
container, which calls an OCI runtime (``runc create``/``start``/``delete``)
on a bundle — the same contract minictr speaks. This one is private: its
root, state, sockets, runc state and stdio fifos live in a directory of its
own, its namespace is ``nb12``, and each container's cgroup is a leaf
(``/nb12-<id>``) that runc removes with it. Only the shim's socket directory
(``/run/containerd/s``, fixed in containerd 1.6) is outside: it is removed
afterwards if this notebook made it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from typing import Self

NAMESPACE = "nb12"
#: The busybox image, as containerd names what ``minictr save`` wrote.
IMAGE = "docker.io/library/busybox:latest"
RUN_DIR = "/run/containerd"

#: Plugins this containerd must not load: Kubernetes' CRI (it would want a network), /opt/containerd, other
#: snapshotters and tracing. Only what ``ctr run`` needs stays: content, snapshots (overlayfs), tasks, runc v2.
DISABLED = ("io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.tracing")  # fmt: skip


def missing() -> str:
    """Why containerd cannot run here ("" when it can): not root, or a program missing."""
    if os.geteuid() != 0:
        return "containerd needs root"
    lacking = [name for name in ("containerd", "ctr", "containerd-shim-runc-v2", "runc") if not shutil.which(name)]
    return f"{', '.join(lacking)} not found (apt-get install containerd runc)" if lacking else ""


def runtime(name: str) -> str | None:
    """Where the OCI runtime ``name`` is: on PATH, or beside this interpreter (minictr-oci in a virtual environment)."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    return shutil.which(name) or (beside if os.access(beside, os.X_OK) else None)


class PrivateContainerd:
    """A containerd daemon whose every file is under ``directory``; use it with ``with``."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.socket = os.path.join(directory, "containerd.sock")
        self.process: subprocess.Popen[bytes] | None = None
        self.made_run_dir = not os.path.exists(RUN_DIR)

    def config(self) -> str:
        """The daemon's configuration (TOML): private paths, no CRI."""
        quoted = ", ".join(f'"{name}"' for name in DISABLED)
        return (
            f'version = 2\nroot = "{self.directory}/root"\nstate = "{self.directory}/state"\n'
            f"disabled_plugins = [{quoted}]\n"
            f'[grpc]\n  address = "{self.socket}"\n[ttrpc]\n  address = "{self.socket}.ttrpc"\n'
            '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
        )

    def start(self, timeout: float = 30) -> None:
        """Write the configuration, start the daemon and wait until it answers."""
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, "config.toml")
        with open(path, "w") as handle:
            handle.write(self.config())
        with open(os.path.join(self.directory, "containerd.log"), "wb") as log:  # the daemon keeps its own copy
            self.process = subprocess.Popen(
                ["containerd", "--config", path],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.ctr("version").returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the daemon's log."""
        with open(os.path.join(self.directory, "containerd.log"), errors="replace") as handle:
            return " | ".join(handle.read().splitlines()[-lines:])

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``ctr`` talking to this daemon, in the notebook's namespace."""
        return subprocess.run(
            ["ctr", "--address", self.socket, "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def import_busybox(self, archive: str) -> str:
        """Import an OCI archive written by ``minictr save`` (the busybox image); containerd's name for it."""
        done = self.ctr("images", "import", archive)
        if done.returncode:
            raise RuntimeError(f"ctr images import failed: {done.stderr.strip()}")
        return IMAGE

    def run_command(self, runtime: str, *command: str) -> list[str]:
        """The ``ctr run`` command line: a container removed when it ends, run by the OCI runtime ``runtime``."""
        name = f"{NAMESPACE}-{uuid.uuid4().hex[:8]}"
        return ["ctr", "--address", self.socket, "--namespace", NAMESPACE, "run", "--rm",
                "--runc-binary", runtime, "--runc-root", os.path.join(self.directory, "runc"),
                "--fifo-dir", os.path.join(self.directory, "fifo"), "--cgroup", f"/{name}",
                IMAGE, name, *command]  # fmt: skip

    def run(self, runtime: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in a busybox container through containerd, its shim and ``runtime``."""
        return subprocess.run(
            self.run_command(runtime, *command),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def stop(self, timeout: float = 30) -> None:
        """Stop the daemon, remove its directory (nothing may be mounted there) and what it made in /run."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._wait_for_shims(timeout)
        with open("/proc/self/mountinfo") as handle:
            mounted = [line.split()[4] for line in handle if line.split()[4].startswith(self.directory + "/")]
        for point in sorted(mounted, reverse=True):  # snapshots of a container that did not end cleanly
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.made_run_dir:  # only the empty directories the shims left there
            for directory in ("s", "fifo", f"runc/{NAMESPACE}", "runc", ""):
                try:
                    os.rmdir(os.path.join(RUN_DIR, directory))
                except OSError:
                    pass

    def processes(self) -> list[int]:
        """Pids of the daemon and its shims still running (their command lines name this directory)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if self.directory.encode() in handle.read():
                        found.append(int(pid))
            except OSError:
                pass
        return found

    def _wait_for_shims(self, timeout: float) -> None:
        """Shims end once their container is deleted; any still there after ``timeout`` are killed."""
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
