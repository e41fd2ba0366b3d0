"""Putting a container on its network, and taking it off again: what ``minictr run --network`` does.

    --network none            only lo (the child brings it up)
    --network host            the host's stack: no network namespace at all
    --network bridge          the default network (its bridge, NAT, no names)
    --network NAME            a user-defined network (its DNS server names the members)
    --network container:ID    the network namespace of a running container

For a bridge network the work is split around the container's set-up, so
that it overlaps with it::

    plan()      before spawn: check -p/-P, create /etc/{hosts,hostname,resolv.conf}
                to bind-mount, start a thread for join()
    join()      (thread, while the child sets up) under the host lock: recover
                leases of dead containers, bring the bridge up if it is down,
                start its netlink agent if it has none, lease an address,
                record it all in state.json, publish ports, start the
                network's DNS server if it has none (user networks), write the
                container's /etc/hosts and /etc/resolv.conf
    connect()   after READY, before START: the veth pair, eth0's address and route,
                by the bridge's netlink agent (:mod:`.agent`; here if none answers)
    disconnect() when the container is gone: ports, veth, lease; the bridge and
                its rules when it was the last member of a user-defined network

The default network's bridge stays up when its last member leaves, as
Docker keeps docker0: bringing a bridge and its nftables elements up and
down again costs every ``minictr run`` more than the rest of its network
work. It is still minictr's to remove: ``network prune`` and ``system prune``
take down every bridge without members (``system prune`` also those of
deleted state roots, by their alias), and forwarding goes back with the last one.

Everything is recorded (state.json and the lease) *before* it is created,
and every removal tolerates what is already gone, so a ``kill -9`` of
minictr at any point is cleaned up by the next run or ``network prune``.
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr import faults
from minictr.engine.network import DEFAULT_NETWORK, names
from minictr.errors import MinictrError, UsageError

if TYPE_CHECKING:
    from minictr.engine.network.store import Network, NetworkStore


def parse_mode(text: str | None) -> tuple[str, str]:
    """``--network`` -> (mode, argument): none, host, container (id or name), bridge (network name)."""
    text = text or DEFAULT_NETWORK
    if text in ("none", "host"):
        return text, ""
    if text.startswith("container:"):
        target = text.split(":", 1)[1]
        if not target:
            raise UsageError("--network container: needs a container id or name after the colon")
        return "container", target
    return "bridge", DEFAULT_NETWORK if text == "default" else text


class Plan:
    """What a container's network will be; for a bridge network, the work in flight."""

    def __init__(self, mode: str, mounts: list[dict[str, Any]], namespace_path: str | None = None) -> None:
        self.mode = mode
        self.mounts = mounts
        self.namespace_path = namespace_path
        self.section: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def needs_netlink(self) -> bool:
        """True when the child must hand over a netlink socket of its new namespace."""
        return self.mode == "bridge"

    def wait(self) -> None:
        """Wait for :func:`join`; re-raise its error here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error


def _share_network(directory: str, hostname: str, owner: int, target: dict[str, Any]) -> Plan:
    """``--network container:ID``: its network namespace, and its /etc/hosts and resolv.conf (the names it has)."""
    source = os.path.dirname(target["spec"]["root"]["path"])
    mounts = names.write_files(directory, hostname, "", "", owner)
    for mount in mounts:
        theirs = os.path.join(source, os.path.basename(mount["source"]))
        if mount["destination"] != "/etc/hostname" and os.path.exists(theirs):
            mount["source"] = theirs
    return Plan("container", mounts, f"/proc/{target['pid']}/ns/net")


def plan(
    directory: str,
    mode_text: str | None,
    *,
    hostname: str,
    name: str | None = None,
    aliases: list[str] | None = None,
    publish: list[str] | None = None,
    publish_all: bool = False,
    image_config: dict[str, Any] | None = None,
    owner: int = 0,
    joined: dict[str, Any] | None = None,
    dns: list[str] | None = None,
    service: str | None = None,
) -> Plan:
    """Check the options and start the network work for the container in ``directory``.

    ``joined`` is the state of the running container ``--network container:ID``
    names (the caller finds it: containers are the layer above networks).
    ``dns`` (``--dns``) is where a user network's DNS server forwards what it
    does not know for this container (elsewhere: its /etc/resolv.conf's
    nameservers); ``service`` is one more name it answers to, shared with the
    other replicas of its service.
    """
    from minictr.engine.network.resolver import parse_dns

    mode, argument = parse_mode(mode_text)
    dns = parse_dns(dns or [], embedded=mode == "bridge" and argument != DEFAULT_NETWORK)
    wanted: list[dict[str, Any]] = []
    if publish or publish_all:
        from minictr.engine.network.ports import exposed_ports, parse_publish

        wanted = [parse_publish(p) for p in publish or []] + (exposed_ports(image_config or {}) if publish_all else [])
    if (wanted or publish_all) and mode != "bridge":
        raise UsageError(f"-p/-P: published ports need a bridge network, not --network {mode_text}")
    if aliases and mode != "bridge":
        raise UsageError(f"--network-alias: aliases need a user-defined network, not --network {mode_text}")
    if mode in ("none", "host"):
        hosts = names.hosts_text(None, hostname) if mode == "none" else names.read_text("/etc/hosts")
        return Plan(mode, names.write_files(directory, hostname, hosts, names.resolv_text(mode == "host", dns), owner))
    if mode == "container":
        if joined is None:
            raise UsageError(f"--network container:{argument}: no such running container")
        return _share_network(directory, hostname, owner, joined)
    if os.geteuid() != 0:
        raise UsageError(
            f"--network {mode_text or DEFAULT_NETWORK}: bridge networks need root; use --network none or host"
        )
    if aliases and argument == DEFAULT_NETWORK:
        raise UsageError("--network-alias: the default network has no names; create one with minictr network create")
    from minictr.engine.network.ports import claim_host_ports
    from minictr.engine.network.store import NetworkStore

    state_root = os.path.dirname(os.path.dirname(directory))
    if argument != DEFAULT_NETWORK:
        NetworkStore(state_root).get(argument)  # an unknown network fails here, before anything is spawned
    resolv = names.resolv_text(servers=dns if argument == DEFAULT_NETWORK else None)  # a user network's: by join()
    result = Plan(mode, names.write_files(directory, hostname, "", resolv, owner))  # hosts: by join()
    result.section = {
        "mode": "bridge",
        "state_root": state_root,
        "network": argument,
        "container": os.path.basename(directory),
        "directory": directory,
        "hostname": hostname,
        "name": name,
        "aliases": list(aliases or []),
        "service": service,
        "dns": dns if argument != DEFAULT_NETWORK else [],
        "veth": f"mv-{os.path.basename(directory)}"[:15],
        "ports": claim_host_ports(wanted),
        "owner": owner,
    }

    def work() -> None:
        try:
            join(result.section)
        except BaseException as exc:  # re-raised in the caller's thread by Plan.wait
            result._error = exc

    result._thread = threading.Thread(target=work, name="minictr-network", daemon=True)
    result._thread.start()
    return result


def join(section: dict[str, Any]) -> None:
    """Lease an address, bring the network up, publish ports, name the members (see the module doc)."""
    from minictr.engine.network import agent, firewall
    from minictr.engine.network.store import NetworkStore, host_lock, live_leases, next_address

    store = NetworkStore(section["state_root"])
    known = store.read_definition(section["network"])
    if known is None or not os.path.exists(f"/sys/class/net/{known.bridge}"):
        import pyroute2  # noqa: F401 - the bridge is to be brought up: the slow import first, outside the lock
    with host_lock():
        network = store.get(section["network"])
        live = live_leases(store, network.name)
        section["bridge"] = network.bridge
        _record(section)  # the bridge is named in state.json before it may be created
        network = _ensure_up(store, network)
        agent.ensure(network.bridge)  # starts one only when the bridge has none (it came up, or its agent died)
        if network.user_defined:
            from minictr.engine.network import resolver

            resolver.ensure(store, network)
        section.update(address=next_address(network, set(live)), prefixlen=network.prefixlen, gateway=network.gateway,
                       mtu=network.mtu)  # fmt: skip
        for port in section["ports"]:
            port["container_ip"] = section["address"]
        _record(section)
        store.write_lease(network.name, section["address"], section)
        faults.point("lease")
        firewall.publish(section["ports"])
        faults.point("nft")
        write_names(section, network.user_defined)


def connect(plan: Plan, process: Any) -> None:
    """After READY: the veth pair into the container's namespace, eth0 addressed, the default route.

    The bridge's netlink agent does it (:mod:`.agent`: no pyroute2 import here);
    this process does the same work itself when the agent is not asked (see :func:`.agent.attach`).
    """
    from minictr.engine.network import agent

    plan.wait()
    section = plan.section
    try:
        if not agent.attach(section, process.pid, process.netlink_fd):
            from minictr.engine.network import links

            links.add_veth(section["veth"], section["bridge"], process.pid, section["mtu"])
            # pyroute2 closes the socket it is given: hand it a duplicate, the process closes its own
            fd = os.dup(process.netlink_fd)
            links.configure_inside(fd, section["address"], section["prefixlen"], section["gateway"])
        faults.point("veth")
    finally:
        process.close_netlink()


def disconnect(section: dict[str, Any]) -> None:
    """Take a container off its network; bring the network down if it was the last member."""
    from minictr.engine.network.store import NetworkStore, host_lock, release_lease

    store = NetworkStore(section["state_root"])
    with host_lock():
        if section.get("address"):
            release_lease(store, section)
        settle(store, section["network"], keep_default=True)


def settle(store: NetworkStore, network: str, keep_default: bool = False) -> None:
    """After a member left: take the network down (DNS server, rules, bridge) when none is left.

    ``keep_default`` leaves the default network's bridge and rules up without
    members (see the module doc); the prunes take it down.
    """
    from minictr.engine.network import agent, firewall, links, resolver
    from minictr.engine.network.store import live_leases

    if live_leases(store, network):
        return
    if keep_default and network == DEFAULT_NETWORK:
        return
    resolver.stop(store, network)
    definition = store.load(network)  # None when gone, or torn (then discarded with its bridge)
    bridge = definition.bridge if definition else None
    if bridge:
        firewall.withdraw(bridges=[bridge], drop_if_empty=True)
        links.delete_link(bridge)
        agent.stop(bridge)
    if not links.minictr_bridges():
        links.restore_forwarding()


def rename(section: dict[str, Any], name: str) -> dict[str, Any]:
    """A member's new name (``minictr rename``): in its lease, which its network's DNS server answers from, and in
    its own /etc/hosts. Returns the section with the new name, for state.json.

    A stopped member holds no lease: its next start takes the name from its options.
    """
    from minictr.engine.network.store import NetworkStore, host_lock

    section = {**section, "name": name}
    if section.get("mode") != "bridge" or not section.get("address"):
        return section
    store = NetworkStore(section["state_root"])
    with host_lock():  # never re-creates a lease that its container's exit is releasing
        lease = store.leases(section["network"]).get(section["address"], {})
        if lease.get("container") != section["container"]:
            return section
        store.write_lease(section["network"], section["address"], {**lease, "name": name})
        write_hosts(section)
    return section


def write_names(section: dict[str, Any], user_defined: bool) -> None:
    """The container's /etc/hosts (its own address and names); on a user network, the resolv.conf naming its server."""
    from minictr.engine.network.resolver import resolv_conf

    write_hosts(section)
    if user_defined:
        text = resolv_conf(section["gateway"], names.read_text("/etc/resolv.conf"))
        names.write_in_place(os.path.join(section["directory"], "resolv.conf"), text, section.get("owner", 0))


def write_hosts(section: dict[str, Any]) -> None:
    """The container's /etc/hosts: its own address and names (in place: it is bind-mounted into the container)."""
    own = names.names_of(section.get("hostname", ""), section.get("name"), section.get("aliases", []))
    path = os.path.join(section["directory"], "hosts")
    names.write_in_place(path, names.hosts_text(section["address"], own), section.get("owner", 0))


def _ensure_up(store: NetworkStore, network: Network) -> Network:
    """Bring the network's bridge and rules up if they are not (the caller holds the host lock).

    A bridge that is down has no live members, so an automatic subnet may still move.
    """
    from minictr.engine.network import firewall, links
    from minictr.engine.network.pools import free_subnet, overlapping
    from minictr.roots import bridge_alias

    if links.link_exists(network.bridge):
        return network
    import ipaddress

    host = links.host_networks(exclude=(network.bridge,))
    clash = overlapping(ipaddress.IPv4Network(network.subnet), host)  # bridge subnets are IPv4 (store.py)
    if clash and network.auto_subnet:  # the host took our subnet meanwhile (another state root's bridge, a VPN)
        others = [(ipaddress.ip_network(n.subnet), n.name) for n in store.all() if n.name != network.name]
        subnet = free_subnet(host + others)
        network.subnet, network.gateway = str(subnet), str(next(subnet.hosts()))
        store.save(network)
    elif clash:
        raise MinictrError(f"network {network.name}: its subnet {network.subnet} overlaps {clash} on this host now")
    first = not links.minictr_bridges()
    links.enable_forwarding()
    links.bridge_up(
        network.bridge,
        network.gateway,
        network.prefixlen,
        network.mtu,
        alias=bridge_alias(store.state_root, network.name),
    )
    firewall.add_bridge(network.bridge, first)
    return network


def _record(section: dict[str, Any]) -> None:
    """Write the network section into the container's state.json (before creating what it names)."""
    from minictr.runtime.state import update_state

    update_state(section["directory"], {"network": section})
