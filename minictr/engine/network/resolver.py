"""Service discovery on a user-defined network: its DNS server's life, and what containers are told.

**One server process per network**, not one per host. A network's server
lives exactly as long as its bridge: started when the first member brings the
bridge up (:func:`ensure`, under the host lock), stopped when the last member
leaves (:func:`stop`, from :func:`minictr.engine.network.attach.settle`), so
``network rm`` and ``prune`` find nothing of it left, and a host with no
running containers runs no server. Its scope is its network by construction
(a container can only reach its own network's gateway, and the server only
answers that network's members), a crash takes down one network's names, not
every network's, and nothing has to be told when networks come and go. The
price, a small Python process per network in use, is what Docker pays in
threads of its daemon; minictr has no daemon to put them in.

**It listens on the gateway's address, port 53**, and the container's
``/etc/resolv.conf`` names it there. Docker answers at 127.0.0.11 inside the
container, which takes a socket and NAT rules made inside every container's
network namespace; the gateway is an address every member already reaches
through its default route, and the server is one ordinary socket in the host's
namespace. That namespace is also where the host's resolvers are reachable,
loopback ones included (systemd-resolved's 127.0.0.53), which a container
could never ask directly. ``options ndots:0`` (as Docker writes) makes a
resolver try a bare name such as ``db`` as it is before any search domain.

Nothing is lost if minictr is killed while a server starts or stops: the
server records itself (``dns.json`` in the network's directory) before it
says it is ready, :func:`ensure` starts one when the record names no live
server, and a server whose bridge is gone or whose record names another
process ends by itself within a second.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.network.store import Network, NetworkStore

from minictr import faults
from minictr.engine.network.dns import PORT, RECORD
from minictr.errors import HostError, UsageError

LOG = "dns.log"


def record(store: NetworkStore, network: str) -> dict[str, Any]:
    """The network's server as it recorded itself (pid, start, address), or ``{}``."""
    from minictr.files import read_json

    return read_json(os.path.join(store.path(network), RECORD))


def running(store: NetworkStore, network: str) -> int | None:
    """The pid of the network's live server, or None."""
    from minictr.runtime.state import alive

    found = record(store, network)
    return found["pid"] if found.get("pid") and alive(found["pid"], found.get("start", "")) else None


def ensure(store: NetworkStore, network: Network) -> None:
    """Start the network's server unless one runs on its gateway (the caller holds the host lock)."""
    if running(store, network.name) and record(store, network.name).get("address") == network.gateway:
        return
    from minictr.engine.network import daemons

    stop(store, network.name)
    server = [store.path(network.name), network.gateway, network.bridge]
    line = daemons.start("minictr.engine.network.dns", server, os.path.join(store.path(network.name), LOG))
    if line != "ready":
        stop(store, network.name)
        raise HostError(f"network {network.name}: its DNS server on {network.gateway}:{PORT} did not start: {line}")
    faults.point("dns")


def stop(store: NetworkStore, network: str) -> None:
    """Stop the network's server, if one runs, and forget its record (every step tolerates a repeat)."""
    from minictr.engine.network import daemons

    found = record(store, network)
    try:
        os.unlink(os.path.join(store.path(network), RECORD))  # a server that finds no record of itself ends
    except FileNotFoundError:
        pass
    daemons.stop(found.get("pid"), found.get("start", ""))


# --- what a container is told -------------------------------------------------------------------


def parse_dns(servers: list[str], embedded: bool) -> list[str]:
    """``--dns IP[:PORT]``: checked; a port only where the embedded server forwards (user networks)."""
    if not servers:
        return []  # the usual case: not even ipaddress's import (1 ms of every start)
    import ipaddress

    for text in servers:
        host, _, port = text.partition(":")
        try:
            ipaddress.IPv4Address(host)
            if port and not 0 < int(port) < 65536:
                raise ValueError(port)
        except ValueError as exc:
            raise UsageError(f"--dns {text!r}: give an IPv4 address, optionally with :PORT") from exc
        if port and not embedded:
            raise UsageError(f"--dns {text!r}: a port needs a user-defined network (its DNS server forwards there)")
    return list(servers)


def resolv_conf(gateway: str, host_text: str) -> str:
    """The resolv.conf of a member: the network's server, ``ndots:0``, and the host's search domains."""
    kept = [line for line in host_text.splitlines() if line.split()[:1] in (["search"], ["domain"])]
    return "\n".join([f"nameserver {gateway}", *kept, "options ndots:0"]) + "\n"
