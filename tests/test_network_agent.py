"""The netlink agent of a bridge (minictr/engine/network/agent.py): it does a container's veth and eth0 work.

Proven against the real kernel: a container on the default bridge gets its
address while the command never imports pyroute2; an agent killed by SIGKILL
is replaced by the next run; ``network rm``, the prunes and a user network's
last member leaving take the agent down with the bridge.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import stat
import subprocess

import pytest
from helpers import cli_command

from conftest import run_cli, wait_for
from minictr.engine.network import agent
from minictr.engine.network.store import NetworkStore
from minictr.errors import HostError

pytestmark = pytest.mark.root

#: Prints eth0's IPv4 address as the container sees it.
SHOW_ADDRESS = ["busybox", "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"]


def bridge_of(state_root: str, network: str = "bridge") -> str:
    definition = NetworkStore(state_root).load(network)
    assert definition is not None, f"network {network} is not defined"
    return definition.bridge


def on_the_default_network(state_root: str, address: str) -> bool:
    """True when ``address`` (as ``ip`` prints it, with its prefix) is one of the default network's."""
    definition = NetworkStore(state_root).load("bridge")
    assert definition is not None
    return ipaddress.IPv4Interface(address).network == ipaddress.IPv4Network(definition.subnet)


def run(data_root: str, state_root: str, *args: str) -> str:
    done = run_cli(*args, data_root=data_root, state_root=state_root)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_a_container_gets_its_address_through_the_agent_and_the_command_never_imports_pyroute2(
    data_root: str, state_root: str
) -> None:
    run(data_root, state_root, "run", "--rm", "busybox", "true")  # brings the bridge and its agent up
    bridge = bridge_of(state_root)
    pid = agent.running(bridge)
    assert pid is not None, "no agent runs for the default bridge"
    with open(f"/proc/{pid}/comm") as handle:
        assert handle.read().strip() == agent.PROCESS_NAME
    socket_path = os.path.join(agent.DIRECTORY, bridge, agent.SOCKET)
    assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(socket_path)).st_mode) == 0o700
    command = cli_command("run", "--rm", *SHOW_ADDRESS, data_root=data_root, state_root=state_root)
    done = subprocess.run([command[0], "-X", "importtime", *command[1:]], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert on_the_default_network(state_root, done.stdout.strip()), done.stdout
    imported = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert "minictr.engine.network.agent" in imported, "the importtime probe did not see the command's imports"
    assert not [name for name in imported if name.startswith("pyroute2")], "the command imported pyroute2"
    assert agent.running(bridge) == pid  # the same agent did the work: the command had no other way to do it


def test_an_agent_killed_by_sigkill_is_replaced_by_the_next_run(data_root: str, state_root: str) -> None:
    run(data_root, state_root, "run", "--rm", "busybox", "true")
    bridge = bridge_of(state_root)
    old = agent.running(bridge)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: gone(old), "the killed agent to be reaped")
    assert on_the_default_network(state_root, run(data_root, state_root, "run", "--rm", *SHOW_ADDRESS))
    new = agent.running(bridge)
    assert new is not None and new != old


def test_network_rm_prune_and_the_last_member_leaving_take_the_agent_down(data_root: str, state_root: str) -> None:
    run(data_root, state_root, "network", "create", "agentnet")
    container = run(data_root, state_root, "run", "-d", "--network", "agentnet", "busybox", "sleep", "60")
    bridge = bridge_of(state_root, "agentnet")
    pid = agent.running(bridge)
    assert pid is not None
    run(data_root, state_root, "rm", "-f", container)  # the last member: the bridge goes, and its agent with it
    assert gone(pid) and not os.path.exists(os.path.join(agent.DIRECTORY, bridge))
    container = run(data_root, state_root, "run", "-d", "--network", "agentnet", "busybox", "sleep", "60")
    pid = agent.running(bridge)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stuck agent: stop() must still end it
    run(data_root, state_root, "rm", "-f", container)
    assert gone(pid) and not os.path.exists(os.path.join(agent.DIRECTORY, bridge))
    run(data_root, state_root, "network", "rm", "agentnet")
    run(data_root, state_root, "run", "--rm", "busybox", "true")  # the default bridge stays up, its agent too
    default = bridge_of(state_root)
    pid = agent.running(default)
    assert pid is not None
    run(data_root, state_root, "network", "prune")
    assert gone(pid) and not os.path.exists(os.path.join(agent.DIRECTORY, default))


def test_an_agent_whose_bridge_vanishes_ends_by_itself(data_root: str, state_root: str) -> None:
    run(data_root, state_root, "run", "--rm", "busybox", "true")
    bridge = bridge_of(state_root)
    pid = agent.running(bridge)
    assert pid is not None
    subprocess.run(["ip", "link", "del", bridge], check=True)  # what a sweep by another tool would do
    wait_for(lambda: gone(pid), "the agent of a deleted bridge to end")
    assert not os.path.exists(os.path.join(agent.DIRECTORY, bridge))
    run(data_root, state_root, "network", "prune")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"veth": "eth0"}, "not a container veth name"),
        ({"veth": "mv-../../x"}, "not a container veth name"),
        ({"pid": 1}, "no process"),
        ({"pid": "1"}, "pid is missing"),
        ({"mtu": 10}, "out of range"),
        ({"address": "192.168.0.2"}, "is not in"),
        ({"gateway": "not an address"}, "agent request"),
        ({"op": "exec"}, "not an attach or detach request"),
        ({"op": "detach", "veth": "mctr-0123456789"}, "not a container veth name"),
    ],
)
def test_the_agent_refuses_requests_it_should_not_act_on(change: dict, message: str) -> None:
    good = {"op": "attach", "veth": "mv-0123456789ab", "pid": os.getpid(), "mtu": 1500, "address": "10.88.0.2",
            "prefixlen": 24, "gateway": "10.88.0.1"}  # fmt: skip
    assert agent.check(good) == good
    with pytest.raises(HostError, match=message):
        agent.check({**good, **change})


def test_the_agent_acts_for_root_only_and_never_on_the_hosts_namespace(data_root: str, state_root: str) -> None:
    import json
    import socket

    run(data_root, state_root, "run", "--rm", "busybox", "true")
    bridge = bridge_of(state_root)
    assert agent.running(bridge) is not None
    path = os.path.join(agent.DIRECTORY, bridge, agent.SOCKET)
    probe = f"import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect({path!r})"
    as_nobody = subprocess.run(["/usr/bin/python3", "-c", probe], user=65534, capture_output=True, text=True)
    assert as_nobody.returncode != 0 and "PermissionError" in as_nobody.stderr
    request = {"op": "attach", "veth": "mv-agenttest01", "pid": os.getpid(), "mtu": 1500, "address": "10.250.0.2",
               "prefixlen": 24, "gateway": "10.250.0.1"}  # fmt: skip
    host_netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
    with host_netlink, socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
        client.connect(path)
        socket.send_fds(client, [json.dumps(request).encode()], [host_netlink.fileno()])
        reply = json.loads(client.recv(4096))
    assert "not in process" in reply.get("error", ""), reply
    assert not os.path.exists("/sys/class/net/mv-agenttest01")


def test_a_networks_helpers_leave_the_cgroups_of_whoever_started_them(data_root: str, state_root: str) -> None:
    """Started by a container's monitor, the DNS server and the agent would keep the monitors' cgroup alive."""
    from minictr.engine.network import resolver

    run(data_root, state_root, "network", "create", "helpersnet")
    container = run(data_root, state_root, "run", "-d", "--network", "helpersnet", "busybox", "sleep", "60")
    bridge = bridge_of(state_root, "helpersnet")
    helpers = [agent.running(bridge), resolver.running(NetworkStore(state_root), "helpersnet")]
    try:
        assert None not in helpers, f"the network's helpers do not run: {helpers}"
        for pid in helpers:
            with open(f"/proc/{pid}/cgroup") as handle:
                paths = {line.rstrip("\n").split(":", 2)[2] for line in handle}
            assert paths == {"/"}, f"helper {pid} is in {paths}"
    finally:
        run(data_root, state_root, "rm", "-f", container)
        run(data_root, state_root, "network", "rm", "helpersnet")
