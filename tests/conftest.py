"""Shared fixtures: a busybox image store per session, temporary roots, the leak check.

Tests run against the real kernel. Those that need root are marked
``@pytest.mark.root`` and skipped, with the reason, elsewhere (see the
repository's top-level conftest.py, which also skips notebooks whose
requirements the host lacks).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import pytest
import registry_server as rs
from helpers import NOBODY, SYSTEM_PYTHON, Roots, cli_command
from helpers import free_port as free_port  # re-exported: tests import these three from here too
from helpers import run_cli as run_cli
from helpers import wait_until as wait_until

from minictr.engine.container import image_store, unpacked_rootfs
from minictr.engine.images.busybox import build_busybox_image

DEFAULT_STATE_ROOT = "/run/minictr"
REPO = pathlib.Path(__file__).resolve().parent.parent
#: Programs the browser test starts (tests/test_browser.py): none may outlive the session either.
LEAK_COMMANDS = {"jupyter-lab", "chromium", "chromedriver"}


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
def state_root(tmp_path: pathlib.Path) -> Iterator[str]:
    """A runtime state root of the test's own; its containers removed and its networks pruned at the end.

    The default network's bridge outlives its last container (as docker0 does):
    ``network prune`` is what takes it down, and the leak check proves it did.
    """
    path = tmp_path / "run"
    path.mkdir()
    yield str(path)
    remove_all(str(path))  # the containers a test left there (runs kept after their exit too)
    prune_networks(str(path))


def prune_networks(state_root: str) -> None:
    """``network prune`` a test's state root: its default bridge outlives its last container (as docker0)."""
    if os.path.isdir(os.path.join(state_root, "networks")):
        done = run_cli("network", "prune", data_root=os.path.join(state_root, "unused-data"), state_root=state_root)
        assert done.returncode == 0, done.stderr


# --- roots a user-namespaced root can walk through --------------------------------------------------------
# A user namespace maps the container's root to an unprivileged host uid, which must be able to walk through
# the state and data roots: these live under a world-traversable directory, not pytest's private tmp_path.


@pytest.fixture(scope="session")
def open_base() -> Iterator[str]:
    """A directory under /tmp that every uid may traverse (mode 0711), removed at the end."""
    base = tempfile.mkdtemp(prefix="minictr-ns-", dir="/tmp")
    os.chmod(base, 0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def open_data_root(open_base: str) -> str:
    """A data root holding the busybox image, traversable by the uids containers are mapped to."""
    data = os.path.join(open_base, "data")
    os.mkdir(data)
    os.chmod(data, 0o711)
    build_busybox_image(image_store(data))
    return data


@pytest.fixture
def roots(open_base: str, open_data_root: str) -> Iterator[Roots]:
    """The open data root and a state root of the test's own, beside it; every container removed at the end."""
    state = tempfile.mkdtemp(prefix="run-", dir=open_base)
    os.chmod(state, 0o711)
    yield Roots(open_data_root, state)
    remove_all(state)
    prune_networks(state)  # before the root goes: a bridge whose root is deleted would stay up
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def open_dir(open_base: str) -> Iterator[str]:
    """A directory any uid may write in (a bind-mount source for user-namespaced containers)."""
    path = tempfile.mkdtemp(prefix="vol-", dir=open_base)
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rootless_env(open_base: str) -> Iterator[dict[str, str]]:
    """An environment for running minictr as ``nobody``: a readable copy of the package, roots it owns."""
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"needs {SYSTEM_PYTHON} (any user can run it, unlike the project's virtualenv)")
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop to another uid")
    home = tempfile.mkdtemp(prefix="rootless-", dir=open_base)
    os.chmod(home, 0o755)
    shutil.copytree(
        REPO / "minictr", os.path.join(home, "src", "minictr"), ignore=shutil.ignore_patterns("__pycache__")
    )
    for directory, _, files in os.walk(os.path.join(home, "src")):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    for name in ("run", "data"):
        os.mkdir(os.path.join(home, name))
        os.chown(os.path.join(home, name), NOBODY, NOBODY)
    yield {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": home, "PYTHONPATH": os.path.join(home, "src"),
           "MINICTR_ROOT": os.path.join(home, "run"), "MINICTR_DATA_ROOT": os.path.join(home, "data")}  # fmt: skip
    remove_all(os.path.join(home, "run"))
    shutil.rmtree(home, ignore_errors=True)


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
OWNED = {
    "uid": 1000,
    "gid": 1000,
    "mode": 0o4750,
    "mtime": 1_500_000_000,
    "pax_headers": {"SCHILY.xattr.user.origin": "layer2"},
}


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
    layout.image(
        "multi",
        [(base_tar, "gzip"), (second, "gzip"), (third, "zstd"), (fourth, "tar")],
        config={"User": "daemon", "WorkingDir": "/data", "Labels": {"test": "multi"}, "StopSignal": "SIGUSR1"},
    )
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


def cgroup_dirs() -> set[str]:
    """Every cgroup directory below a ``minictr`` (or ``minictr-oci``) parent, in every hierarchy (and the parents)."""
    from minictr.doctor import cgroup_layout

    layout = cgroup_layout()
    found = set()
    for mount in {*layout["v1"].values(), *filter(None, [layout["v2"]["path"]])}:
        for parent in ("minictr", "minictr-oci"):
            for directory, _, _ in os.walk(os.path.join(mount, parent)):
                found.add(directory)
    return found


#: The names minictr's own processes give themselves (see minictr.runtime.process.child).
MINICTR_PROCESSES = (
    "minictr-child",
    "minictr-wait",
    "minictr-init",
    "minictr-monitor",
    "minictr-vm",
    "minictr-dns",
    "minictr-netlink",
    "minictr-health",
)
#: Environment variables that tag a process as a test's: the fault step (children inherit it), a test's mark (-e).
TAGS = (b"MINICTR_FAULT=", b"MINICTR_TEST_MARK=")


def host_snapshot(state_root: str = DEFAULT_STATE_ROOT) -> dict[str, set[str]]:
    """Everything of minictr's on this host, by kind: the session leak check and the fault tests compare two.

    Mounts, live processes (minictr's own, and any a test tagged), the
    containers, leases and networks of ``state_root``, cgroups, then links,
    nftables elements, named network namespaces and IPv4 forwarding.
    """
    with open("/proc/self/mountinfo") as handle:
        mounts = {line.split()[4] for line in handle}
    containers_path = os.path.join(state_root, "containers")
    containers = set(os.listdir(containers_path)) if os.path.isdir(containers_path) else set()
    return {"mounts": mounts, "processes": _processes(), "containers": containers, "cgroups": cgroup_dirs(),
            "recorded containers": _recorded_containers(), "volumes": _anonymous_volumes(),
            **_network_snapshot(state_root)}  # fmt: skip


def _anonymous_volumes() -> set[str]:
    """Anonymous volumes in the default data root (they go with their containers) and build work directories."""
    from minictr.engine.volumes import listing

    try:
        found = {f"volume {v['Name']}" for v in listing(data_root="/var/lib/minictr") if v.get("Anonymous")}
    except OSError:  # not root: the data root is not ours to list
        found = set()
    builds = "/run/minictr/builds"
    return found | ({f"build {name}" for name in os.listdir(builds)} if os.path.isdir(builds) else set())


def _recorded_containers() -> set[str]:
    """Containers in the host-wide record of state roots (each goes with its directory)."""
    from minictr import roots

    return {f"{path}: {container}" for key, path in roots.recorded().items() for container in roots.containers(key)}


def host_leftovers(before: dict[str, set[str]], after: dict[str, set[str]], *names: str) -> dict[str, list[str]]:
    """What ``after`` holds that ``before`` did not, by kind; with ``names``, only items naming one of them.

    Naming what one test made (its container id, bridge, state root, port,
    mark) keeps out what other test sessions create on the host meanwhile.
    """
    found = {kind: sorted(item for item in after[kind] - before[kind] if not names or any(n in item for n in names))
             for kind in after}  # fmt: skip
    return {kind: items for kind, items in found.items() if items}


def _processes() -> set[str]:
    """Live (not zombie) processes of minictr, and tagged ones: ``"<pid> <comm> <tags>"``.

    A zombie holds nothing but its pid, and the host's init may reap it late.
    """
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                comm, _, rest = handle.read().partition("(")[2].rpartition(")")
            if rest.split()[0] in ("Z", "X"):
                continue
            with open(f"/proc/{pid}/environ", "rb") as handle:
                tags = [v.decode(errors="replace") for v in handle.read().split(b"\0") if v.startswith(TAGS)]
        except (OSError, IndexError):
            continue
        if comm in MINICTR_PROCESSES or comm in LEAK_COMMANDS or tags:
            found.add(" ".join([pid, comm, *tags]))
    return found


def _network_snapshot(state_root: str) -> dict[str, set[str]]:
    """What minictr's networks leave on a host: interfaces, nft elements, leases, namespaces, forwarding."""
    links = {name for name in os.listdir("/sys/class/net") if name.startswith(("mctr-", "mv-", "nb06-"))}
    leases, networks = set(), os.path.join(state_root, "networks")
    if os.path.isdir(networks):
        for network in os.listdir(networks):
            directory = os.path.join(networks, network, "leases")
            leases |= {f"{network}/{lease}" for lease in os.listdir(directory)} if os.path.isdir(directory) else set()
    rules = set()
    listed = (
        subprocess.run(["nft", "list", "table", "ip", "minictr"], capture_output=True, text=True)
        if os.geteuid() == 0
        else None
    )
    if listed is not None and listed.returncode == 0:
        rules = {"table ip minictr"} | {line.strip() for line in listed.stdout.splitlines() if "elements" in line}
    named = set(os.listdir("/run/netns")) | {"/run/netns itself"} if os.path.isdir("/run/netns") else set()
    agents = "/run/minictr-network/agents"  # a bridge's netlink agent keeps its socket there while it runs
    agent_dirs = {f"agent {name}" for name in os.listdir(agents)} if os.path.isdir(agents) else set()
    with open("/proc/sys/net/ipv4/ip_forward") as handle:
        forwarding = {f"ip_forward={handle.read().strip()}"}
    return {"links": links, "nft": rules, "leases": leases, "netns": named, "forwarding": forwarding,
            "agents": agent_dirs}  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def leak_check() -> Iterator[None]:
    """At the end of the session nothing the tests made may remain: mounts, container processes, state, cgroups.

    Notebooks use the default state root, so new entries there count too. Its
    default network's bridge outlives the last container by design: the check
    first runs ``network prune`` (what a user runs to take it down) there.
    """
    before = host_snapshot()
    yield
    _remove_kept_runs(before)
    if os.path.isdir(
        os.path.join(DEFAULT_STATE_ROOT, "networks")
    ):  # the notebooks' default bridge stays up until a prune
        pruned = subprocess.run(
            [sys.executable, "-m", "minictr.cli", "network", "prune"], capture_output=True, text=True
        )
        assert pruned.returncode == 0, pruned.stderr
    leaked = host_leftovers(before, host_snapshot())
    assert not leaked, f"the tests left resources behind: {leaked}"


def _remove_kept_runs(before: dict[str, set[str]]) -> None:
    """``rm -v`` the exited foreground containers this session kept (``run`` without ``--rm``, as Docker keeps them).

    They are state a user removes with ``rm`` (notebooks and tests run many),
    not leaks; whatever they held besides their directory was given back at
    their exit, and what remains after this is a leak.
    """
    from minictr import roots
    from minictr.engine import lifecycle
    from minictr.engine.container_dir import read_state
    from minictr.errors import MinictrError

    for key, path in roots.recorded().items():
        for container in roots.containers(key):
            state = read_state(os.path.join(path, "containers", container))
            if f"{path}: {container}" in before["recorded containers"] or not state.get("foreground"):
                continue
            if state.get("status") == "stopped":
                with contextlib.suppress(MinictrError):
                    lifecycle.remove(container, state_root=path, volumes=True)


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Wait until ``predicate()`` is true (a generous deadline, never a fixed sleep); fail naming ``what``."""
    assert wait_until(predicate, timeout), f"waited {timeout} s for {what}"


@contextlib.contextmanager
def orphans_adopted() -> Iterator[Callable[[], list[int]]]:
    """Make this process a child subreaper: descendants orphaned meanwhile become our children.

    Yields a function listing our live children that were not our children
    on entry: what the caller started and has not reaped yet, and the orphans
    we adopted (zombies among them are reaped). On exit the subreaper flag is
    cleared and what died is reaped.
    """
    from minictr.kernel import linux

    def children() -> dict[int, str]:
        found = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found[int(pid)] = fields[0]
        return found

    def adopted() -> list[int]:
        live = []
        for pid, status in children().items():
            if pid in before:
                continue  # started by someone else before: theirs to wait for
            if status != "Z":
                live.append(pid)
            else:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)  # an orphan we adopted died: reap it
        return live

    before = set(children())
    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield adopted
    finally:
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 0)
        adopted()


def remove_container(container_id: str, *, data_root: str, state_root: str) -> None:
    """``minictr rm -f`` a container: it is killed, and its directory, cgroup, network and monitor go."""
    removed = run_cli("rm", "-f", container_id, data_root=data_root, state_root=state_root)
    assert removed.returncode == 0, removed.stderr
    assert not os.path.exists(os.path.join(state_root, "containers", container_id))


def remove_all(state_root: str) -> None:
    """``rm -f`` every container under ``state_root`` (a test's clean-up), then sweep what no monitor owns."""
    from minictr.engine import lifecycle
    from minictr.engine.container import containers_dir, remove_stale
    from minictr.errors import MinictrError

    base = containers_dir(state_root)
    for name in os.listdir(base):
        try:
            lifecycle.remove(name, force=True, state_root=state_root, volumes=True)
        except MinictrError:
            pass  # gone meanwhile
    remove_stale(base)


def kill_9_of_a_foreground_run_leaks_nothing(options: list[str], *, data_root: str, state_root: str) -> None:
    """``kill -9`` a foreground ``minictr run`` whose program runs: the container dies, the next run sweeps the rest.

    The container is told apart from every other process of the host by a
    mark in its environment.
    """
    mark = os.urandom(6).hex()
    command = cli_command(
        "run",
        "-e",
        f"MINICTR_TEST_MARK={mark}",
        *options,
        "busybox",
        "sleep",
        "60",
        data_root=data_root,
        state_root=state_root,
    )
    before = host_snapshot(state_root)
    cli = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)

    def program() -> list[str]:
        """The marked container's processes (minictr's own left out)."""
        leftovers = host_leftovers(before, host_snapshot(state_root), mark).get("processes", [])
        return [p for p in leftovers if " minictr-" not in p]

    try:
        ran = wait_until(lambda: program() or cli.poll() is not None, timeout=30) and program()
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    assert ran, f"the program never ran: {cli.returncode} {cli.stderr.read()}"
    assert wait_until(lambda: not program(), timeout=30), (
        program()
    )  # the container dies with its minictr (PR_SET_PDEATHSIG) ...
    containers = os.path.join(state_root, "containers")
    (container,) = os.listdir(containers)  # ... its directory stays until the next run ...
    done = run_cli("run", "--rm", "--network", "none", "busybox", "true", data_root=data_root, state_root=state_root)
    assert (done.returncode, os.listdir(containers)) == (0, []), done.stderr  # ... which removes it, and all it held
    assert host_leftovers(before, host_snapshot(state_root), state_root, container, f"mv-{container}"[:15], mark) == {}
