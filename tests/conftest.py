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

import registry_server as rs

from minictr.container import image_store, unpacked_rootfs
from minictr.images.busybox import build_busybox_image

DEFAULT_CONTAINERS = "/run/minictr/containers"
DEFAULT_NETWORKS = "/run/minictr/networks"
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


# --- a registry on loopback (see registry_server.py) ------------------------------------------------------

@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.LocalRegistry]:
    """An anonymous docker-registry on 127.0.0.1, for the whole session."""
    server = rs.start_registry(str(tmp_path_factory.mktemp("registry")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[rs.LocalRegistry, rs.TokenServer]]:
    """A docker-registry that wants bearer tokens from the suite's own token server."""
    directory = str(tmp_path_factory.mktemp("token-registry"))
    tokens = rs.TokenServer(directory)
    server = rs.start_registry(directory, tokens.auth_config())
    yield server, tokens
    server.stop()
    tokens.stop()


@pytest.fixture(scope="session")
def base_tar(data_root: str) -> bytes:
    return rs.busybox_tar(os.path.join(data_root, "images"))


#: The multi-layer image: files, then whiteouts and an opaque directory (zstd), then a plain tar layer.
OWNED = {"uid": 1000, "gid": 1000, "mode": 0o4750, "mtime": 1_500_000_000, "pax_headers": {"SCHILY.xattr.user.origin": "layer2"}}


@pytest.fixture(scope="session")
def images(registry: rs.LocalRegistry, base_tar: bytes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Test images built here from busybox and pushed with skopeo; name -> reference."""
    layout = rs.Layout(str(tmp_path_factory.mktemp("layout")))
    layout.image("busybox", [(base_tar, "gzip")])
    second = rs.tar_layer([("etc", "dir", None), ("etc/keep", "file", b"kept\n"), ("etc/gone", "file", b"gone\n"),
                           ("data", "dir", None), ("data/old", "file", b"old\n"), ("data/sub", "dir", None),
                           ("owned", "file", b"#!/bin/sh\n", OWNED)])  # fmt: skip
    third = rs.tar_layer([("etc", "dir", None), ("etc/.wh.gone", "file", b""), ("data", "dir", None),
                          ("data/.wh..wh..opq", "file", b""), ("data/new", "file", b"new\n")])  # fmt: skip
    fourth = rs.tar_layer([("top", "file", b"plain tar layer\n")])
    layout.image("multi", [(base_tar, "gzip"), (second, "gzip"), (third, "zstd"), (fourth, "tar")],
                 config={"User": "daemon", "WorkingDir": "/data", "Labels": {"test": "multi"}, "StopSignal": "SIGUSR1"})  # fmt: skip
    arm64 = layout.image("", [(rs.tar_layer([("arch", "file", b"arm64\n")]), "gzip")],
                         platform={"os": "linux", "architecture": "arm64", "variant": "v8"}, tag=False)  # fmt: skip
    armv7 = layout.image("", [(rs.tar_layer([("arch", "file", b"arm/v7\n")]), "gzip")],
                         platform={"os": "linux", "architecture": "arm", "variant": "v7"}, tag=False)  # fmt: skip
    host = layout.image("", [(base_tar, "gzip")], tag=False)
    layout.index("multiarch", [arm64, armv7, host])
    names = {"busybox": "interop/busybox:1", "multi": "layers/multi:1", "multiarch": "multi/arch:1"}
    for name, repository in names.items():
        extra = ("--all",) if name == "multiarch" else ()
        rs.skopeo_copy(f"oci:{layout.root}:{name}", f"docker://{registry.host}/{repository}", *extra)
    return {name: f"{registry.host}/{repository}" for name, repository in names.items()}



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
                if handle.read().strip() in ("minictr-child", "minictr-vm"):  # a container's, a VM's QEMU
                    processes.add(pid)
        except OSError:
            pass
    return {"mounts": mounts, "processes": processes, "containers": containers, "cgroups": cgroup_dirs(), **_network_snapshot()}


def _network_snapshot() -> dict[str, set[str]]:
    """What minictr's networks leave on a host: interfaces, nft elements, leases, namespaces, forwarding."""
    links = {name for name in os.listdir("/sys/class/net") if name.startswith(("mctr-", "mv-", "nb06-"))}
    leases = set()
    if os.path.isdir(DEFAULT_NETWORKS):
        for network in os.listdir(DEFAULT_NETWORKS):
            directory = os.path.join(DEFAULT_NETWORKS, network, "leases")
            leases |= {f"{network}/{lease}" for lease in os.listdir(directory)} if os.path.isdir(directory) else set()
    rules = set()
    listed = subprocess.run(["nft", "list", "table", "ip", "minictr"], capture_output=True, text=True) if os.geteuid() == 0 else None
    if listed is not None and listed.returncode == 0:
        rules = {"table ip minictr"} | {line.strip() for line in listed.stdout.splitlines() if "elements" in line}
    named = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    with open("/proc/sys/net/ipv4/ip_forward") as handle:
        forwarding = {f"ip_forward={handle.read().strip()}"}
    return {"links": links, "nft": rules, "leases": leases, "netns": named, "forwarding": forwarding}


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


def kill_and_sweep(container_id: str, *, data_root: str, state_root: str, timeout: float = 10) -> None:
    """``minictr kill`` a detached container, then sweep until its directory, cgroup and network are gone.

    Nothing removes a killed detached container by itself (there is no ``rm``
    yet): the next run's sweep would, so a test that stops one sweeps itself.
    """
    import time

    from minictr.container import containers_dir, remove_stale

    run_cli("kill", container_id, data_root=data_root, state_root=state_root)
    directory = os.path.join(state_root, "containers", container_id)
    deadline = time.monotonic() + timeout
    while os.path.exists(directory) and time.monotonic() < deadline:
        remove_stale(containers_dir(state_root))
        time.sleep(0.05)
