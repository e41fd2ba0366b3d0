"""06 · A container network built by hand with pyroute2, in namespaces of its own (``python -m minictr.tutorial.netlab``).

Four network namespaces stand in for the real thing, so the host's own
network is never touched::

    nb06-world  198.51.100.2 ─── veth ─── 198.51.100.1  nb06-host  (the "host": a bridge, NAT)
                                                          nb06-br 10.200.0.1/24
                                                            ├── veth ── eth0 10.200.0.2  nb06-a
                                                            └── veth ── eth0 10.200.0.3  nb06-b

It runs in a child process of its own (it enters namespaces, which a
notebook kernel must never do), prints a JSON report and removes everything,
including the mount of /run/netns (and the directory) that naming a
namespace makes on a host that had none.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

from pyroute2 import IPRoute, NetNS, netns

NAMES = ("nb06-host", "nb06-a", "nb06-b", "nb06-world")


def make_namespaces() -> None:
    """Empty network stacks, pinned as /run/netns/<name> (each has only lo, down)."""
    for name in NAMES:
        netns.create(name)
        with NetNS(name) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")


def veth_pair(outside: str, inside: str, peer_ns: str, address: str, gateway: str | None = None) -> None:
    """A veth pair from nb06-host to ``peer_ns``: ``outside`` stays, ``inside`` moves over as eth0."""
    with NetNS("nb06-host") as host:
        host.link("add", ifname=outside, kind="veth", peer={"ifname": inside, "net_ns_fd": peer_ns})
        host.link("set", index=host.link_lookup(ifname=outside)[0], state="up")
    with NetNS(peer_ns) as ns:
        index = ns.link_lookup(ifname=inside)[0]
        ns.link("set", index=index, ifname="eth0", state="up")
        ip, prefix = address.split("/")
        ns.addr("add", index=index, address=ip, prefixlen=int(prefix))
        if gateway:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)


def bridge(name: str, address: str, ports: list[str]) -> None:
    """A bridge in nb06-host holding the gateway address, with the veths' host ends as its ports."""
    with NetNS("nb06-host") as host:
        host.link("add", ifname=name, kind="bridge")
        index = host.link_lookup(ifname=name)[0]
        ip, prefix = address.split("/")
        host.addr("add", index=index, address=ip, prefixlen=int(prefix))
        host.link("set", index=index, state="up")
        for port in ports:
            host.link("set", index=host.link_lookup(ifname=port)[0], master=index)


def uplink() -> None:
    """nb06-host's way out: a veth to nb06-world (its "internet"), addressed on both ends."""
    with NetNS("nb06-host") as host:
        host.link("add", ifname="uplink", kind="veth", peer={"ifname": "eth0", "net_ns_fd": "nb06-world"})
        index = host.link_lookup(ifname="uplink")[0]
        host.addr("add", index=index, address="198.51.100.1", prefixlen=24)
        host.link("set", index=index, state="up")
    with NetNS("nb06-world") as world:
        index = world.link_lookup(ifname="eth0")[0]
        world.addr("add", index=index, address="198.51.100.2", prefixlen=24)
        world.link("set", index=index, state="up")


NAT = """\
table ip nb06 {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "uplink" ip saddr 10.200.0.0/24 masquerade; }
  chain prerouting { type nat hook prerouting priority dstnat; iifname "uplink" tcp dport 8080 dnat to 10.200.0.2:80; }
}
"""


def nat() -> None:
    """Forwarding on in nb06-host (its own sysctl: a namespace has its own), and the nftables rules."""
    netns.pushns("nb06-host")  # this child process itself moves: nft and /proc/sys then see nb06-host
    try:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as handle:
            handle.write("1")
        subprocess.run(["nft", "-f", "-"], input=NAT, text=True, check=True)
    finally:
        netns.popns()


def talk(server_ns: str, server_ip: str, port: int, client_ns: str, target: str, target_port: int | None = None) -> str:
    """A TCP server in one namespace, a client in another; the server answers with the address it saw."""
    listener = netns.create_socket(server_ns, socket.AF_INET, socket.SOCK_STREAM)
    client = netns.create_socket(client_ns, socket.AF_INET, socket.SOCK_STREAM)  # both made before any thread runs
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server_ip, port))
    listener.listen(1)
    listener.settimeout(1.5)

    def serve() -> None:
        try:
            connection, peer = listener.accept()
        except OSError:
            return
        connection.sendall(f"answered, saw the client as {peer[0]}".encode())
        connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client.settimeout(1)
    try:
        client.connect((target, target_port or port))
        return client.recv(100).decode()
    except OSError as exc:
        return f"no answer ({exc.strerror or exc})"
    finally:
        client.close()
        thread.join(2)
        listener.close()


def interfaces(name: str) -> list[str]:
    """``name: addresses`` of each interface of a namespace, as pyroute2 reports them."""
    with NetNS(name) as ns:
        addresses: dict[int, list[str]] = {}
        for addr in ns.get_addr(family=2):
            addresses.setdefault(addr["index"], []).append(f"{addr.get_attr('IFA_ADDRESS')}/{addr['prefixlen']}")
        return [f"{link.get_attr('IFLA_IFNAME')}: {' '.join(addresses.get(link['index'], [])) or '-'}" for link in ns.get_links()]


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


def main() -> None:
    report: dict[str, object] = {}
    remove_namespaces()  # a previous run that was interrupted
    before = netns_dir_state()
    try:
        make_namespaces()
        report["1 empty"] = interfaces("nb06-a")
        veth_pair("veth-a", "eth0-a", "nb06-a", "10.200.0.2/24", None)
        veth_pair("veth-b", "eth0-b", "nb06-b", "10.200.0.3/24", None)
        report["2 no bridge yet"] = talk("nb06-b", "10.200.0.3", 80, "nb06-a", "10.200.0.3")
        bridge("nb06-br", "10.200.0.1/24", ["veth-a", "veth-b"])
        report["3 bridged"] = talk("nb06-a", "10.200.0.2", 80, "nb06-b", "10.200.0.2")  # b asks a: no failed ARP
        for name in ("nb06-a", "nb06-b"):
            with NetNS(name) as ns:
                ns.route("add", dst="0.0.0.0/0", gateway="10.200.0.1")
        uplink()
        report["4 out, no NAT"] = talk("nb06-world", "198.51.100.2", 80, "nb06-a", "198.51.100.2")
        nat()
        report["5 out, NAT"] = talk("nb06-world", "198.51.100.2", 81, "nb06-a", "198.51.100.2")
        report["6 published"] = talk("nb06-a", "10.200.0.2", 80, "nb06-world", "198.51.100.1", 8080)
        report["host"] = interfaces("nb06-host")
    finally:
        remove_namespaces()
        restore_netns_dir(before)
    report["left"] = [name for name in NAMES if name in netns.listnetns()]
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
