"""``minictr system prune`` and the host-wide record of state roots, against the real kernel.

A state root is deleted (as a test's temporary root is) while its container
runs with a published port; or a container's directory vanishes under a live
root. Afterwards the host must carry nothing of either: no process, cgroup,
veth, bridge, nftables element, nor record.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import pytest
from helpers import cli_command

from conftest import cgroup_dirs, run_cli, wait_for
from minictr import roots
from minictr.engine import managed, system
from minictr.engine.network import firewall
from minictr.runtime.state import alive, read_state

pytestmark = pytest.mark.root


def traces(container: str, bridge: str = "") -> dict[str, list[str]]:
    """What the host carries of a container (and its network's bridge)."""
    elements = firewall.snapshot()
    return {
        "cgroups": sorted(d for d in cgroup_dirs() if os.path.basename(d) == container),
        "links": [n for n in (f"mv-{container}", bridge) if n and os.path.exists(f"/sys/class/net/{n}")],
        "nft": [str(e) for kind in ("bridges", "same") for e in elements.get(kind, []) if bridge and bridge in str(e)],
    }


def start(data_root: str, root: str, *args: str) -> tuple[str, dict]:
    done = run_cli("run", "-d", *args, "busybox", "sleep", "600", data_root=data_root, state_root=root)
    assert done.returncode == 0, done.stderr
    container = done.stdout.strip()
    return container, read_state(os.path.join(root, "containers", container))


def test_system_prune_removes_what_a_deleted_state_root_left(data_root: str, tmp_path: pathlib.Path) -> None:
    root = str(tmp_path / "deleted")
    container, state = start(data_root, root, "-p", "127.0.0.1::80")
    bridge, port = state["network"]["bridge"], state["network"]["ports"][0]
    key = roots.key_of(root)
    assert key and roots.containers(key) == [container]
    assert roots.alias_of(bridge) == {"root": key, "network": "bridge"}
    assert all(traces(container, bridge).values()) and any(
        p["host_port"] == port["host_port"] for p in firewall.published()
    )
    shutil.rmtree(root)  # the root goes; the container, its cgroup, veth, bridge and port stay on the host

    removed = system.prune(str(tmp_path / "other"))

    assert f"cgroup /minictr/{container} ({root})" in removed and f"root {root}: gone, forgotten" in removed
    assert f"bridge {bridge} ({root})" in removed
    wait_for(lambda: not alive(state["pid"], state["start"]), "the deleted root's container to be killed")
    assert traces(container, bridge) == {"cgroups": [], "links": [], "nft": []}
    mine = (port["host_port"], state["network"]["address"])
    assert mine not in [(p["host_port"], p["container_ip"]) for p in firewall.published()]
    assert key not in roots.recorded()


def test_system_prune_kills_a_recorded_container_whose_directory_vanished(data_root: str, state_root: str) -> None:
    container, state = start(data_root, state_root, "--network", "none")
    shutil.rmtree(os.path.join(state_root, "containers", container))  # nothing in the root knows it now

    done = run_cli("system", "prune", data_root=data_root, state_root=state_root)

    assert done.returncode == 0 and f"cgroup /minictr/{container} ({state_root})" in done.stdout.splitlines(), done
    wait_for(lambda: not alive(state["pid"], state["start"]), "the container to be killed")
    assert traces(container) == {"cgroups": [], "links": [], "nft": []}
    assert roots.containers(roots.key_of(state_root) or "") == []


def test_system_prune_after_kill_9_of_a_foreground_minictr(data_root: str, state_root: str) -> None:
    """The foreground minictr dies with SIGKILL; prune removes its container's directory, lease and bridge."""
    import signal
    import subprocess

    from conftest import orphans_adopted
    from minictr.engine.network import agent
    from minictr.engine.network.store import NetworkStore

    def comm(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/comm") as handle:
                return handle.read().strip()
        except OSError:
            return ""  # gone meanwhile

    command = cli_command("run", "busybox", "sleep", "600", data_root=data_root, state_root=state_root)
    containers = os.path.join(state_root, "containers")
    with orphans_adopted() as adopted:
        minictr = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def started() -> bool:
            names = os.listdir(containers) if os.path.isdir(containers) else []
            return any(read_state(os.path.join(containers, c)).get("spec") for c in names)

        wait_for(started, "the container to start")
        container = os.listdir(containers)[0]
        bridge = NetworkStore(state_root).get("bridge").bridge
        minictr.send_signal(signal.SIGKILL)
        minictr.wait()
        # the bridge's netlink agent, adopted here too, outlives the command by design, until the prune
        wait_for(lambda: not [p for p in adopted() if comm(p) != agent.PROCESS_NAME], "the container to die")
        removed = run_cli("system", "prune", data_root=data_root, state_root=state_root).stdout.splitlines()
        assert adopted() == []  # the agent went with the bridge (and is reaped here)

    assert f"container {container} ({state_root})" in removed
    assert os.listdir(containers) == [] and os.listdir(os.path.join(state_root, "networks", "bridge", "leases")) == []
    assert traces(container, bridge) == {"cgroups": [], "links": [], "nft": []}


def test_an_empty_bridge_whose_root_is_no_longer_recorded_goes(data_root: str, tmp_path: pathlib.Path) -> None:
    """A bridge's alias names its root; a root nobody records any more (its record was lost) cannot claim it."""
    from minictr.kernel import cgroups

    root = str(tmp_path / "lost")
    container, state = start(data_root, root)
    bridge = state["network"]["bridge"]
    run_cli("kill", container, data_root=data_root, state_root=root)
    directory = os.path.join(root, "containers", container)
    # the monitor records the exit and leaves its own cgroup; losing the root under it would race that
    wait_for(lambda: not managed.monitor_alive(directory), "the container's monitor to end")
    wait_for(lambda: not os.path.exists(f"/sys/class/net/mv-{container}"), "the container to die")
    cgroups.load(state["cgroup"]).destroy()  # its own cgroup goes, as its root's sweep would take it; the bridge stays
    roots.forget(roots.key_of(root) or "")
    shutil.rmtree(root)

    removed = system.prune(str(tmp_path / "other"))

    assert f"bridge {bridge}: its root is no longer recorded" in removed
    assert traces(container, bridge) == {"cgroups": [], "links": [], "nft": []}


def test_prune_removes_a_monitors_cgroup_no_monitor_is_in(tmp_path: pathlib.Path) -> None:
    """A monitor killed before it could leave its cgroup (kill -9) leaves it empty: prune takes it."""
    from minictr.engine import monitor_cgroup

    manager = monitor_cgroup.plan()
    assert manager is not None
    manager.create({})

    removed = system.prune(str(tmp_path / "root"))

    assert any("no monitor left in it" in line for line in removed), removed
    assert not any(os.path.isdir(d) for d in manager.dirs.values())
