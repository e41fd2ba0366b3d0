"""``minictr system prune``: sweep every state root this host has recorded, and what deleted ones left.

For each root recorded in :mod:`minictr.roots`:

- a root that exists is swept as the next ``run`` would sweep it, only
  wider: the directories of dead containers (their cgroups, leases, veths,
  published ports), containers recorded host-wide whose directory vanished,
  partial files of killed writers, and the bridges (with their nftables
  elements) of networks left without members;
- a root whose directory is gone can no longer say what it made, so the
  host-wide record does: its recorded containers lose their cgroups (processes
  killed: nothing else could find them) and veths, its bridges (found by their
  alias) go with their nftables elements, and the root is forgotten.

Then the host itself: an empty bridge whose alias names a root nobody
records any more, nftables elements naming a bridge that does not exist or
leading to an address no bridge serves, the table once empty, and IPv4
forwarding restored when minictr's last bridge is gone. Only what minictr can
attribute is touched: cgroups of recorded containers, interfaces named and
aliased by minictr, elements of its own table.
"""

from __future__ import annotations

import os

from minictr import roots
from minictr.engine.container_dir import containers_dir, remove_stale


def prune(state_root: str | None = None) -> list[str]:
    """Sweep every recorded state root (and ``state_root``, recorded now); one line per thing removed."""
    from minictr import paths

    current = state_root or paths.state_root()
    base = containers_dir(current)  # recorded, as every root minictr uses
    if os.geteuid() != 0:  # rootless: nothing host-wide was made, nothing is recorded
        return [f"container {os.path.basename(d)} ({current})" for d in remove_stale(base)]
    removed = []
    for key, path in roots.recorded().items():
        if os.path.isdir(path):
            removed += _sweep_root(key, path)
        else:
            removed += _sweep_gone(key, path)
    return removed + _sweep_host()


def _sweep_root(key: str, path: str) -> list[str]:
    """A root that exists: dead containers, vanished ones, networks without members."""
    from minictr.engine.container_dir import _locked  # creating a directory and sweeping exclude each other

    base = os.path.join(path, "containers")
    removed = [f"container {os.path.basename(d)} ({path})" for d in remove_stale(base)] if os.path.isdir(base) else []
    if os.path.isdir(base):
        with _locked(base):
            for container in roots.containers(key):
                if not os.path.exists(os.path.join(base, container)):  # its directory was removed by hand
                    removed += _release_recorded(key, container, path)
    return removed + _settle_networks(key, path)


def _sweep_gone(key: str, path: str) -> list[str]:
    """A root whose directory is gone: its containers' cgroups and veths, its bridges; then forget it."""
    from minictr.engine.network import agent, firewall, links
    from minictr.engine.network.store import host_lock

    removed = []
    with host_lock():
        for container in roots.containers(key):
            removed += _release_recorded(key, container, path)
        for bridge in links.minictr_bridges():
            if roots.alias_of(bridge).get("root") == key:
                firewall.withdraw(bridges=[bridge])
                links.delete_link(bridge)
                agent.stop(bridge)
                removed.append(f"bridge {bridge} ({path})")
        roots.forget(key)
    return [*removed, f"root {path}: gone, forgotten"]


def _release_recorded(key: str, container: str, path: str) -> list[str]:
    """A recorded container without a directory: kill what runs in its cgroup, remove it and its veth."""
    from minictr.engine.network import links
    from minictr.kernel import cgroups

    removed = []
    if cgroups.available():
        manager = cgroups.new(cgroups.default_path(container))
        if any(os.path.isdir(d) for d in manager.dirs.values()):
            manager.destroy()
            removed.append(f"cgroup {cgroups.default_path(container)} ({path})")
    veth = f"{links.VETH_PREFIX}{container}"[:15]
    if links.link_exists(veth):
        links.delete_link(veth)
        removed.append(f"veth {veth} ({path})")
    roots.forget_container(os.path.join(path, "containers", container), key)
    return removed


def _settle_networks(key: str, path: str) -> list[str]:
    """Release dead leases; take down the bridges of networks without members (definitions stay); drop torn ones.

    A bridge whose alias names this root but no network of it (its definition
    was removed, or torn and discarded, while it was up) goes too.
    """
    from minictr.engine.network import agent, firewall, links
    from minictr.engine.network.attach import settle
    from minictr.engine.network.store import NetworkStore, host_lock

    store = NetworkStore(path)
    removed = []
    with host_lock():
        bridges = links.minictr_bridges()  # before the definitions are read: what appears later is defined
        for name in store.torn():  # a create killed before its definition was written (under the lock: not in flight)
            store.remove(name)
            removed.append(f"network {name}: its create did not finish ({path})")
        networks = store.all()
        for network in networks:
            up = links.link_exists(network.bridge)
            settle(store, network.name)
            if up and not links.link_exists(network.bridge):
                removed.append(f"bridge {network.bridge} of network {network.name} ({path})")
        defined = {network.bridge for network in networks}
        for bridge in bridges:
            if roots.alias_of(bridge).get("root") == key and bridge not in defined:
                firewall.withdraw(bridges=[bridge])
                links.delete_link(bridge)
                agent.stop(bridge)
                removed.append(f"bridge {bridge}: its network is gone ({path})")
    return removed


def _sweep_host() -> list[str]:
    """Elements of the nftables table no bridge accounts for; forwarding once the last bridge is gone; the
    monitors' cgroup once no monitor is in it.
    """
    from minictr.engine import monitor_cgroup
    from minictr.engine.network import agent, firewall, links
    from minictr.engine.network.store import host_lock

    removed = []
    with host_lock():
        known = roots.recorded()
        for bridge in links.minictr_bridges():
            alias = roots.alias_of(bridge)
            if alias.get("root") and alias["root"] not in known and not os.listdir(f"/sys/class/net/{bridge}/brif"):
                links.delete_link(bridge)  # made by a root nobody records any more, and empty: nothing can claim it
                agent.stop(bridge)
                removed.append(f"bridge {bridge}: its root is no longer recorded")
        removed += agent.sweep()
        removed += monitor_cgroup.sweep()
        bridges = links.minictr_bridges()
        subnets = [net for net, device in links.host_networks() if device in bridges] if bridges else []
        removed += firewall.withdraw_orphans(bridges, subnets)
        if not bridges:
            if firewall.drop_if_empty():
                removed.append(f"nftables: table ip {firewall.TABLE}")
            if links.restore_forwarding():
                removed.append("net.ipv4.ip_forward: restored to 0")
    return removed
