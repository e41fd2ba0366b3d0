"""The embedded DNS server of a user-defined network (what Docker answers at 127.0.0.11).

A container on a user-defined network asks this server, and it answers:

- **A records for the network's members**: a container's name, its
  ``--network-alias`` names, its hostname, and its service (the label
  ``com.docker.compose.service``). A name several members share (the replicas
  of a service, or one alias given to several containers) answers with every
  address, the list rotated by one on each query, so clients that take the
  first address spread over the replicas (round-robin DNS, as Docker does);
- **other names forwarded** to the container's ``--dns`` servers if it was
  given any, else to the host's (``/etc/resolv.conf`` as the server read it
  at start), and their answer passed back as it came; SERVFAIL when none of
  them answers;
- **NXDOMAIN** for a single-label name no member has (no upstream could know
  it), or when there is nowhere to forward to. A member's name asked for
  another type (AAAA, MX) is NOERROR with no answer, so that a resolver asking
  A and AAAA together does not take the name for missing.

Only members are answered: a query from an address that holds no lease of
the network is dropped, so the server is no open resolver for whoever can
route to the gateway. UDP only: the answers are small (a few A records).

The names come from the leases on disk (:mod:`minictr.engine.network.store`), the
record minictr keeps of every member anyway, re-read when the leases
directory changes: there is no second copy to keep in step, and a member
that is gone is gone from DNS as soon as its lease is released.

Run as ``python -m minictr.engine.network.dns NETWORK_DIR ADDRESS BRIDGE`` by
:mod:`minictr.engine.network.resolver`, which says why there is one process per
network and why it listens on the gateway's address. It names itself
``minictr-dns``, records itself in ``NETWORK_DIR/dns.json``, and ends by
itself when its bridge is gone or the record names another process.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROCESS_NAME = "minictr-dns"
RECORD = "dns.json"
PORT = 53
SERVICE_LABEL = "com.docker.compose.service"
TTL = 600  # Docker's: names live as long as containers
FORWARD_TIMEOUT = 2.0
RELOAD_EVERY = 1.0  # also re-checked on a timer: a member that died without releasing its lease goes within a second


class Names:
    """The network's names and who may ask, read from its leases."""

    def __init__(self, leases_dir: str) -> None:
        self.leases_dir = leases_dir
        self.by_name: dict[str, list[str]] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.turns: dict[str, int] = {}
        self._seen: tuple[int, float] = (-1, 0.0)

    def refresh(self) -> None:
        """Re-read the leases when their directory changed, or when the last read is a second old."""
        try:
            changed = os.stat(self.leases_dir).st_mtime_ns
        except OSError:
            changed = -1
        if changed == self._seen[0] and time.monotonic() - self._seen[1] < RELOAD_EVERY:
            return
        self._seen = (changed, time.monotonic())
        from minictr.engine.network.store import lease_alive
        from minictr.files import read_json

        members = {}
        for entry in sorted(os.listdir(self.leases_dir)) if changed != -1 else []:
            lease = read_json(os.path.join(self.leases_dir, entry)) if entry.endswith(".json") else {}
            if lease.get("address") and lease_alive(lease):
                members[lease["address"]] = lease
        self.members = members
        self.by_name = names_table(members)

    def lookup(self, name: str) -> list[str]:
        """The addresses of ``name`` (lower case, no trailing dot), rotated by one on each call."""
        addresses = self.by_name.get(name, [])
        if len(addresses) < 2:
            return addresses
        turn = self.turns.get(name, 0)
        self.turns[name] = turn + 1
        turn %= len(addresses)
        return addresses[turn:] + addresses[:turn]

    def reverse(self, address: str) -> str | None:
        """The first name of the member at ``address`` (for PTR), or None."""
        lease = self.members.get(address)
        return names_of(lease)[0] if lease and names_of(lease) else None


def names_of(lease: dict[str, Any]) -> list[str]:
    """The names a member answers to, lower case: name, aliases, service, hostname (once each)."""
    found = (lease.get("name"), *lease.get("aliases", []), lease.get("service"), lease.get("hostname"))
    return list(dict.fromkeys(n.lower().rstrip(".") for n in found if n))


def names_table(members: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """name -> every member address that answers to it, in address order."""
    import ipaddress

    table: dict[str, list[str]] = {}
    for address in sorted(members, key=ipaddress.IPv4Address):
        for name in names_of(members[address]):
            table.setdefault(name, []).append(address)
    return table


def host_upstreams(path: str = "/etc/resolv.conf") -> list[str]:
    """The host's nameservers. Loopback ones too: this server runs on the host, where they answer."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    return [words[1] for words in map(str.split, lines) if len(words) >= 2 and words[0] == "nameserver"]


def split_server(text: str) -> tuple[str, int]:
    """``IP`` or ``IP:PORT`` -> (ip, port)."""
    host, _, port = text.partition(":")
    return host, int(port) if port else PORT


# --- answering ---------------------------------------------------------------------------------


def local_answer(request: Any, names: Names) -> Any | None:
    """The reply to ``request`` (a dnslib DNSRecord) from the network's names, or None to forward it."""
    from dnslib import PTR, QTYPE, RCODE, RR, A

    question = request.q
    name = str(question.qname).rstrip(".").lower()
    reply = request.reply()  # the same id and question, authoritative, recursion available
    addresses = names.lookup(name)
    if addresses:
        if question.qtype in (QTYPE.A, QTYPE.ANY):
            for address in addresses:
                reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=TTL))
        return reply
    if question.qtype == QTYPE.PTR and name.endswith(".in-addr.arpa"):
        target = names.reverse(".".join(reversed(name[: -len(".in-addr.arpa")].split("."))))
        if target:
            reply.add_answer(RR(question.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=TTL))
            return reply
    if "." in name:
        return None
    reply.header.rcode = RCODE.NXDOMAIN
    return reply


def forward(data: bytes, upstreams: list[str]) -> bytes | None:
    """Ask each upstream in turn; its answer as it came, or None when none answered."""
    for server in upstreams:
        address = split_server(server)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(FORWARD_TIMEOUT)
            try:
                sock.connect(address)  # connected: only that server's datagrams are received
                sock.send(data)
                answer = sock.recv(65535)
            except (OSError, ValueError):
                continue
        if answer[:2] == data[:2]:  # the same query id
            return answer
    return None


class Server:
    """One network's server: a UDP socket on the gateway's address, and the names of the members."""

    def __init__(self, network_dir: str, address: str, bridge: str) -> None:
        self.network_dir, self.address, self.bridge = network_dir, address, bridge
        self.names = Names(os.path.join(network_dir, "leases"))
        self.upstreams = host_upstreams()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND: the bridge's address may still be settling
        self.sock.bind((address, PORT))

    def wanted(self) -> bool:
        """True while the bridge is up and the record still names this process."""
        try:
            with open(os.path.join(self.network_dir, RECORD)) as handle:
                mine = json.load(handle).get("pid") == os.getpid()
        except (OSError, ValueError):
            return False
        return mine and os.path.exists(f"/sys/class/net/{self.bridge}")

    def serve(self) -> None:
        """Answer until no longer :meth:`wanted` (checked every second)."""
        while True:
            if not select.select([self.sock], [], [], 1.0)[0]:
                if not self.wanted():
                    return
                continue
            data, client = self.sock.recvfrom(4096)
            try:
                self.names.refresh()
                lease = self.names.members.get(client[0])
                if lease is not None:
                    self.handle(data, client, lease)
            except Exception:  # one bad query (or a lease read half-way) must not end every member's names
                import traceback

                traceback.print_exc()

    def handle(self, data: bytes, client: tuple[str, int], lease: dict[str, Any]) -> None:
        """Answer one query, locally or by forwarding it (in a thread: an upstream may be slow)."""
        from dnslib import OPCODE, RCODE, DNSError, DNSRecord

        try:
            request = DNSRecord.parse(data)
        except DNSError:
            return  # not DNS: nothing to answer
        if request.header.opcode != OPCODE.QUERY or not request.questions:
            reply = request.reply()
            reply.header.rcode = RCODE.NOTIMP
        else:
            reply = local_answer(request, self.names)
        if reply is not None:
            self.sock.sendto(reply.pack(), client)
            return
        upstreams = lease.get("dns") or self.upstreams
        threading.Thread(target=self.forward_for, args=(request, data, client, upstreams), daemon=True).start()

    def forward_for(self, request: Any, data: bytes, client: tuple[str, int], upstreams: list[str]) -> None:
        """Forward a query a member asked; NXDOMAIN with no upstream, SERVFAIL when none answers."""
        from dnslib import RCODE

        answer = forward(data, upstreams) if upstreams else None
        if answer is None:
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL if upstreams else RCODE.NXDOMAIN
            answer = reply.pack()
        self.sock.sendto(answer, client)


def main(argv: list[str]) -> int:
    """``python -m minictr.engine.network.dns NETWORK_DIR ADDRESS BRIDGE``: detach, bind, record, report, serve."""
    from minictr.engine.network import daemons

    network_dir, address, bridge = argv[1:4]
    daemons.detach(PROCESS_NAME)
    try:
        server = Server(network_dir, address, bridge)
        daemons.record(os.path.join(network_dir, RECORD), address=address)
    except OSError as exc:
        os.write(1, f"error {exc}\n".encode())
        return 1
    daemons.ready()
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
