"""podman drives minictr-oci as its OCI runtime, through conmon, as it drives runc.

The image is the busybox rootfs imported into podman's store under a name
of this session's own (``podman import --change 'ENV PATH=/bin'``), removed
at the end. This host's bounding set lacks CAP_SYS_RESOURCE, so podman's
default rlimits cannot be set by any runtime: the ulimits are given, as
for runc (see the testing notes). ``MINICTR_TEST_RUNTIME=runc`` runs the
same tests with runc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator

import pytest
from test_oci import RUNTIME

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="podman as root is what drives a runtime here"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (apt-get install podman)"),
]

#: What every ``podman run`` here needs: limits this host's bounding set allows (no CAP_SYS_RESOURCE), and no
#: network — podman's default one would leave its bridge (10.88.0.0/16) and a /run/netns mount on the host.
RUN_FLAGS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "none"]
RUNTIME_PATH = shutil.which(RUNTIME) or RUNTIME


def podman(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``podman --runtime <the runtime under test> ARGS``."""
    return subprocess.run(
        ["podman", "--runtime", RUNTIME_PATH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def image(rootfs: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"localhost/minictr-oci-test-{uuid.uuid4().hex[:8]}"
    archive = tmp_path_factory.mktemp("podman") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    done = subprocess.run(
        ["podman", "import", "--change", "ENV PATH=/bin", str(archive), name], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"podman cannot import an image here: {done.stderr.strip()}")
    yield name
    subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


def test_run_rm_echo(image: str) -> None:
    done = podman("run", "--rm", *RUN_FLAGS, image, "echo", "hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"


def test_exit_status_and_podmans_127_and_126(image: str) -> None:
    assert podman("run", "--rm", *RUN_FLAGS, image, "sh", "-c", "exit 7").returncode == 7
    missing = podman("run", "--rm", *RUN_FLAGS, image, "no-such-program")
    assert missing.returncode == 127, missing.stderr
    assert "executable file not found" in missing.stderr
    assert podman("run", "--rm", *RUN_FLAGS, image, "/etc").returncode == 126  # a directory: permission denied


def test_detached_exec_stop_rm(image: str) -> None:
    name = f"oci-{uuid.uuid4().hex[:8]}"
    started = podman("run", "-d", "--name", name, *RUN_FLAGS, image, "sleep", "300")
    assert started.returncode == 0, started.stderr
    try:
        assert podman("exec", name, "echo", "from-exec").stdout == "from-exec\n"
        assert podman("exec", name, "sh", "-c", "exit 4").returncode == 4
        inspect = podman("inspect", "--format", "{{.State.Status}} {{.State.Pid}}", name).stdout.split()
        assert inspect[0] == "running" and os.path.exists(f"/proc/{inspect[1]}")
        assert podman("stop", "-t", "1", name).returncode == 0
        assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "exited"
    finally:
        removed = podman("rm", "-f", name)
    assert removed.returncode == 0, removed.stderr


def test_a_terminal_through_conmons_console_socket(image: str) -> None:
    done = podman("run", "--rm", "-t", *RUN_FLAGS, image, "sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; tty")
    assert done.returncode == 0, done.stderr
    assert "is-a-tty" in done.stdout and "/dev/pts/" in done.stdout
