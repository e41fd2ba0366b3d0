"""Links, addresses and routes, through netlink with pyroute2 (never by running ``ip``).

What one container on a bridge network gets::

    host network namespace                         container's network namespace
    ┌─────────────────────────────────┐            ┌──────────────────────────────┐
    │ mctr-<id> bridge  10.88.0.1/24  │            │ lo        127.0.0.1 (up)     │
    │   └── mv-<container> (veth) ════╪════════════╪═ eth0      10.88.0.2/24       │
    └─────────────────────────────────┘            │ default via 10.88.0.1        │
                                                   └──────────────────────────────┘

The container end of the veth pair is created directly inside the container's
namespace, already named ``eth0`` (the host may have an ``eth0`` of its own).
Configuring it needs a netlink socket *in* that namespace: the container's
child process opens one and hands it over (SCM_RIGHTS), so the caller never
enters a namespace and never forks — pyroute2's ``NetNS`` would fork the
caller, which is unsafe in a multithreaded Jupyter kernel.

pyroute2 is imported only here, and only by containers that need a network.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, TypeVar

    T = TypeVar("T")

from minictr.engine.network import HOST_DIR
from minictr.errors import HostError
from minictr.files import write_atomic

#: Interfaces minictr creates: bridges ``mctr-<network id>``, host ends of veths ``mv-<container id>``.
BRIDGE_PREFIX = "mctr-"
VETH_PREFIX = "mv-"
#: pyroute2 errors come from netlink: ENODEV (gone already) is not a failure when deleting.
ENODEV = 19


def off_event_loop(function: Callable[..., T]) -> Callable[..., T]:
    """Run ``function`` in a short-lived thread when this thread runs an asyncio loop.

    pyroute2's synchronous API drives an asyncio loop of its own, which it
    cannot do inside a running one — and a Jupyter kernel's main thread runs one.
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        asyncio = sys.modules.get("asyncio")  # not imported: certainly no loop running
        if asyncio is None or asyncio._get_running_loop() is None:
            return function(*args, **kwargs)
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = function(*args, **kwargs)
            except BaseException as exc:  # handed back to the caller's thread
                outcome["error"] = exc

        worker = threading.Thread(target=target, name=f"minictr-{function.__name__}")
        worker.start()
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        value: T = outcome["value"]
        return value

    return wrapper


@contextlib.contextmanager
def iproute(fileno: int | None = None) -> Iterator[Any]:
    """An IPRoute on the host's network namespace, or on the namespace of netlink socket ``fileno``."""
    from pyroute2 import IPRoute  # heavy (tens of ms): only bridge networks pay for it

    ipr = IPRoute(fileno=fileno) if fileno is not None else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def link_exists(name: str) -> bool:
    """True when the host has an interface ``name`` (a sysfs lookup: no netlink, no import)."""
    return os.path.exists(f"/sys/class/net/{name}")


@off_event_loop
def host_networks(exclude: tuple[str, ...] = ()) -> list[tuple[ipaddress.IPv4Network, str]]:
    """The IPv4 networks this host already uses: its routes and its addresses, with the device of each.

    A bridge network must overlap none of them, or the host would no longer
    know where to send those addresses. ``exclude`` skips devices (a network's own bridge).
    """
    found: list[tuple[ipaddress.IPv4Network, str]] = []
    with iproute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for route in ipr.get_routes(family=2):
            if route["dst_len"] == 0 or route.get_attr("RTA_TABLE") not in (254, None):
                continue  # the default route overlaps everything; only the main table matters
            device = names.get(route.get_attr("RTA_OIF"), "?")
            if device not in exclude:
                found.append(
                    (ipaddress.IPv4Network(f"{route.get_attr('RTA_DST')}/{route['dst_len']}", strict=False), device)
                )
        for addr in ipr.get_addr(family=2):
            device = names.get(addr["index"], "?")
            if device not in exclude:
                found.append(
                    (ipaddress.IPv4Network(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}", strict=False), device)
                )
    return found


@off_event_loop
def uplink_mtu() -> int:
    """The MTU of the device holding the host's default route (1500 without one)."""
    with iproute() as ipr:
        for route in ipr.get_default_routes(family=2):
            index = route.get_attr("RTA_OIF")
            if index:
                return int(ipr.get_links(index)[0].get_attr("IFLA_MTU"))
    return 1500


@off_event_loop
def bridge_up(name: str, gateway: str, prefixlen: int, mtu: int, alias: str = "") -> None:
    """Create bridge ``name`` holding the gateway address, up; let it route 127.0.0.1 (published ports).

    ``alias`` (the interface alias) says which state root and network made it, for sweeps.
    """
    from pyroute2 import NetlinkError

    with iproute() as ipr:
        if not ipr.link_lookup(ifname=name):
            try:
                # a MAC of its own: a bridge without one takes its ports' lowest, and changes it when that
                # port leaves, so the other members' ARP entries for the gateway go stale (their packets
                # to it, DNS queries included, are lost for half a minute)
                ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=_local_mac())
            except NetlinkError as exc:
                hint = (
                    ": this kernel has no bridge support (modprobe bridge), or use --network none"
                    if exc.code == 95
                    else ""
                )
                raise HostError(f"creating bridge {name}: {os.strerror(exc.code)}{hint}") from exc
        index = ipr.link_lookup(ifname=name)[0]
        if not any(a.get_attr("IFA_ADDRESS") == gateway for a in ipr.get_addr(index=index, family=2)):
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up", **({"ifalias": alias} if alias else {}))
    # A published port reached through 127.0.0.1 is DNATed to the container but keeps its
    # source 127.0.0.1, which the kernel refuses to route out of a non-loopback device unless
    # route_localnet is set on it. Set on the bridge only, and gone with it.
    write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")


def _local_mac() -> str:
    """A random unicast, locally administered MAC address (as Docker gives its bridges)."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{octet:02x}" for octet in octets)


@off_event_loop
def delete_link(name: str) -> None:
    """Delete interface ``name`` if it exists (a veth takes its peer with it)."""
    if not name or not link_exists(name):
        return
    from pyroute2 import NetlinkError

    with iproute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code != ENODEV:
                raise HostError(f"deleting interface {name}: {exc}") from exc


@off_event_loop
def add_veth(host_name: str, bridge: str, pid: int, mtu: int) -> None:
    """A veth pair: ``host_name`` on ``bridge`` (up), its peer ``eth0`` inside the network namespace of ``pid``."""
    with iproute() as ipr:
        master = ipr.link_lookup(ifname=bridge)
        if not master:
            raise HostError(f"bridge {bridge} is missing")
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, peer={"ifname": "eth0", "net_ns_pid": pid, "mtu": mtu})
        index = ipr.link_lookup(ifname=host_name)[0]
        ipr.link("set", index=index, master=master[0], state="up")


@off_event_loop
def configure_inside(netlink_fd: int, address: str, prefixlen: int, gateway: str) -> None:
    """Inside the container (through its netlink socket): address ``eth0``, bring it up, route via the gateway.

    Its MAC address is made from the IPv4 address (``02:42:`` and the four bytes, as Docker does): a container
    that gets the address of one that stopped (a restart) also gets its MAC, so the neighbours' ARP caches stay
    right and their connections to that address fail at once instead of timing out.
    """
    with iproute(netlink_fd) as ipr:
        index = ipr.link_lookup(ifname="eth0")[0]
        ipr.link("set", index=index, address=mac_for(address))
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
        ipr.route("add", dst="0.0.0.0/0", gateway=gateway)


def mac_for(address: str) -> str:
    """The locally administered MAC of a container address: ``02:42:0a:58:00:02`` for 10.88.0.2."""
    return "02:42:" + ":".join(f"{byte:02x}" for byte in ipaddress.IPv4Address(address).packed)


def write_sysctl(name: str, value: str) -> None:
    """Write ``/proc/sys/<name>``."""
    try:
        with open(f"/proc/sys/{name}", "w") as handle:
            handle.write(value)
    except OSError as exc:
        raise HostError(f"setting {name.replace('/', '.')}={value}: {exc.strerror}") from exc


def read_sysctl(name: str) -> str:
    """Read ``/proc/sys/<name>``."""
    with open(f"/proc/sys/{name}") as handle:
        return handle.read().strip()


# IPv4 forwarding is one switch for the whole host (per-device switches would have to cover
# every device replies may arrive on, which is all of them). minictr turns it on when its
# first bridge appears and, if it was off before, turns it off again when its last bridge
# goes (the file below remembers that it was minictr's doing).
_FORWARD = "net/ipv4/ip_forward"
_FORWARD_SAVED = os.path.join(HOST_DIR, "ip_forward.saved")


def enable_forwarding() -> None:
    """Turn on IPv4 forwarding, remembering to restore it if it was off (caller holds the host lock)."""
    if read_sysctl(_FORWARD) == "1":
        return
    write_atomic(_FORWARD_SAVED, b"0\n", durable=False)
    write_sysctl(_FORWARD, "1")


def restore_forwarding() -> bool:
    """Turn IPv4 forwarding back off if minictr turned it on (its last bridge is gone); True if it did."""
    try:
        with open(_FORWARD_SAVED) as handle:
            saved = handle.read().strip()
    except FileNotFoundError:
        return False
    write_sysctl(_FORWARD, saved or "0")  # an empty file: written by a minictr killed meanwhile, so it was off
    os.unlink(_FORWARD_SAVED)
    return True


def minictr_bridges() -> list[str]:
    """The bridges minictr made that exist on this host now (any state root)."""
    return sorted(n for n in os.listdir("/sys/class/net") if n.startswith(BRIDGE_PREFIX))


@off_event_loop
def describe(netlink_fd: int | None = None) -> list[dict[str, Any]]:
    """Every interface of a namespace as pyroute2 reports it: name, kind, state, master, peer, addresses."""
    with iproute(netlink_fd) as ipr:
        links = list(ipr.get_links())
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in links}
        addresses: dict[int, list[str]] = {}
        for addr in ipr.get_addr(family=2):
            addresses.setdefault(addr["index"], []).append(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        result = []
        for link in links:
            info = link.get_attr("IFLA_LINKINFO")
            result.append({
                "index": link["index"], "name": link.get_attr("IFLA_IFNAME"),
                "kind": info.get_attr("IFLA_INFO_KIND") if info else ("loopback" if link["index"] == 1 else "device"),
                "state": link.get_attr("IFLA_OPERSTATE"), "mtu": link.get_attr("IFLA_MTU"),
                "master": names.get(link.get_attr("IFLA_MASTER")), "peer_index": link.get_attr("IFLA_LINK"),
                "addresses": addresses.get(link["index"], []),
            })  # fmt: skip
    return result
