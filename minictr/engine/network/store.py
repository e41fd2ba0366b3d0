"""Networks on disk, and IP address management (IPAM): who holds which address.

Each network is a directory under the state root, beside the containers::

    <state root>/networks/<name>/network.json     subnet, gateway, bridge name, MTU
    <state root>/networks/<name>/leases/<ip>.json  one file per address in use

A lease names its container (id, directory, name, aliases) and every host
resource made for it (its veth, its published ports), so that it can be torn
down by whoever finds it dead: :func:`live_leases` drops the leases of
containers that died without cleaning up (``kill -9`` of minictr). Every file
is written atomically (:mod:`minictr.files`); one torn anyway is the trace of
a crash, not an error: a torn lease is released, a torn definition discarded
with its bridge (:meth:`NetworkStore.load`).

All of it — definitions, leases, bridges, the firewall table, forwarding — is
changed under one host-wide lock (:func:`host_lock`), since bridges, routes and
the nftables table are shared by every state root on the host. Critical
sections are a few milliseconds (files and a netlink call or two), so 20
containers starting at once simply queue.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import threading
from dataclasses import asdict, dataclass, field, fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from minictr import faults
from minictr.engine.network import DEFAULT_NETWORK, HOST_DIR
from minictr.engine.network.pools import free_subnet, overlapping
from minictr.errors import MinictrError, UsageError
from minictr.files import locked, read_json, remove_partials, write_json

#: Names that are modes, not networks.
RESERVED = ("bridge", "host", "none", "default")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

_thread_lock = threading.RLock()
_depth = 0
_held = contextlib.ExitStack()


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Hold the host-wide network lock (re-entrant within this process, exclusive across processes)."""
    global _depth
    with _thread_lock:
        if _depth == 0:
            os.makedirs(HOST_DIR, mode=0o700, exist_ok=True)
            _held.enter_context(locked(os.path.join(HOST_DIR, "lock")))
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0:
                _held.close()  # lets go of the lock


@dataclass
class Network:
    """One bridge network: its address plan and the names of what it creates on the host."""

    name: str
    id: str
    subnet: str
    gateway: str
    bridge: str
    mtu: int = 1500
    auto_subnet: bool = True  # chosen by minictr: may move if the host took it meanwhile
    created: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # --label KEY=VALUE (compose marks its networks)

    @property
    def user_defined(self) -> bool:
        """Docker's rule: names resolve only on networks the user created, not on the default one."""
        return self.name != DEFAULT_NETWORK

    @property
    def prefixlen(self) -> int:
        """The subnet's prefix length (24 for a /24)."""
        return ipaddress.ip_network(self.subnet).prefixlen


class NetworkStore:
    """The networks of one state root."""

    def __init__(self, state_root: str) -> None:
        from minictr import roots

        self.state_root = state_root
        self.root = os.path.join(state_root, "networks")
        roots.record(state_root)  # host-wide, before anything is made from this root

    def path(self, name: str) -> str:
        """The directory of network ``name``."""
        return os.path.join(self.root, name)

    def names(self) -> list[str]:
        """Every defined network, sorted."""
        if not os.path.isdir(self.root):
            return []
        return sorted(n for n in os.listdir(self.root) if os.path.isfile(os.path.join(self.root, n, "network.json")))

    def get(self, name: str) -> Network:
        """Network ``name``; the default network is defined on first use."""
        network = self.load(name)
        if network:
            return network
        if name == DEFAULT_NETWORK:
            return self.create(DEFAULT_NETWORK)
        raise UsageError(f"network {name!r} not found (minictr network ls lists them)")

    def load(self, name: str) -> Network | None:
        """Network ``name`` as defined on disk, or None.

        A definition that cannot be read (empty or torn: its writer crashed)
        is the trace of that crash: what it left on the host is taken down and
        the network forgotten (:func:`discard_torn`), so None.
        """
        network = self.read_definition(name)
        if network is None and os.path.exists(os.path.join(self.path(name), "network.json")):
            discard_torn(self, name)
        return network

    def read_definition(self, name: str) -> Network | None:
        """``network.json`` of network ``name``, or None when it is missing or cannot be read."""
        data = read_json(os.path.join(self.path(name), "network.json"))
        with contextlib.suppress(TypeError):  # TypeError: not a definition minictr wrote
            if data:
                # keys this version does not know (a newer minictr's, e.g. labels) are not a torn file
                known = {f.name for f in fields(Network)}
                return Network(**{key: value for key, value in data.items() if key in known})
        return None

    def all(self) -> list[Network]:
        """Every defined network (torn definitions are discarded on the way)."""
        return [network for network in map(self.load, self.names()) if network]

    def save(self, network: Network) -> None:
        """Write ``network.json`` atomically."""
        write_json(os.path.join(self.path(network.name), "network.json"), asdict(network), indent=1)

    def create(self, name: str, subnet: str | None = None, gateway: str | None = None,
               labels: dict[str, str] | None = None) -> Network:  # fmt: skip
        """Define a network (``minictr network create``); its bridge appears with its first container."""
        from minictr.engine.network import links

        if not NAME.match(name):
            raise UsageError(f"network name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
        if (name in RESERVED and name != DEFAULT_NETWORK) or (name == DEFAULT_NETWORK and subnet):
            raise UsageError(f"network name {name!r} is reserved")
        with host_lock():
            if self.load(name):
                raise UsageError(f"network {name!r} already exists")
            taken = [(ipaddress.ip_network(n.subnet), f"network {n.name}") for n in self.all() if n.name != name]
            host = links.host_networks()
            net = parse_subnet(subnet, taken + host) if subnet else free_subnet(taken + host)
            gw = parse_gateway(gateway, net)
            network_id = os.urandom(32).hex()
            network = Network(
                name=name, id=network_id, subnet=str(net), gateway=str(gw), bridge=f"mctr-{network_id[:10]}",
                mtu=links.uplink_mtu(), auto_subnet=subnet is None, created=_now(), labels=dict(labels or {}),
            )  # fmt: skip
            os.makedirs(os.path.join(self.path(name), "leases"), exist_ok=True)
            faults.point("network")
            self.save(network)
        return network

    def torn(self) -> list[str]:
        """Networks whose ``create`` died before their definition was written (hold the host lock to ask)."""
        if not os.path.isdir(self.root):
            return []
        return sorted(
            n for n in os.listdir(self.root) if not os.path.exists(os.path.join(self.root, n, "network.json"))
        )

    def remove(self, name: str) -> None:
        """Forget network ``name`` (the caller checked it is empty and down)."""
        shutil.rmtree(self.path(name), ignore_errors=True)

    # --- leases ----------------------------------------------------------------------------

    def leases(self, name: str) -> dict[str, dict[str, Any]]:
        """Every lease of network ``name``: address -> lease, dead or alive; ``{}`` for a torn one."""
        directory = os.path.join(self.path(name), "leases")
        if not os.path.isdir(directory):
            return {}
        found = {}
        for killed in (directory, self.path(name)):
            remove_partials(killed)  # of writers killed half-way
        for entry in os.listdir(directory):
            if entry.endswith(".json"):
                lease = read_json(os.path.join(directory, entry))
                found[entry[: -len(".json")]] = lease
        return found

    def write_lease(self, name: str, address: str, lease: dict[str, Any]) -> None:
        """Record that ``address`` is held (the caller holds the host lock)."""
        os.makedirs(os.path.join(self.path(name), "leases"), exist_ok=True)
        write_json(os.path.join(self.path(name), "leases", f"{address}.json"), lease, indent=1)

    def release(self, name: str, address: str, container: str) -> bool:
        """Give ``address`` back, if ``container`` still holds it; True when it did."""
        path = os.path.join(self.path(name), "leases", f"{address}.json")
        if read_json(path).get("container") != container:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True


def lease_alive(lease: dict[str, Any]) -> bool:
    """True while the lease's container (or the minictr starting it) runs."""
    from minictr.runtime.state import alive, read_state

    state = read_state(lease.get("directory", ""))
    return bool(state) and state.get("id") == lease.get("container") and alive(state["pid"], state.get("start", ""))


def next_address(network: Network, taken: set[str]) -> str:
    """The lowest free address of the subnet: not the network, the gateway, the broadcast or a lease."""
    subnet = ipaddress.ip_network(network.subnet)
    for address in subnet.hosts():
        if str(address) != network.gateway and str(address) not in taken:
            return str(address)
    raise UsageError(f"network {network.name!r} ({network.subnet}) has no free address left")


def parse_subnet(text: str, taken: list[tuple[Any, str]]) -> ipaddress.IPv4Network:
    """``--subnet``: an IPv4 network with room for a gateway and a container, overlapping nothing."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise UsageError(f"--subnet {text!r}: {exc} (e.g. 10.90.0.0/24)") from exc
    if net.prefixlen > 30:
        raise UsageError(f"--subnet {text!r}: too small, use a prefix of /30 or shorter")
    clash = overlapping(net, taken)
    if clash:
        raise UsageError(f"--subnet {text!r} overlaps {clash}")
    return net


def parse_gateway(text: str | None, net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """``--gateway``: an address of the subnet (default: its first), not the network or broadcast address."""
    if text is None:
        return next(net.hosts())
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise UsageError(f"--gateway {text!r}: {exc}") from exc
    if address not in net or address in (net.network_address, net.broadcast_address):
        raise UsageError(f"--gateway {text!r} is not a usable address of {net}")
    return address


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --- leases of dead containers, torn files --------------------------------------------------


def live_leases(store: NetworkStore, network: str) -> dict[str, dict[str, Any]]:
    """The leases of running containers; those of dead ones are released (ports, veth, address)."""
    live = {}
    for address, lease in store.leases(network).items():
        if not {"container", "network", "address"} <= lease.keys():  # torn or empty: its writer crashed
            _release_torn(store, network, address)
        elif lease_alive(lease):
            live[address] = lease
        else:
            release_lease(store, lease)
    return live


def discard_torn(store: NetworkStore, network: str) -> None:
    """A network whose definition cannot be read (a crash while it was written): take it down and forget it.

    Its bridge is found by its alias (see :func:`minictr.roots.bridge_alias`).
    A torn definition with live members is no crash's doing: that is an error.
    """
    from minictr import roots
    from minictr.engine.network import agent, firewall, links

    with host_lock():
        if store.read_definition(network) or not os.path.exists(store.path(network)):
            return  # written (or removed) by another process since it was read
        live = live_leases(store, network)
        if live:
            raise MinictrError(
                f"network {network}: {store.path(network)}/network.json is unreadable, "
                f"yet container(s) {', '.join(sorted(lease['container'] for lease in live.values()))} use it"
            )
        key = roots.record(store.state_root)
        for bridge in links.minictr_bridges():
            if roots.alias_of(bridge) == {"root": key, "network": network}:
                firewall.withdraw(bridges=[bridge], drop_if_empty=True)
                links.delete_link(bridge)
                agent.stop(bridge)
        if not links.minictr_bridges():
            links.restore_forwarding()
        store.remove(network)


def release_lease(store: NetworkStore, lease: dict[str, Any]) -> None:
    """Withdraw a lease's ports, delete its veth, give its address back. Each step tolerates a repeat.

    The veth is deleted by the bridge's netlink agent when one answers (no pyroute2 import here).
    """
    from minictr.engine.network import agent, firewall, links

    firewall.withdraw(ports=lease.get("ports", []))
    veth = lease.get("veth", "")
    if veth and links.link_exists(veth) and not agent.detach(lease.get("bridge", ""), veth):
        links.delete_link(veth)
    store.release(lease["network"], lease["address"], lease["container"])


def _release_torn(store: NetworkStore, network: str, address: str) -> None:
    """Give back an address whose lease is torn: the ports published to it, then the file."""
    from minictr.engine.network import firewall

    firewall.withdraw_address(address)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(store.path(network), "leases", f"{address}.json"))
