"""``minictr network create | ls | inspect | rm | prune``: networks as a user manages them.

A network is a definition until its first container arrives: the bridge,
its address and its rules exist only while it has members (as with podman),
except the default network's, which stays up for the next container (as
Docker keeps docker0) until ``network prune`` or ``system prune``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.engine.network import DEFAULT_NETWORK
from minictr.engine.network.store import Network, NetworkStore, host_lock, live_leases
from minictr.errors import UsageError


def create(state_root: str, name: str, subnet: str | None = None, gateway: str | None = None) -> Network:
    """Define a user network; its subnet avoids the host's networks and the other networks."""
    if os.geteuid() != 0:
        raise UsageError("network create: bridge networks need root")
    if name == DEFAULT_NETWORK:
        raise UsageError(f"network name {name!r} is reserved for the default network")
    return NetworkStore(state_root).create(name, subnet, gateway)


def listing(state_root: str) -> list[dict[str, Any]]:
    """One row per network (the default one included, as Docker lists ``bridge``), plus host and none."""
    store = NetworkStore(state_root)
    rows = []
    names = [network.name for network in store.all()]  # torn definitions are discarded here
    if DEFAULT_NETWORK not in names and os.geteuid() == 0:
        names.insert(0, DEFAULT_NETWORK)  # defined on first use; listing it defines it
    for name in names:
        info = inspect(state_root, name)
        rows.append({"NETWORK ID": info["Id"][:12], "NAME": name, "DRIVER": "bridge", "SUBNET": info["Subnet"],
                     "GATEWAY": info["Gateway"], "CONTAINERS": str(len(info["Containers"]))})  # fmt: skip
    for name, driver in (("host", "host"), ("none", "null")):
        rows.append({"NETWORK ID": "-", "NAME": name, "DRIVER": driver, "SUBNET": "", "GATEWAY": "", "CONTAINERS": ""})
    return rows


def inspect(state_root: str, name: str) -> dict[str, Any]:
    """A network as JSON: its plan, whether its bridge is up, and its live members."""
    from minictr.engine.network import links

    store = NetworkStore(state_root)
    with host_lock():
        network = store.get(name)
        live = live_leases(store, name)
    return {
        "Name": network.name, "Id": network.id, "Driver": "bridge", "Created": network.created,
        "Subnet": network.subnet, "Gateway": network.gateway, "Bridge": network.bridge, "MTU": network.mtu,
        "Up": links.link_exists(network.bridge), "UserDefined": network.user_defined,
        "DNS": _dns(store, network),
        "Containers": {
            lease["container"]: {"Name": lease.get("name") or "", "IPv4Address": f"{address}/{network.prefixlen}",
                                 "Aliases": lease.get("aliases", []), "HostInterface": lease.get("veth", ""),
                                 "Ports": [_port_text(p) for p in lease.get("ports", [])]}
            for address, lease in sorted(live.items())
        },
    }  # fmt: skip


def _dns(store: NetworkStore, network: Network) -> dict[str, Any]:
    """The network's DNS server, while it runs (user networks with members)."""
    from minictr.engine.network.resolver import record, running

    pid = running(store, network.name)
    return {"Address": f"{record(store, network.name).get('address')}:53", "Pid": pid} if pid else {}


def _port_text(port: dict[str, Any]) -> str:
    host = f"{port['host_ip']}:" if port.get("host_ip") else "0.0.0.0:"
    return f"{host}{port['host_port']}->{port['container_port']}/{port['proto']}"


def remove(state_root: str, name: str) -> None:
    """``network rm``: only a user network, and only when no container uses it (dead members' leases are released).

    The command line sweeps dead containers first (the layer above networks).
    """
    from minictr.engine.network.attach import settle

    store = NetworkStore(state_root)
    if name == DEFAULT_NETWORK:
        raise UsageError(f"network rm: {name!r} is the default network and cannot be removed")
    with host_lock():
        store.get(name)
        live = live_leases(store, name)
        if live:
            users = ", ".join(sorted(lease["container"] for lease in live.values()))
            raise UsageError(f"network rm: network {name!r} is in use by container(s) {users}")
        settle(store, name)
        store.remove(name)


def prune(state_root: str) -> list[str]:
    """``network prune``: release dead containers' leases; remove unused user networks. Returns their names.

    The leases of containers whose minictr was killed are released (with their
    veths and rules; the command line sweeps those containers' directories
    first); then every network without members is taken down, and user
    networks without members are forgotten.
    """
    from minictr.engine.network.attach import settle

    store = NetworkStore(state_root)
    removed = []
    with host_lock():
        for name in store.torn():
            store.remove(name)
        for name in store.names():
            if live_leases(store, name):
                continue
            settle(store, name)
            if name != DEFAULT_NETWORK:
                store.remove(name)
                removed.append(name)
    return removed


def take_down_idle_default(state_root: str) -> bool:
    """Take the default network's bridge down if no container uses it; True if it was up and is now gone.

    The bridge outlives its last container, as docker0 does (see
    :mod:`minictr.engine.network.attach`); this is for a caller that promised
    to leave nothing behind, such as a notebook, without forgetting user
    networks as :func:`prune` does.
    """
    from minictr.engine.network.attach import settle

    store = NetworkStore(state_root)
    with host_lock():
        definition = store.load(DEFAULT_NETWORK)
        if definition is None or live_leases(store, DEFAULT_NETWORK):
            return False
        was_up = os.path.exists(f"/sys/class/net/{definition.bridge}")
        settle(store, DEFAULT_NETWORK)
        return was_up
