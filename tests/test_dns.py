"""Service discovery for real: each user network's DNS server, asked by DNS clients inside containers.

busybox ``nslookup`` in a container goes the way every program there does
(its /etc/resolv.conf names the server); for the order of the answers,
dnslib's client is run in a container's network namespace (``nsenter``).
Names the server does not know go to a DNS server this test runs on
loopback (``--dns 127.0.0.1:PORT``): no query leaves the host.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from helpers import cli_command
from test_network import Host

from conftest import run_cli, wait_for, wait_until
from minictr.engine.network import dns

pytestmark = pytest.mark.root

SERVICE = "com.docker.compose.service"


class Upstream:
    """A DNS server on 127.0.0.1 (a free port) that knows one name, ``outside.test``; it records what it was asked."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.asked: list[str] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        from dnslib import QTYPE, RCODE, RR, A, DNSRecord

        while True:
            try:
                data, client = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            request = DNSRecord.parse(data)
            name = str(request.q.qname).rstrip(".")
            self.asked.append(name)
            reply = request.reply()
            if name == "outside.test" and request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=60))
            elif name != "outside.test":
                reply.header.rcode = RCODE.NXDOMAIN
            self.sock.sendto(reply.pack(), client)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def host(data_root: str, state_root: str) -> Iterator[Host]:
    minictr = Host(data_root, state_root)
    yield minictr
    minictr.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


def nslookup(host: Host, network: str, name: str, *options: str) -> subprocess.CompletedProcess[str]:
    """busybox nslookup in a new container on ``network`` (it asks the server its resolv.conf names)."""
    return host.cli("run", "--rm", "--network", network, *options, "busybox", "nslookup", name, check=False)


def addresses_in(output: str) -> list[str]:
    """The addresses an nslookup printed as answers (not the server's own)."""
    lines = output.split("Name:", 1)[1].splitlines() if "Name:" in output else []
    return [line.split()[-1] for line in lines if line.startswith("Address")]


def ask_from(host: Host, container: str, name: str, qtype: str = "A") -> dict:
    """dnslib's client in ``container``'s network namespace, asking its gateway: rcode and answers in order."""
    state = json.loads(host.cli("inspect", container).stdout)[0]
    gateway = state["NetworkSettings"]["Gateway"]
    program = (
        "import json, sys; from dnslib import DNSRecord, RCODE\n"
        f"q = DNSRecord.question({name!r}, {qtype!r})\n"
        "for attempt in range(3):  # UDP: a client asks again, as every resolver does\n"
        f"    try: r = DNSRecord.parse(q.send({gateway!r}, 53, timeout=5)); break\n"
        "    except TimeoutError: pass\n"
        "print(json.dumps({'rcode': RCODE.get(r.header.rcode), 'answers': [str(a.rdata) for a in r.rr]}))"
    )
    done = subprocess.run(["nsenter", f"--net=/proc/{state['State']['Pid']}/ns/net", sys.executable, "-c", program],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def server_pid(host: Host, network: str) -> int:
    with open(os.path.join(host.state_root, "networks", network, dns.RECORD)) as handle:
        return json.load(handle)["pid"]


def process_name(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return None


# --- names ---------------------------------------------------------------------------------


def test_names_aliases_and_hostnames_resolve_through_the_networks_server(host: Host, upstream: Upstream) -> None:
    host.cli("network", "create", "dnsnames")
    server = host.detach("--network", "dnsnames", "--name", "db", "--network-alias", "database", "-h", "dbhost",
                         "busybox", "sleep", "120")  # fmt: skip
    address = host.address_of("dnsnames", server)
    gateway = host.inspect("dnsnames")["Gateway"]
    for name in ("db", "database", "dbhost", "DB"):  # names are not case-sensitive
        done = nslookup(host, "dnsnames", name, "--dns", upstream.address)
        assert addresses_in(done.stdout) == [address], (name, done.stdout, done.stderr)
        assert f"Server:\t\t{gateway}" in done.stdout
    resolv = host.cli("run", "--rm", "--network", "dnsnames", "busybox", "cat", "/etc/resolv.conf").stdout
    assert resolv.splitlines()[0] == f"nameserver {gateway}" and "options ndots:0" in resolv
    hosts = host.cli("run", "--rm", "--network", "dnsnames", "--name", "me", "busybox", "cat", "/etc/hosts").stdout
    assert "db" not in hosts.split() and "me" in hosts.split()  # /etc/hosts: only the container itself
    assert upstream.asked == []  # every one of them answered by the network's server


def test_rename_changes_the_name_the_network_answers_to(host: Host) -> None:
    host.cli("network", "create", "dnsrename")
    renamed = host.detach("--network", "dnsrename", "--name", "before", "busybox", "sleep", "120")
    client = host.detach("--network", "dnsrename", "busybox", "sleep", "120")
    address = host.address_of("dnsrename", renamed)
    assert ask_from(host, client, "before")["answers"] == [address]
    host.cli("rename", "before", "after")
    assert wait_until(lambda: ask_from(host, client, "after")["answers"] == [address])  # at once, from another member
    assert ask_from(host, client, "before")["rcode"] == "NXDOMAIN"  # and the old name is gone
    own = host.cli("exec", renamed, "cat", "/etc/hosts").stdout.split()
    assert "after" in own and "before" not in own  # its own /etc/hosts too
    host.cli("restart", "-t", "0", "after")  # started again, it keeps the new name
    assert wait_until(lambda: ask_from(host, client, "after")["answers"] == [host.address_of("dnsrename", renamed)])
    assert ask_from(host, client, "before")["rcode"] == "NXDOMAIN"


def test_unknown_names_are_nxdomain_and_other_networks_names_are_unknown(host: Host, upstream: Upstream) -> None:
    host.cli("network", "create", "dnsleft")
    host.cli("network", "create", "dnsright")
    host.detach("--network", "dnsleft", "--name", "lonely", "busybox", "sleep", "120")
    client = host.detach("--network", "dnsright", "--dns", upstream.address, "busybox", "sleep", "120")
    assert ask_from(host, client, "lonely")["rcode"] == "NXDOMAIN"
    assert ask_from(host, client, "nosuchname")["rcode"] == "NXDOMAIN"
    assert upstream.asked == []  # a bare name no member has is not sent upstream
    assert "NXDOMAIN" in nslookup(host, "dnsright", "lonely", "--dns", upstream.address).stdout


def test_a_member_is_known_for_other_types_too_and_by_its_address(host: Host) -> None:
    host.cli("network", "create", "dnstypes")
    client = host.detach("--network", "dnstypes", "--name", "solo", "busybox", "sleep", "120")
    assert ask_from(host, client, "solo", "AAAA") == {"rcode": "NOERROR", "answers": []}  # not "missing": IPv4 only
    reverse = ".".join(reversed(host.address_of("dnstypes", client).split("."))) + ".in-addr.arpa"
    assert ask_from(host, client, reverse, "PTR")["answers"] == ["solo."]  # and back from its address


# --- services: replicas in rotation --------------------------------------------------------


def test_a_service_answers_with_every_replica_in_rotating_order(host: Host) -> None:
    host.cli("network", "create", "dnsrr")
    label = f"{SERVICE}=web"
    replicas = [
        host.detach("--network", "dnsrr", "--name", f"web-{n}", "-l", label, "busybox", "sleep", "120")
        for n in range(3)
    ]
    addresses = {host.address_of("dnsrr", replica) for replica in replicas}
    answers = [ask_from(host, replicas[0], "web")["answers"] for _ in range(3)]
    assert all(set(answer) == addresses and len(answer) == 3 for answer in answers), answers
    assert {answer[0] for answer in answers} == addresses  # each replica comes first once in three queries
    assert answers[1] == answers[0][1:] + answers[0][:1]  # rotated by one
    assert ask_from(host, replicas[0], "web-1")["answers"] == [host.address_of("dnsrr", replicas[1])]
    seen = addresses_in(nslookup(host, "dnsrr", "web").stdout)
    assert sorted(seen) == sorted(addresses)  # busybox's resolver sees them all too


def test_a_replica_that_goes_leaves_the_service(host: Host) -> None:
    host.cli("network", "create", "dnsgone")
    first = host.detach("--network", "dnsgone", "--network-alias", "api", "busybox", "sleep", "120")
    second = host.detach("--network", "dnsgone", "--network-alias", "api", "busybox", "sleep", "120")
    assert len(ask_from(host, first, "api")["answers"]) == 2
    host.cli("rm", "-f", second)
    assert ask_from(host, first, "api")["answers"] == [host.address_of("dnsgone", first)]


# --- forwarding ----------------------------------------------------------------------------


def test_other_names_are_forwarded_to_the_containers_dns_servers(host: Host, upstream: Upstream) -> None:
    host.cli("network", "create", "dnsfwd")
    client = host.detach("--network", "dnsfwd", "--dns", upstream.address, "busybox", "sleep", "120")
    assert ask_from(host, client, "outside.test") == {"rcode": "NOERROR", "answers": ["192.0.2.7"]}
    assert ask_from(host, client, "missing.test")["rcode"] == "NXDOMAIN"
    assert upstream.asked == ["outside.test", "missing.test"]
    assert addresses_in(nslookup(host, "dnsfwd", "outside.test", "--dns", upstream.address).stdout) == ["192.0.2.7"]


def test_a_dns_port_needs_a_user_network(host: Host) -> None:
    done = host.cli("run", "--rm", "--network", "none", "--dns", "127.0.0.1:5353", "busybox", "true", check=False)
    assert done.returncode == 125 and "user-defined network" in done.stderr
    resolv = host.cli("run", "--rm", "--network", "none", "--dns", "192.0.2.1", "busybox", "cat", "/etc/resolv.conf")
    assert resolv.stdout.splitlines()[0] == "nameserver 192.0.2.1"  # written, never asked: the container has no network


# --- the server's life ---------------------------------------------------------------------


def test_the_server_runs_while_the_network_has_members_and_goes_with_it(host: Host) -> None:
    host.cli("network", "create", "dnslife")
    record = os.path.join(host.state_root, "networks", "dnslife", dns.RECORD)
    assert not os.path.exists(record)  # a network without members runs nothing
    member = host.detach("--network", "dnslife", "busybox", "sleep", "120")
    pid = server_pid(host, "dnslife")
    assert process_name(pid) == dns.PROCESS_NAME
    assert host.inspect("dnslife")["DNS"] == {"Address": f"{host.inspect('dnslife')['Gateway']}:53", "Pid": pid}
    host.cli("rm", "-f", member)
    host.cli("network", "rm", "dnslife")
    wait_for(lambda: process_name(pid) is None, "the DNS server to end with its network")
    assert not os.path.exists(record)


def test_kill_9_of_minictr_after_the_server_started_leaves_nothing_after_network_prune(host: Host) -> None:
    host.cli("network", "create", "dnsfault")
    command = cli_command(
        "run", "--network", "dnsfault", "busybox", "sleep", "120", data_root=host.data_root, state_root=host.state_root
    )
    faulty = {**os.environ, "MINICTR_FAULT": "dns"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=faulty)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = server_pid(host, "dnsfault")
    assert process_name(pid) == dns.PROCESS_NAME  # it outlived the minictr that started it ...
    pruned = run_cli("network", "prune", data_root=host.data_root, state_root=host.state_root)  # this root only
    assert pruned.returncode == 0, pruned.stderr
    assert wait_until(lambda: process_name(pid) is None, timeout=30)  # ... until the network was cleaned up
    host.cli("network", "rm", "dnsfault", check=False)


def test_a_server_that_died_is_started_again_by_the_next_member(host: Host) -> None:
    host.cli("network", "create", "dnsagain")
    first = host.detach("--network", "dnsagain", "--name", "one", "busybox", "sleep", "120")
    os.kill(server_pid(host, "dnsagain"), signal.SIGKILL)
    host.detach("--network", "dnsagain", "--name", "two", "busybox", "sleep", "120")
    assert process_name(server_pid(host, "dnsagain")) == dns.PROCESS_NAME
    assert ask_from(host, first, "two")["rcode"] == "NOERROR"


# --- what it answers, without a network ------------------------------------------------------


def test_names_table_and_rotation() -> None:
    members = {
        "10.0.0.3": {"name": "b", "service": "web"},
        "10.0.0.2": {"name": "a", "service": "web", "aliases": ["x"]},
    }
    names = dns.Names("/nonexistent")
    names.by_name = dns.names_table(members)
    assert names.by_name == {"a": ["10.0.0.2"], "x": ["10.0.0.2"], "web": ["10.0.0.2", "10.0.0.3"], "b": ["10.0.0.3"]}
    rotated = [["10.0.0.2", "10.0.0.3"], ["10.0.0.3", "10.0.0.2"], ["10.0.0.2", "10.0.0.3"]]
    assert [names.lookup("web") for _ in range(3)] == rotated
