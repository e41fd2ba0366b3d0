"""What the tests share, in one module (fixtures stay in conftest.py).

- processes as the host sees them, read from ``/proc`` (the notebooks' own
  readers, :mod:`minictr.tutorial.processes`, plus what only tests need);
- waiting for a condition with a deadline, never a fixed sleep (:func:`wait_until`, the package's own loop);
- the real ``minictr`` command line on roots of a test's own, and containers
  run in the background (:func:`detached`), removed however the test ends;
- minictr run by a user that is not root (:func:`run_rootless`);
- crun's way of testing a runtime: :func:`base_config` is a minimal OCI
  config, :func:`run_spec` runs it through the runtime under test and returns
  what the program printed and its exit status. The runtime is ``minictr-oci``
  unless ``MINICTR_TEST_RUNTIME`` names another (``runc``, ``crun`` or a
  path): the same spec-level tests then show what that one does.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from minictr.engine import logs
from minictr.runtime.state import read_state
from minictr.tutorial.processes import alive, children, status, tree
from minictr.waiting import wait_until as wait_until  # the package's loop; tests import it from here too

__all__ = [
    "BASE_CAPABILITIES",
    "NOBODY",
    "OURS",
    "RUNTIME",
    "RUNTIME_IS_OURS",
    "RUNTIME_NAME",
    "SYSTEM_PYTHON",
    "Roots",
    "add_namespaces",
    "alive",
    "base_config",
    "children",
    "cli_command",
    "container_log",
    "descendants",
    "detached",
    "free_port",
    "host_mounts",
    "interfaces",
    "mount_table",
    "proc_status",
    "read",
    "run_cli",
    "run_rootless",
    "run_spec",
    "runtime_command",
    "stop_detached",
    "wait_until",
]  # fmt: skip

#: The uid (and gid) of ``nobody``: the rootless tests run minictr as it.
NOBODY = 65534


def _open_to_anyone(path: str) -> bool:
    """Whether any user may run ``path``: it, and every directory above it, lets others in."""
    real = pathlib.Path(os.path.realpath(path))
    try:
        return all(os.stat(p).st_mode & 0o001 for p in (real, *real.parents))
    except OSError:
        return False


_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
#: A Python of this version that any user may run (the rootless tests run minictr as ``nobody`` with it): the
#: interpreter the venv was made from when it lies open, else the system's. The venv's own copy may not.
SYSTEM_PYTHON = next(
    (
        p
        for p in (os.path.join(sys.base_prefix, "bin", f"python{_VERSION}"), f"/usr/bin/python{_VERSION}")
        if _open_to_anyone(p)
    ),
    f"/usr/bin/python{_VERSION}",
)


# --- /proc --------------------------------------------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/<pid>/status`` as a dict (empty when the process is gone)."""
    try:
        return status(pid)
    except (FileNotFoundError, ProcessLookupError):
        return {}


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, theirs, ...), depth first."""
    return tree(pid, lambda current, _depth: current)[1:]


def read(path: str) -> str:
    """A file's text."""
    with open(path) as handle:
        return handle.read()


def host_mounts() -> set[tuple[str, str]]:
    """This process's mounts as (mount point, source) pairs."""
    with open("/proc/self/mountinfo") as handle:
        return {(line.split()[4], line.split(" - ")[1].split()[1]) for line in handle}


def mount_table(mountinfo: str) -> dict[str, tuple[str, list[str]]]:
    """Mount point -> (file system type, mount options), from mountinfo text."""
    table = {}
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        table[fields.split()[4]] = (rest.split()[0], fields.split()[5].split(","))
    return table


def interfaces(net_dev: str) -> list[str]:
    """Interface names from ``/proc/net/dev`` text."""
    return sorted(line.split(":")[0].strip() for line in net_dev.splitlines()[2:] if ":" in line)


# --- ports ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on every address of this host, right now."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
        return port


# --- the command line --------------------------------------------------------------------------


def run_cli(
    *args: str, data_root: str, state_root: str, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the real ``minictr`` command line in a subprocess."""
    command = cli_command(*args, data_root=data_root, state_root=state_root)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def cli_command(*args: str, data_root: str, state_root: str) -> list[str]:
    """The real ``minictr ARGS`` command line on these roots, for a test that starts it itself (Popen, env)."""
    return [sys.executable, "-m", "minictr.cli", "--data-root", data_root, "--root", state_root, *args]


@dataclass
class Roots:
    """A data root and a state root; ``cli`` runs the real ``minictr`` with both."""

    data: str
    state: str

    def cli(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """``minictr ARGS`` on these roots."""
        return run_cli(*args, data_root=self.data, state_root=self.state, **kwargs)

    @property
    def containers(self) -> str:
        """Where the containers' directories are."""
        return os.path.join(self.state, "containers")


def stop_detached(roots: Roots, container_id: str, pid: int) -> None:
    """``rm -f`` a detached container, then check its PID 1 is gone, and its directory."""
    removed = roots.cli("rm", "-f", container_id)
    assert removed.returncode == 0, removed.stderr
    assert not alive(pid), f"container {container_id} (pid {pid}) outlived rm -f"
    assert not os.path.exists(os.path.join(roots.containers, container_id))


@contextlib.contextmanager
def detached(roots: Roots, *run_args: str, command: list[str] | None = None) -> Iterator[tuple[str, int]]:
    """``minictr run -d RUN_ARGS... COMMAND...``: yield (id, host pid of its PID 1); ``rm -f`` it afterwards."""
    result = roots.cli("run", "-d", *run_args, *(command or []))
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    pid = read_state(os.path.join(roots.containers, container_id))["pid"]
    try:
        yield container_id, pid
    finally:
        stop_detached(roots, container_id, pid)


def container_log(roots: Roots, container_id: str) -> str:
    """What a detached container wrote to its stdout and stderr so far (from its json-file log)."""
    entries, _ = logs.read_entries(os.path.join(roots.containers, container_id))
    return "".join(entry["log"] for entry in entries)


def run_rootless(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``minictr ARGS`` as ``nobody``, with the environment of the ``rootless_env`` fixture."""
    drop = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    command = [*drop, SYSTEM_PYTHON, "-m", "minictr.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd="/")


# --- spec in, process out: the runtime under test ----------------------------------------------

#: ``minictr`` (the default: minictr-oci), ``runc``, ``crun``, or the path of another OCI runtime.
RUNTIME_NAME = os.environ.get("MINICTR_TEST_RUNTIME", "minictr")
RUNTIME_IS_OURS = RUNTIME_NAME in ("minictr", "minictr-oci")
OURS = shutil.which("minictr-oci") or os.path.join(os.path.dirname(sys.executable), "minictr-oci")
#: The runtime's program, or ``RUNTIME_NAME`` itself when it is not installed (its tests then fail saying so).
RUNTIME = OURS if RUNTIME_IS_OURS else shutil.which(RUNTIME_NAME) or RUNTIME_NAME


def runtime_command(binary: str = RUNTIME) -> list[str]:
    """The command that starts ``binary`` (by default the runtime under test).

    crun refuses a hybrid cgroup layout ("cgroups in hybrid mode not
    supported"): it runs in a mount namespace of its own where the cgroup2
    mount beside the v1 hierarchies is unmounted (the host keeps it).
    """
    if os.path.basename(binary) == "crun" and os.path.ismount("/sys/fs/cgroup/unified"):
        unmounted = 'umount /sys/fs/cgroup/unified && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", unmounted, "crun", binary]
    return [binary]


#: The capabilities of :func:`base_config`'s process: few, as ``runc spec`` gives.
BASE_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def base_config(rootfs: str, args: list[str]) -> dict[str, Any]:
    """A minimal OCI runtime config running ``args`` in ``rootfs`` (read-only), every runtime's common ground.

    New pid, network, ipc, uts and mount namespaces; /proc, /dev (tmpfs,
    with devpts, shm and mqueue) and a read-only /sys; no user namespace,
    cgroup or security profile beyond a few capabilities and no_new_privs.
    Tests add what they are about (see :func:`add_namespaces`).
    """
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {kind: list(BASE_CAPABILITIES) for kind in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "spec-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {"namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")]},
    }  # fmt: skip


def add_namespaces(config: dict[str, Any], *kinds: str) -> dict[str, Any]:
    """Add namespaces of these kinds (``user``, ``cgroup``, ...) to ``config``; return it."""
    present = {entry["type"] for entry in config["linux"]["namespaces"]}
    config["linux"]["namespaces"] += [{"type": kind} for kind in kinds if kind not in present]
    return config


def run_spec(config: dict[str, Any], directory: pathlib.Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``RUNTIME run`` a bundle of ``config`` made in ``directory``: the program's output and exit status.

    The runtime's state root is in ``directory`` too; a container the
    runtime did not delete itself is deleted (``delete --force``) afterwards.
    """
    bundle = pathlib.Path(tempfile.mkdtemp(prefix="bundle-", dir=directory))
    (bundle / "config.json").write_text(json.dumps(config))
    state_root, container_id = str(directory / "runtime-root"), bundle.name
    command = [*runtime_command(), "--root", state_root]
    # files, not pipes: whatever the container leaves running cannot hold the test's pipe open
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            code = subprocess.run([*command, "run", "--bundle", str(bundle), container_id], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=timeout).returncode  # fmt: skip
        finally:
            subprocess.run([*command, "delete", "--force", container_id], capture_output=True, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(command, code, out.read().decode(), err.read().decode())
