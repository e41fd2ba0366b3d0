"""10 · the runtime: an OCI bundle by hand, ``minictr-oci`` step by step, its state machine, and podman driving it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Any

from minictr.tutorial.common import show_finished
from minictr.tutorial.pictures import APP, KERNEL, LIB, _arrowhead, _box, _svg, _text


def oci_command() -> list[str]:
    """The ``minictr-oci`` command of *this* Python (its console script, or ``python -m minictr.runtime.oci.cli``)."""
    script = os.path.join(os.path.dirname(sys.executable), "minictr-oci")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "minictr.runtime.oci.cli"]


class Runtime:
    """``minictr-oci`` with a state root of the notebook's own (``--root``), shown as a terminal would show it."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.command = [*oci_command(), "--root", root]

    def __call__(self, *args: str, cwd: str | None = None, timeout: float = 60) -> int:
        """Run ``minictr-oci ARGS`` (with ``--root``), print what it printed; return its exit status.

        stdin is /dev/null: at ``create`` fds 0-2 become the container's stdio,
        and the notebook's own must not be handed to a container.
        """
        print("$ minictr-oci " + shlex.join(args))
        # A file, not a pipe: a container created here keeps its stdout, and a pipe would never reach its end.
        with tempfile.TemporaryFile() as output:
            code = subprocess.run(
                [*self.command, *args], stdout=output, stderr=output, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd
            ).returncode
            output.seek(0)
            sys.stdout.write(output.read().decode(errors="replace"))
        if code:
            print(f"(exit status {code})")
        return code

    def state(self, container_id: str) -> dict[str, Any]:
        """The runtime-spec's state of a container (``minictr-oci state ID``), parsed."""
        done = subprocess.run(
            [*self.command, "state", container_id],
            capture_output=True,
            text=True,
            check=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def ids(self) -> list[str]:
        """The containers under this root."""
        done = subprocess.run(
            [*self.command, "list", "--format", "json"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        return [entry["id"] for entry in json.loads(done.stdout or "[]") or []]

    def remove_all(self) -> None:
        """``delete --force`` every container under this root (a clean-up cell's job)."""
        for container_id in self.ids():
            subprocess.run(
                [*self.command, "delete", "--force", container_id],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=30,
            )


def make_bundle(bundle: str, rootfs: str) -> None:
    """A bundle directory: a copy of ``rootfs`` as ``bundle/rootfs``, and the config ``minictr-oci spec`` writes."""
    shutil.rmtree(bundle, ignore_errors=True)
    os.makedirs(bundle)
    shutil.copytree(rootfs, os.path.join(bundle, "rootfs"), symlinks=True)
    subprocess.run([*oci_command(), "spec"], cwd=bundle, check=True, capture_output=True)


def config_outline(config: dict[str, Any]) -> str:
    """The top of a config.json, one line per part, long lists shortened (what a learner reads first)."""
    lines = []
    for key, value in config.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k}: {_short(v)}" for k, v in value.items())
            lines.append(f"{key}: {{{inner}}}")
        else:
            lines.append(f"{key}: {_short(value)}")
    return "\n".join(lines)


def _short(value: Any, width: int = 60) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        names = [str(item.get("type") or item.get("destination") or "…") for item in value]
        text = "[" + ", ".join(names) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(value) + "}"
    else:
        text = json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def host_view(pid: int) -> str:
    """One line: a host pid, its name and its parent, as the host's /proc shows them."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)
    name = fields[0].split("(", 1)[1]
    parent = int(fields[1].split()[1])
    return f"the host sees pid {pid} ({name}), child of pid {parent}"


# --- podman ---------------------------------------------------------------------------------------

#: What a ``podman run`` here needs: no network (podman's default one would leave a bridge and a /run/netns
#: mount behind), and rlimits this host's bounding set allows (without CAP_SYS_RESOURCE none may be raised).
PODMAN_FLAGS = ["--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def podman_missing() -> str:
    """Why podman cannot be shown here ("" when it can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman)"
    if os.geteuid() != 0:
        return "podman drives a runtime as root here"
    return ""


def podman_import(rootfs: str, name: str, work: str) -> None:
    """Import ``rootfs`` into podman's store as image ``name`` (PATH=/bin, as busybox wants)."""
    archive = os.path.join(work, "rootfs.tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    subprocess.run(
        ["podman", "import", "--change", "ENV PATH=/bin", archive, name], check=True, capture_output=True, timeout=300
    )
    os.unlink(archive)


def podman(*args: str, timeout: float = 120) -> int:
    """Run ``podman ARGS`` as a terminal would show it; return its exit status.

    The path of ``minictr-oci`` differs from one installation to the next: it
    is shown as ``$(command -v minictr-oci)`` in the command and by name in
    what podman prints.
    """
    path = oci_command()[0]
    shown = " ".join("$(command -v minictr-oci)" if arg == path else shlex.quote(arg) for arg in args)
    print("$ podman " + shown)
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return show_finished(
        done.stdout.replace(path, "minictr-oci"), done.stderr.replace(path, "minictr-oci"), done.returncode
    )


# --- the picture ----------------------------------------------------------------------------------


def svg_oci_states() -> str:
    """The runtime-spec's lifecycle: creating → created → running → stopped → gone, and the command behind each move."""
    body = [_arrowhead("oci", "#444")]
    states = [("creating", "#fff"), ("created", LIB), ("running", APP), ("stopped", KERNEL), ("gone", "#fff")]
    notes = [
        ("namespaces, mounts,", "cgroup being made"),
        ("set up; PID 1 waits", "before execve"),
        ("the program runs", ""),
        ("exited; its state", "kept until delete"),
        ("nothing left", ""),
    ]
    for index, ((name, fill), lines) in enumerate(zip(states, notes, strict=True)):
        x = 10 + index * 170
        body.append(_box(x, 40, 110, 44, fill, name, size=14, bold=True, dashed=fill == "#fff"))
        for row, line in enumerate(lines):
            body.append(_text(x + 55, 104 + row * 14, line, size=10, italic=True, fill="#555"))
    for index, label in enumerate(["create", "start", "exit, kill", "delete"]):
        x = 10 + index * 170 + 112
        body.append(
            f'<line x1="{x}" y1="62" x2="{x + 56}" y2="62" stroke="#444" stroke-width="1.5" marker-end="url(#oci)"/>'
        )
        body.append(_text(x + 28, 55, label, size=11, bold=True))
    body.append(
        _text(
            400,
            24,
            "delete takes a created or stopped container away; a running one only with --force",
            size=11,
            fill="#444",
        )
    )
    body.append(
        _text(
            400,
            150,
            "state ID prints the status at any point; kill signals PID 1 (--all: every process)",
            size=11,
            italic=True,
        )
    )
    return _svg(800, 160, body)
