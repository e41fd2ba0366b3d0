"""Bridge networks for real: veths, addresses, names, NAT, published ports, isolation, clean-up.

Traffic goes only to loopback, to this host's own address (published ports)
and to the containers these tests start, in the network namespaces minictr
made for them.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from conftest import free_port, run_cli, wait_for
from minictr.engine.network import firewall, names, pools, ports, store

pytestmark = pytest.mark.root

SERVE = "mkdir -p /www && echo pong-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"
#: busybox nc, retried while the server starts; prints the page's last line.
FETCH = (
    'for i in $(seq 50); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 {host} {port} > /tmp/r '
    "&& [ -s /tmp/r ] && break; sleep 0.1; done; tail -1 /tmp/r"
)


class Host:
    """A test's minictr: its own state root; everything it starts is stopped and pruned at the end."""

    def __init__(self, data_root: str, state_root: str) -> None:
        self.data_root, self.state_root = data_root, state_root
        self.started: list[str] = []

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, data_root=self.data_root, state_root=self.state_root, timeout=timeout)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def detach(self, *args: str) -> str:
        container = self.cli("run", "-d", *args).stdout.strip()
        self.started.append(container)
        return container

    def inspect(self, network: str) -> dict:
        return json.loads(self.cli("network", "inspect", network).stdout)[0]

    def address_of(self, network: str, container: str) -> str:
        return self.inspect(network)["Containers"][container[:12]]["IPv4Address"].split("/")[0]

    def close(self) -> None:
        for container in self.started:  # rm -f: killed, and its veth, lease and rules given back
            self.cli("rm", "-f", container, check=False)


@pytest.fixture
def host(data_root: str, state_root: str) -> Iterator[Host]:
    minictr = Host(data_root, state_root)
    yield minictr
    minictr.close()


def http_get(address: str, port: int, timeout: float = 10) -> str:
    """The last line of ``GET /`` from the host itself, retried while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=2) as connection:
                connection.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := connection.recv(4096):
                    data += chunk
                if data:
                    return data.decode().splitlines()[-1]
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def own_address() -> str:
    """One of this host's own, non-loopback IPv4 addresses (not on a minictr bridge)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        names_by_index = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for addr in ipr.get_addr(family=2):
            name = names_by_index[addr["index"]]
            if name != "lo" and not name.startswith("mctr-"):
                return addr.get_attr("IFA_ADDRESS")
    pytest.skip("this host has no IPv4 address besides loopback")


# --- by name on one network; nothing across networks ----------------------------------------


def test_two_containers_on_one_network_talk_tcp_by_name_and_alias(host: Host) -> None:
    host.cli("network", "create", "talk")
    server = host.detach(
        "--network", "talk", "--name", "web", "--network-alias", "www", "-h", "websrv", "busybox", "sh", "-c", SERVE
    )
    for name in ("web", "www"):
        result = host.cli("run", "--network", "talk", "busybox", "sh", "-c", FETCH.format(host=name, port=80))
        assert result.stdout.strip() == "pong-from-websrv", result.stderr
    address = host.address_of("talk", server)
    found = host.cli("run", "--network", "talk", "busybox", "nslookup", "websrv").stdout  # the network's DNS server
    assert f"Address: {address}" in found


def test_names_follow_members_joining_and_leaving(host: Host) -> None:
    host.cli("network", "create", "members")
    first = host.detach("--network", "members", "--name", "first", "busybox", "sleep", "60")
    second = host.detach("--network", "members", "--name", "second", "busybox", "sleep", "60")
    see = lambda name: host.cli("exec", first, "nslookup", name, check=False).stdout  # noqa: E731
    assert f"Address: {host.address_of('members', second)}" in see("second")
    host.cli("kill", second)  # its monitor gives its address back, and the name goes with it
    wait_for(lambda: "NXDOMAIN" in see("second"), "the name of a container that died to go")
    assert f"Address: {host.address_of('members', first)}" in see("first")


def test_containers_on_different_networks_cannot_reach_each_other(host: Host) -> None:
    host.cli("network", "create", "left")
    host.cli("network", "create", "right")
    server = host.detach("--network", "left", "--name", "lonely", "busybox", "sh", "-c", SERVE)
    address = host.address_of("left", server)
    same = host.cli("run", "--network", "left", "busybox", "sh", "-c", FETCH.format(host=address, port=80))
    assert same.stdout.strip().startswith("pong-from-")  # it serves...
    other = host.cli(
        "run",
        "--network",
        "right",
        "busybox",
        "sh",
        "-c",
        f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 2 {address} 80; echo rc=$?',
        check=False,
    )
    assert "pong" not in other.stdout and "rc=1" in other.stdout  # ... but not across networks
    by_name = host.cli("run", "--network", "right", "busybox", "nslookup", "lonely", check=False)
    assert "NXDOMAIN" in by_name.stdout


def test_container_network_mode_shares_the_namespace(host: Host) -> None:
    server = host.detach("--name", "holder", "busybox", "sleep", "60")
    mine = host.cli("run", "--network", "container:holder", "busybox", "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert host.address_of("bridge", server) in mine


# --- published ports -----------------------------------------------------------------------


def test_published_port_answers_through_127001_and_the_hosts_own_address(host: Host) -> None:
    port = free_port()
    host.detach("-p", f"{port}:80", "-h", "published", "busybox", "sh", "-c", SERVE)
    assert http_get("127.0.0.1", port) == "pong-from-published"
    assert http_get(own_address(), port) == "pong-from-published"
    assert f"tcp . {port} : " in firewall.ruleset()


def test_port_published_on_one_address_only_answers_there(host: Host) -> None:
    port = free_port()
    host.detach("-p", f"127.0.0.1:{port}:80", "-h", "local", "busybox", "sh", "-c", SERVE)
    assert http_get("127.0.0.1", port) == "pong-from-local"
    with pytest.raises(OSError):
        http_get(own_address(), port, timeout=0)


def test_a_host_port_is_published_once(host: Host, state_root: str) -> None:
    port = free_port()
    host.detach("-p", f"{port}:80", "busybox", "sleep", "60")
    second = host.cli("run", "-p", f"{port}:81", "busybox", "true", check=False)
    assert second.returncode == 125
    assert second.stderr.strip().endswith(f"-p: host port {port}/tcp is already published by another container")
    assert len(host.inspect("bridge")["Containers"]) == 1  # the refused one left nothing behind


def test_outbound_traffic_is_masqueraded_and_published_ports_hairpin(host: Host) -> None:
    port = free_port()
    host.detach("-p", f"{port}:80", "-h", "hairpin", "busybox", "sh", "-c", SERVE)
    result = host.cli("run", "busybox", "sh", "-c", FETCH.format(host=own_address(), port=port))
    assert result.stdout.strip() == "pong-from-hairpin"  # a container reaches a published port via the host
    assert "masquerade" in firewall.ruleset()


# --- IPAM -----------------------------------------------------------------------------------


def test_twenty_concurrent_containers_get_twenty_distinct_addresses(host: Host) -> None:
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        started = list(pool.map(lambda _: host.detach("busybox", "sleep", "60"), range(20)))
    members = host.inspect("bridge")["Containers"]
    assert sorted(members) == sorted(c[:12] for c in started)
    addresses = {m["IPv4Address"] for m in members.values()}
    assert len(addresses) == 20
    for container in started:
        host.cli("rm", "-f", container)
    assert host.inspect("bridge")["Containers"] == {}
    assert os.listdir(os.path.join(host.state_root, "networks", "bridge", "leases")) == []


def test_torn_files_are_the_crash_they_are(host: Host) -> None:
    """An empty lease, a torn definition, a dead writer's partial file: cleaned up, never an exception."""
    host.cli("network", "create", "torn")
    networks = store.NetworkStore(host.state_root)
    container = host.detach("--network", "torn", "busybox", "sleep", "60")
    address = host.address_of("torn", container)
    bridge = networks.get("torn").bridge
    host.cli("kill", container)
    wait_for(lambda: not os.path.exists(f"/sys/class/net/mv-{container}"), "the container's veth to go with it")
    leases = os.path.join(networks.path("torn"), "leases")
    dead = _dead_pid()
    for name in (f"{address}.json", "10.255.0.9.json", f".partial-{dead}-00000000"):
        open(os.path.join(leases, name), "w").close()  # what a crash or a power loss can leave
    pathlib.Path(networks.path("torn"), "network.json").write_text('{"name": "torn", "sub')
    listed = host.cli("network", "ls").stdout
    assert "torn" not in listed.split()  # a torn definition is a network that is gone
    assert not os.path.exists(networks.path("torn")) and not os.path.exists(f"/sys/class/net/{bridge}")
    assert bridge not in firewall.snapshot().get("bridges", [])
    host.cli("run", "busybox", "true")  # the default network, on a host swept clean


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


# --- bad input: one line, exit 125, nothing left ----------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "80:99999", "busybox", "true"], "-p 80:99999: container port '99999' is not a port number"),
        (["-p", "80:80/sctp", "busybox", "true"], "protocol 'sctp' is not tcp or udp"),
        (["-p", "192.0.2.99.1:80:80", "busybox", "true"], "is not an IPv4 address"),
        (["--network", "none", "-p", "80:80", "busybox", "true"], "published ports need a bridge network"),
        (["--network", "nosuchnet", "busybox", "true"], "network 'nosuchnet' not found"),
        (["--network", "container:nothing", "busybox", "true"], "no such container: 'nothing'"),
        (["--network-alias", "x", "busybox", "true"], "the default network has no names"),
    ],
)
def test_bad_network_options_fail_in_one_line(host: Host, args: list[str], message: str) -> None:
    done = host.cli("run", *args, check=False)
    assert done.returncode == 125 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert os.listdir(os.path.join(host.state_root, "containers")) == []


def test_network_create_checks_its_subnet_and_rm_refuses_a_network_in_use(host: Host) -> None:
    taken = host.cli("network", "create", "--subnet", "127.0.0.0/24", "clash", check=False)
    assert taken.returncode == 125 and "overlaps 127.0.0.0/8 (lo)" in taken.stderr
    assert (
        "--gateway '10.99.1.1' is not a usable address"
        in host.cli("network", "create", "--subnet", "10.99.0.0/24", "--gateway", "10.99.1.1", "g", check=False).stderr
    )
    host.cli("network", "create", "--subnet", "10.99.0.0/24", "fixed")
    assert host.inspect("fixed")["Gateway"] == "10.99.0.1"
    container = host.detach("--network", "fixed", "busybox", "sleep", "60")
    refused = host.cli("network", "rm", "fixed", check=False)
    # as Docker: the names network rm could not remove make it exit 1
    assert refused.returncode == 1 and f"in use by container(s) {container[:12]}" in refused.stderr
    assert host.cli("network", "rm", "bridge", check=False).returncode == 1


# --- pieces, without a kernel -------------------------------------------------------------------


def test_publish_syntax() -> None:
    assert ports.parse_publish("8080:80") == {"proto": "tcp", "host_ip": "", "host_port": 8080, "container_port": 80}
    assert ports.parse_publish("127.0.0.1::53/udp") == {
        "proto": "udp",
        "host_ip": "127.0.0.1",
        "host_port": 0,
        "container_port": 53,
    }
    assert ports.exposed_ports({"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}}) == [
        {"proto": "udp", "host_ip": "", "host_port": 0, "container_port": 53},
        {"proto": "tcp", "host_ip": "", "host_port": 0, "container_port": 80},
    ]


def test_subnets_avoid_what_is_taken_and_addresses_skip_the_gateway() -> None:
    import ipaddress

    taken = [(ipaddress.ip_network("10.88.0.0/23"), "eth1")]
    assert str(pools.free_subnet(taken, pools.parse_pools("10.88.0.0/16"))) == "10.88.2.0/24"
    network = store.Network("n", "0" * 64, "10.88.2.0/24", "10.88.2.1", "mctr-0000000000")
    assert store.next_address(network, {"10.88.2.2"}) == "10.88.2.3"


def test_hosts_file_names_only_the_container_itself() -> None:
    text = names.hosts_text("10.88.1.2", names.names_of("abc", "db", ["data"]))
    assert text.splitlines()[2:] == ["10.88.1.2\tdb data abc"]  # the other members: from the network's DNS server
