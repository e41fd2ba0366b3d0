"""Shared fixtures: a busybox image store per session, temporary roots, the leak check.

Tests run against the real kernel. Those that need root are marked
``@pytest.mark.root`` and skipped, with the reason, elsewhere (see the
repository's top-level conftest.py, which also skips notebooks whose
requirements the host lacks).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from minictr.container import image_store, unpacked_rootfs
from minictr.images.busybox import build_busybox_image

DEFAULT_CONTAINERS = "/run/minictr/containers"
REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data root holding the busybox image, built once per session."""
    root = tmp_path_factory.mktemp("minictr-data")
    build_busybox_image(image_store(str(root)))
    return str(root)


@pytest.fixture(scope="session")
def rootfs(data_root: str) -> str:
    """The busybox image unpacked (shared: tests must not write into it)."""
    store = image_store(data_root)
    return unpacked_rootfs(store, store.get("busybox"))


@pytest.fixture
def state_root(tmp_path: pathlib.Path) -> str:
    """A runtime state root of the test's own."""
    path = tmp_path / "run"
    path.mkdir()
    return str(path)


def run_cli(*args: str, data_root: str, state_root: str, timeout: float = 60, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run the real ``minictr`` command line in a subprocess."""
    command = [sys.executable, "-m", "minictr.cli", "--data-root", data_root, "--root", state_root, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def cgroup_dirs() -> set[str]:
    """Every cgroup directory below a ``minictr`` parent, in every hierarchy (and the parents themselves)."""
    from minictr.doctor import cgroup_layout

    layout = cgroup_layout()
    found = set()
    for mount in {*layout["v1"].values(), *filter(None, [layout["v2"]["path"]])}:
        for directory, _, _ in os.walk(os.path.join(mount, "minictr")):
            found.add(directory)
    return found


def _snapshot() -> dict[str, set[str]]:
    with open("/proc/self/mountinfo") as handle:
        mounts = {line.split()[4] for line in handle}
    containers = set(os.listdir(DEFAULT_CONTAINERS)) if os.path.isdir(DEFAULT_CONTAINERS) else set()
    processes = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == "minictr-child":
                    processes.add(pid)
        except OSError:
            pass
    return {"mounts": mounts, "processes": processes, "containers": containers, "cgroups": cgroup_dirs()}


@pytest.fixture(scope="session", autouse=True)
def leak_check() -> Iterator[None]:
    """At the end of the session nothing the tests made may remain: mounts, container processes, state, cgroups.

    Notebooks use the default state root, so new entries there count too.
    """
    before = _snapshot()
    yield
    after = _snapshot()
    leaked = {kind: sorted(after[kind] - before[kind]) for kind in after}
    leaked = {kind: items for kind, items in leaked.items() if items}
    assert not leaked, f"the tests left resources behind: {leaked}"
