"""06 · A container network built by hand with pyroute2, in namespaces of its own.

Four network namespaces stand in for the real thing, so the host's own
network is never touched::

    nb06-world  198.51.100.2 ─── veth ─── 198.51.100.1  nb06-host  (the "host": a bridge, NAT)
                                                          nb06-br 10.200.0.1/24
                                                            ├── veth ── eth0 10.200.0.2  nb06-a
                                                            └── veth ── eth0 10.200.0.3  nb06-b

``python -m minictr.tutorial.netlab STEP`` runs one step (:data:`STEPS`) in a
child process of its own (it enters namespaces, which a notebook kernel must
never do) and prints a JSON report: what a TCP client got, and the state of
every namespace (links, addresses, routes, the nft ruleset). The namespaces
are named (pinned under /run/netns), so the lab lives on between steps.
``clean`` removes everything, including the mount of /run/netns (and the
directory) that naming a namespace makes on a host that had none. Without a
step, every step runs and then ``clean``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute, NetNS, netns

NAMES = ("nb06-a", "nb06-b", "nb06-host", "nb06-world")


def make_namespaces() -> None:
    """Empty network stacks, pinned as /run/netns/<name>: each has only ``lo``, down."""
    for name in NAMES:
        netns.create(name)


def loopback_up() -> None:
    """Bring ``lo`` up in each namespace: the kernel then gives it 127.0.0.1/8."""
    for name in NAMES:
        with NetNS(name) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def veth_pair(outside: str, peer_ns: str) -> None:
    """A veth pair: ``outside`` stays in nb06-host, its peer is created in ``peer_ns`` and named eth0."""
    with NetNS("nb06-host") as host:
        host.link("add", ifname=outside, kind="veth", peer={"ifname": "eth0", "net_ns_fd": peer_ns})
        host.link("set", index=host.link_lookup(ifname=outside)[0], state="up")
    with NetNS(peer_ns) as ns:
        ns.link("set", index=ns.link_lookup(ifname="eth0")[0], state="up")


def address(ns_name: str, ifname: str, cidr: str) -> None:
    """Give ``ifname`` in ``ns_name`` an address; the kernel adds the route to its subnet by itself."""
    ip, prefix = cidr.split("/")
    with NetNS(ns_name) as ns:
        ns.addr("add", index=ns.link_lookup(ifname=ifname)[0], address=ip, prefixlen=int(prefix))


def bridge(name: str, cidr: str, ports: list[str]) -> None:
    """A bridge in nb06-host holding the gateway address, with the veths' host ends as its ports."""
    with NetNS("nb06-host") as host:
        host.link("add", ifname=name, kind="bridge")
        index = host.link_lookup(ifname=name)[0]
        for port in ports:
            host.link("set", index=host.link_lookup(ifname=port)[0], master=index)
        host.link("set", index=index, state="up")
    address("nb06-host", name, cidr)


def default_route(ns_name: str, gateway: str) -> None:
    """Everything not on a local subnet goes to ``gateway``."""
    with NetNS(ns_name) as ns:
        ns.route("add", dst="0.0.0.0/0", gateway=gateway)


def uplink() -> None:
    """nb06-host's way out: a veth to nb06-world (its "internet"), addressed on both ends."""
    with NetNS("nb06-host") as host:
        host.link("add", ifname="uplink", kind="veth", peer={"ifname": "eth0", "net_ns_fd": "nb06-world"})
        host.link("set", index=host.link_lookup(ifname="uplink")[0], state="up")
    with NetNS("nb06-world") as world:
        world.link("set", index=world.link_lookup(ifname="eth0")[0], state="up")
    address("nb06-host", "uplink", "198.51.100.1/24")
    address("nb06-world", "eth0", "198.51.100.2/24")


MASQUERADE = """\
table ip nb06 {
  chain postrouting {
    type nat hook postrouting priority srcnat;
    oifname "uplink" ip saddr 10.200.0.0/24 masquerade
  }
}
"""

PUBLISH = """\
table ip nb06 {
  chain prerouting {
    type nat hook prerouting priority dstnat;
    iifname "uplink" tcp dport 8080 dnat to 10.200.0.2:80
  }
}
"""


def in_host(action: Callable[[], Any]) -> Any:
    """Run ``action`` with this child process moved into nb06-host: nft and /proc/sys then see nb06-host."""
    netns.pushns("nb06-host")
    try:
        return action()
    finally:
        netns.popns()


def nft(script: str) -> None:
    """Load an nft script into nb06-host (a namespace has its own firewall)."""
    in_host(lambda: subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True))


def forwarding(on: bool) -> None:
    """Whether nb06-host routes packets between its interfaces (a sysctl of its own: each namespace has one)."""

    def write() -> None:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as handle:
            handle.write("1" if on else "0")

    in_host(write)


def talk(server_ns: str, server_ip: str, port: int, client_ns: str, target: str, target_port: int | None = None) -> str:
    """A TCP server in one namespace, a client in another; the server answers with the address it saw."""
    listener = netns.create_socket(server_ns, socket.AF_INET, socket.SOCK_STREAM)
    client = netns.create_socket(client_ns, socket.AF_INET, socket.SOCK_STREAM)  # both made before any thread runs
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server_ip, port))
    listener.listen(1)
    listener.settimeout(4)

    def serve() -> None:
        try:
            connection, peer = listener.accept()
        except OSError:
            return
        connection.sendall(f"answered, saw the client as {peer[0]}".encode())
        connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client.settimeout(3)
    try:
        client.connect((target, target_port or port))
        answer: bytes = client.recv(100)
        return answer.decode()
    except OSError as exc:
        return f"no answer ({exc.strerror or exc})"
    finally:
        client.close()
        thread.join(5)
        listener.close()


def _routes(ns: IPRoute, names: dict[int, str]) -> list[str]:
    out = []
    for route in ns.get_routes(family=socket.AF_INET, table=254):  # the main table, as `ip route` shows
        dst = route.get_attr("RTA_DST")
        line = f"{dst}/{route['dst_len']}" if dst else "default"
        if route.get_attr("RTA_GATEWAY"):
            line += f" via {route.get_attr('RTA_GATEWAY')}"
        out.append(f"{line} dev {names.get(route.get_attr('RTA_OIF'), '?')}")
    return out


def namespace_state(name: str) -> dict[str, Any]:
    """Links (kind, state, bridge, veth peer index), IPv4 addresses and routes of a namespace, from netlink."""
    with NetNS(name) as ns:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ns.get_links()}
        links = []
        for link in ns.get_links():
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info else "loopback" if names[link["index"]] == "lo" else "device"
            links.append(
                {
                    "name": names[link["index"]],
                    "index": link["index"],
                    "kind": kind,
                    "up": bool(link["flags"] & 1),
                    "master": names.get(link.get_attr("IFLA_MASTER")),
                    "peer": link.get_attr("IFLA_LINK") if kind == "veth" else None,
                    "addresses": [
                        f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                        for a in ns.get_addr(family=socket.AF_INET)
                        if a["index"] == link["index"]
                    ],
                }
            )
        return {"links": links, "routes": _routes(ns, names)}


def _host_extras() -> dict[str, Any]:
    with open("/proc/sys/net/ipv4/ip_forward") as handle:
        forwarding = handle.read().strip() == "1"
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return {"forwarding": forwarding, "ruleset": ruleset}


def state() -> dict[str, Any]:
    """Every lab namespace's state; nb06-host's also says whether it forwards, and its nft ruleset."""
    report = {name: namespace_state(name) for name in NAMES if name in netns.listnetns()}
    if "nb06-host" in report:
        report["nb06-host"].update(in_host(_host_extras))
    return report


def step_namespaces() -> dict[str, Any]:
    make_namespaces()
    fresh = namespace_state("nb06-a")
    loopback_up()
    inherited = in_host(_host_extras)["forwarding"]
    forwarding(False)  # a new namespace copies the host's setting (net.core.devconf_inherit_init_net): start from off
    lo = fresh["links"][0]
    said = (
        f"nb06-a when it was new: {lo['name']} {'UP' if lo['up'] else 'DOWN'}, addresses: {lo['addresses'] or 'none'}"
    )
    return {"said": [said], "inherited forwarding": inherited}


def step_veth() -> dict[str, Any]:
    veth_pair("veth-a", "nb06-a")
    veth_pair("veth-b", "nb06-b")
    return {}


def step_address() -> dict[str, Any]:
    address("nb06-a", "eth0", "10.200.0.2/24")
    address("nb06-b", "eth0", "10.200.0.3/24")
    return {"probe": {"nb06-a → 10.200.0.3:80 (nb06-b)": talk("nb06-b", "10.200.0.3", 80, "nb06-a", "10.200.0.3")}}


def step_bridge() -> dict[str, Any]:
    bridge("nb06-br", "10.200.0.1/24", ["veth-a", "veth-b"])
    return {"probe": {"nb06-b → 10.200.0.2:80 (nb06-a)": talk("nb06-a", "10.200.0.2", 80, "nb06-b", "10.200.0.2")}}


def step_route() -> dict[str, Any]:
    uplink()
    forwarding(True)
    default_route("nb06-a", "10.200.0.1")
    default_route("nb06-b", "10.200.0.1")
    return {
        "probe": {
            "nb06-a → 198.51.100.2:80 (nb06-world)": talk("nb06-world", "198.51.100.2", 80, "nb06-a", "198.51.100.2")
        }
    }


def step_nat() -> dict[str, Any]:
    nft(MASQUERADE)
    return {
        "probe": {
            "nb06-a → 198.51.100.2:80 (nb06-world)": talk("nb06-world", "198.51.100.2", 81, "nb06-a", "198.51.100.2")
        }
    }


def step_publish() -> dict[str, Any]:
    before = talk("nb06-a", "10.200.0.2", 80, "nb06-world", "198.51.100.1", 8080)
    nft(PUBLISH)
    after = talk("nb06-a", "10.200.0.2", 80, "nb06-world", "198.51.100.1", 8080)
    return {
        "probe": {
            "nb06-world → 198.51.100.1:8080, before the rule": before,
            "nb06-world → 198.51.100.1:8080, after it": after,
        }
    }


STEPS: dict[str, Callable[[], dict[str, Any]]] = {
    "namespaces": step_namespaces,
    "veth": step_veth,
    "address": step_address,
    "bridge": step_bridge,
    "route": step_route,
    "nat": step_nat,
    "publish": step_publish,
}


def remove_namespaces() -> None:
    """Delete the namespaces: every interface, address, route and rule in them goes too."""
    for name in NAMES:
        if name in netns.listnetns():
            netns.remove(name)


NETNS_DIR = "/run/netns"


def netns_dir_state() -> tuple[bool, int]:
    """Whether /run/netns exists, and how many mounts sit on it (``ip netns`` and pyroute2 mount it shared)."""
    with open("/proc/self/mountinfo") as handle:
        mounts = sum(1 for line in handle if line.split()[4] == NETNS_DIR)
    return os.path.isdir(NETNS_DIR), mounts


def restore_netns_dir(before: tuple[bool, int]) -> None:
    """Undo what creating a named namespace did to the host: the mount of /run/netns, the directory.

    Only when it is empty (nobody else's namespace lives there) and only what was not there before.
    """
    from minictr.kernel.linux import MNT_DETACH, umount2

    existed, mounts = before
    while netns_dir_state()[1] > mounts and not os.listdir(NETNS_DIR):
        umount2(NETNS_DIR, MNT_DETACH)
    if not existed and os.path.isdir(NETNS_DIR) and netns_dir_state()[1] <= mounts and not os.listdir(NETNS_DIR):
        os.rmdir(NETNS_DIR)


def clean(before: tuple[bool, int]) -> dict[str, Any]:
    """Remove the lab; say what is left of it (nothing, if all went well)."""
    remove_namespaces()
    restore_netns_dir(before)
    return {"left": [name for name in NAMES if name in netns.listnetns()], "netns_dir": netns_dir_state()}


def main(argv: list[str]) -> dict[str, Any]:
    """``STEP``: one step and the state after it; ``clean EXISTED MOUNTS``; nothing: every step, then clean."""
    if argv and argv[0] == "clean":
        return clean((argv[1] == "1", int(argv[2])))
    if argv:
        report = STEPS[argv[0]]()
        report["state"] = state()
        return report
    remove_namespaces()  # a previous run that was interrupted
    before = netns_dir_state()
    try:
        report = {name: step() for name, step in STEPS.items()}
        report["state"] = state()
    finally:
        report_clean = clean(before)
    return {**report, **report_clean}


if __name__ == "__main__":
    json.dump(main(sys.argv[1:]), sys.stdout)
