"""A bridge's netlink agent: the process that does each container's veth and eth0 work for ``minictr run``.

pyroute2's import costs a fresh ``minictr run`` 100-150 ms of CPU (its
package imports the whole library), more than everything else a bridged
start does. So each bridge, while it is up, has one small detached process
that imported pyroute2 once and does the per-container netlink work on
request, as dockerd holds that work for docker0::

    minictr run (CLI, no pyroute2)              minictr-netlink (one per bridge, root only)
    ┌───────────────────────────────┐  unix     ┌──────────────────────────────────────────┐
    │ join(): lease, ensure(bridge) │  socket   │ links.add_veth(mv-<id>, bridge, pid, mtu) │
    │ connect(): request + netlink ─┼──SCM_────▶│ links.configure_inside(fd, address, ...)  │
    │   fd of the container's netns │  RIGHTS   │ reply {"ok": true} or the error           │
    └───────────────────────────────┘           └──────────────────────────────────────────┘

The veth's deletion when the container ends is asked of it the same way.
The work is the same :mod:`.links` functions wherever it runs: when no agent
answers (killed, or the host rebooted and /run is empty), :func:`attach`
says so and the command does it in-process, as before the agent; the next
container's :func:`ensure` (under the host lock) starts a new agent. A
command that brings a bridge up has imported pyroute2 for it anyway: it
starts the agent, waits only until it listens and has recorded itself (an
interpreter's start, not pyroute2's import, which the agent does next), and
does its own container's work itself. So a bridge's first container pays
~40 ms more than before the agent, and every later one ~120 ms of CPU less.

**Its own process, not the DNS server's.** The DNS server parses packets
from containers (untrusted input) and exists only on user-defined networks;
the agent holds CAP_NET_ADMIN work for the host and is wanted on the default
bridge above all. Keeping them apart keeps the process that reads
containers' packets away from netlink, lets either crash without the other,
and leaves each one loop of one kind (UDP datagrams; one request at a time
on a unix socket).

**Clean-up.** The agent lives exactly as long as its bridge: whoever deletes
a bridge calls :func:`stop` (``settle`` for ``network rm`` and the prunes, the
sweeps of ``system prune``), and an agent whose bridge is gone, or whose
record no longer names it, ends by itself within a second (a sweep by a
minictr that predates it, a ``kill -9`` between the two). It keeps its
socket and record in ``/run/minictr-network/agents/<bridge>/`` (0700,
socket 0600): keyed by bridge, so a sweep that finds only a bridge finds its
agent too, and gone with /run on a reboot.

**Security.** Only root reaches the socket (the directory's mode, and the
peer's uid checked with SO_PEERCRED). A request names a pid, a veth that must
carry the host-end prefix, addresses and an MTU, each checked; the agent's
bridge is its own, never the request's; the only fd it takes must be a
netlink socket in the network namespace of that pid, not the host's; it
opens no path a request names.

Its memory is an interpreter holding pyroute2, ~33 MiB resident
(``benchmarks/start_speed.py`` prints it, and the agent's CPU per
container: ~8-10 ms), the price of one network in use.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr import faults
from minictr.engine.network import HOST_DIR
from minictr.errors import HostError

PROCESS_NAME = "minictr-netlink"
DIRECTORY = os.path.join(HOST_DIR, "agents")
RECORD = "agent.json"
SOCKET = "socket"
LOG = os.path.join(HOST_DIR, "agents.log")
#: How long one request may take (the kernel's rtnl lock is shared with every other network user of the host).
REQUEST_TIMEOUT = 30.0
VETH = re.compile(r"^mv-[A-Za-z0-9]{1,12}$")
BRIDGE = re.compile(r"^mctr-[A-Za-z0-9]{1,10}$")
MAX_MESSAGE = 4096
SIOCGSKNS = 0x894C  # ioctl: the network namespace of a socket
#: The requests this version speaks; an agent left by another version is replaced, not asked.
PROTOCOL = 1


def _path(bridge: str, name: str = "") -> str:
    if not BRIDGE.match(bridge):
        raise HostError(f"{bridge!r} is not the name of a minictr bridge")
    return os.path.join(DIRECTORY, bridge, name) if name else os.path.join(DIRECTORY, bridge)


def running(bridge: str) -> int | None:
    """The pid of the bridge's live agent, or None."""
    from minictr.files import read_json
    from minictr.runtime.state import alive

    found = read_json(_path(bridge, RECORD))
    if found.get("protocol") != PROTOCOL:
        return None
    return found["pid"] if found.get("pid") and alive(found["pid"], found.get("start", "")) else None


def ensure(bridge: str) -> None:
    """Start the bridge's agent unless one runs (the caller holds the host lock; the bridge is up).

    It returns once the agent listens and has recorded itself (an interpreter's
    start, tens of ms): its pyroute2 import goes on meanwhile, so a command that
    brought the bridge up (and imported pyroute2 for it) does not wait for it.
    """
    if running(bridge):
        return
    from minictr.engine.network import daemons

    stop(bridge)
    os.makedirs(_path(bridge), mode=0o700, exist_ok=True)
    line = daemons.start(__name__, [bridge], LOG)
    if line != "ready":
        stop(bridge)
        raise HostError(f"bridge {bridge}: its netlink agent did not start: {line}")


def stop(bridge: str) -> None:
    """Stop the bridge's agent if one runs and remove its files (every step tolerates a repeat)."""
    import shutil

    from minictr.engine.network import daemons
    from minictr.files import read_json

    found = read_json(_path(bridge, RECORD))
    shutil.rmtree(_path(bridge), ignore_errors=True)  # an agent that finds no record of itself ends
    daemons.stop(found.get("pid"), found.get("start", ""))


def sweep() -> list[str]:
    """Stop the agents (and remove the files) of bridges that are gone (the caller holds the host lock)."""
    gone = [b for b in _listdir(DIRECTORY) if BRIDGE.match(b) and not os.path.exists(f"/sys/class/net/{b}")]
    for bridge in gone:
        stop(bridge)
    return [f"netlink agent of bridge {bridge}: its bridge is gone" for bridge in gone]


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def attach(section: dict[str, Any], pid: int, netlink_fd: int) -> bool:
    """Ask the bridge's agent for the container's veth and eth0; False when it was not asked (do it here).

    Raises the agent's error when it tried and failed, and :class:`HostError`
    when it died in the middle (what it did is recorded in the lease already).
    """
    request = {key: section[key] for key in ("veth", "mtu", "address", "prefixlen", "gateway")}
    return _ask(section["bridge"], {"op": "attach", "pid": pid, **request}, [netlink_fd])


def detach(bridge: str, veth: str) -> bool:
    """Ask the bridge's agent to delete a container's veth; False when it was not asked (do it here)."""
    return _ask(bridge, {"op": "detach", "veth": veth}, [])


def _ask(bridge: str, request: dict[str, Any], fds: list[int]) -> bool:
    """Send one request (and ``fds``) to the bridge's agent and wait for its reply; see :func:`attach`.

    Not asked (False) when this process has imported pyroute2 already: it
    brought the bridge up, and the agent it started may still be importing it.
    """
    if not BRIDGE.match(bridge or "") or "pyroute2" in sys.modules:
        return False
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        try:
            client.connect(_path(bridge, SOCKET))
        except OSError:
            return False  # none runs (killed, or never started): the caller does the work itself
        client.settimeout(REQUEST_TIMEOUT)
        socket.send_fds(client, [json.dumps(request).encode()], fds)
        if request["op"] == "attach":
            faults.point("agent")
        reply = json.loads(client.recv(MAX_MESSAGE) or b"{}")
    except (OSError, ValueError) as exc:
        raise HostError(f"bridge {bridge}: its netlink agent did not answer: {exc}") from exc
    finally:
        client.close()
    if not reply:
        raise HostError(f"bridge {bridge}: its netlink agent ended during the request")
    if "error" in reply:
        raise _error(reply)
    return True


def _error(reply: dict[str, Any]) -> Exception:
    """The agent's error as the command raises it: a MinictrError by its type, anything else as a HostError."""
    from minictr import errors

    kind = getattr(errors, str(reply.get("type")), None)
    if isinstance(kind, type) and issubclass(kind, errors.MinictrError) and kind is not errors.SyscallError:
        return kind(reply["error"])
    return HostError(reply["error"])


# --- the agent itself ---------------------------------------------------------------------------


def check(request: Any) -> dict[str, Any]:
    """A request as the agent acts on it, every field checked; :class:`HostError` names the first bad one.

    ``attach``: veth, pid, mtu, address, prefixlen, gateway; ``detach``: veth.
    """
    import ipaddress

    if not isinstance(request, dict) or request.get("op") not in ("attach", "detach"):
        raise HostError("agent request: not an attach or detach request")
    want: dict[str, type] = {"veth": str}
    if request["op"] == "attach":
        want.update(pid=int, mtu=int, address=str, prefixlen=int, gateway=str)
    for key, kind in want.items():
        if not isinstance(request.get(key), kind) or isinstance(request.get(key), bool):
            raise HostError(f"agent request: {key} is missing or not a {kind.__name__}")
    if not VETH.match(request["veth"]):
        raise HostError(f"agent request: {request['veth']!r} is not a container veth name")
    if request["op"] == "detach":
        return {"op": "detach", "veth": request["veth"]}
    if request["pid"] < 2 or not os.path.exists(f"/proc/{request['pid']}"):
        raise HostError(f"agent request: no process {request['pid']}")
    if not 68 <= request["mtu"] <= 65535 or not 1 <= request["prefixlen"] <= 30:
        raise HostError("agent request: mtu or prefix length out of range")
    try:
        subnet = ipaddress.IPv4Network(f"{request['gateway']}/{request['prefixlen']}", strict=False)
        if ipaddress.IPv4Address(request["address"]) not in subnet:
            raise ValueError(f"{request['address']} is not in {subnet}")
    except ValueError as exc:
        raise HostError(f"agent request: {exc}") from exc
    return {"op": "attach", **{key: request[key] for key in want}}


class Agent:
    """One bridge's agent: a listening unix socket; one request at a time."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        path = _path(bridge, SOCKET)
        if os.path.exists(path):
            os.unlink(path)
        old = os.umask(0o177)  # 0600 from the start: never a moment when others could connect
        try:
            self.listener.bind(path)
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.listener.settimeout(1.0)

    def wanted(self) -> bool:
        """True while the bridge is up and the record still names this process."""
        from minictr.files import read_json

        mine = read_json(_path(self.bridge, RECORD)).get("pid") == os.getpid()
        return mine and os.path.exists(f"/sys/class/net/{self.bridge}")

    def serve(self) -> None:
        """Answer requests until no longer :meth:`wanted` (checked every second)."""
        while True:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                if not self.wanted():
                    return
                continue
            with connection:
                self.answer(connection)

    def answer(self, connection: socket.socket) -> None:
        """Read one request and its netlink fd, do the work, reply; a client gone meanwhile is no error."""
        import struct

        fds: list[int] = []
        try:
            connection.settimeout(REQUEST_TIMEOUT)
            uid = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[2]
            data, fds, _, _ = socket.recv_fds(connection, MAX_MESSAGE, 1)
            reply = self.work(uid, data, fds)
            connection.send(json.dumps(reply).encode())
        except OSError:
            pass  # the command died or gave up: its lease names the veth, its sweep removes it
        finally:
            for fd in fds:
                _close(fd)

    def work(self, uid: int, data: bytes, fds: list[int]) -> dict[str, Any]:
        """The veth and eth0 of one container (or its veth's deletion), through the :mod:`.links` functions the
        command would use itself."""
        from minictr.engine.network import links

        try:
            if uid != 0:
                raise HostError("agent request: only root may ask")
            request = check(json.loads(data or b"null"))
            if request["op"] == "detach":
                links.delete_link(request["veth"])  # a veth only: the name was checked against the prefix
                return {"ok": True}
            if len(fds) != 1:
                raise HostError("agent request: it needs exactly one netlink socket")
            _check_netlink(fds[0], request["pid"])
            links.add_veth(request["veth"], self.bridge, request["pid"], request["mtu"])
            netlink_fd = fds.pop()  # pyroute2 closes the socket it is given
            links.configure_inside(netlink_fd, request["address"], request["prefixlen"], request["gateway"])
        except Exception as exc:  # the command raises it; the agent serves on
            return {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__}
        return {"ok": True}


def _check_netlink(fd: int, pid: int) -> None:
    """Refuse any fd but a netlink socket in the network namespace of ``pid``, which is not the host's."""
    import fcntl

    probe = socket.socket(fileno=os.dup(fd))
    try:
        if probe.family != socket.AF_NETLINK:
            raise HostError("agent request: the fd passed is not a netlink socket")
        namespace = fcntl.ioctl(fd, SIOCGSKNS, 0)  # a descriptor of the socket's network namespace
        try:
            theirs = os.fstat(namespace).st_ino
        finally:
            os.close(namespace)
    finally:
        probe.close()
    if theirs != os.stat(f"/proc/{pid}/ns/net").st_ino or theirs == os.stat("/proc/self/ns/net").st_ino:
        raise HostError(f"agent request: the netlink socket is not in process {pid}'s own network namespace")


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    """``python -m minictr.engine.network.agent BRIDGE``: detach, listen, record, report, import pyroute2, serve."""
    from minictr.engine.network import daemons

    bridge = argv[1]
    daemons.detach(PROCESS_NAME)
    try:
        agent = Agent(bridge)
        daemons.record(_path(bridge, RECORD), bridge=bridge, protocol=PROTOCOL)
    except (OSError, HostError) as exc:
        os.write(1, f"error {exc}\n".encode())
        return 1
    daemons.ready()  # listening: a request that comes now waits in the backlog for the import below
    import pyroute2  # noqa: F401 - once, after the starter let go: it is what every request then saves

    agent.serve()
    _forget(bridge)
    return 0


def _forget(bridge: str) -> None:
    """An agent that ends (its bridge is gone) takes its files with it, if its record still names it."""
    import shutil

    from minictr.files import read_json

    if read_json(_path(bridge, RECORD)).get("pid") == os.getpid():
        shutil.rmtree(_path(bridge), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
