"""NAT, published ports and isolation, in one nftables table that minictr owns: ``ip minictr``.

The rules never change; what changes are the elements of four sets, so a
container's ports and a network's bridge are added and removed by *key*
(no rule handles to remember, nothing to find again after a crash)::

    table ip minictr {
      set bridges   { type ifname }                           minictr bridges that are up
      set same      { type ifname . ifname }                  (bridge . bridge) pairs: traffic that stays home
      map ports_any { inet_proto . inet_service : ipv4_addr . inet_service }          -p 8080:80
      map ports_on  { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }  -p 127.0.0.1:8080:80
      chain published   { dnat to the container named by ports_on, else by ports_any }
      chain prerouting  { packets arriving for one of the host's addresses -> published }
      chain output      { the host's own packets for one of its addresses (incl. 127.0.0.1) -> published }
      chain postrouting { masquerade: containers going out; 127.0.0.1 and hairpin clients of a port }
      chain forward     { drop bridge -> another bridge (but to a published port): isolation }
      chain input       { drop what arrives for 127.0.0.0/8 through anything but lo, unless DNATed }
    }

Published ports are reached from the host through its own addresses and
through 127.0.0.1 by the kernel alone: the ``output`` chain DNATs the host's
own connections, ``route_localnet`` on the bridge lets a packet from
127.0.0.1 leave through it, and masquerading gives the container a source it
can answer (the gateway).

``route_localnet`` has a price (the class of CVE-2020-8558): the kernel then
also accepts packets *for* 127.0.0.1 arriving on the bridge, so a container
could reach every service the host binds to loopback only — a raw frame to
the gateway's MAC addressed to 127.0.0.1 is enough. The ``input`` chain
closes that as kube-proxy's fix does: a packet for 127.0.0.0/8 that did not
come through ``lo`` is dropped unless conntrack knows it as part of a DNATed
(published) connection — the replies of the host's own connections to
127.0.0.1:PORT. Docker's alternative, a userland proxy process per
port, would be one more process to start, supervise and clean up after a crash.

``create element`` fails if a key exists, so two containers can never
publish the same host port: the kernel decides, atomically, host-wide.
Rulesets go to ``nft -f -`` (its JSON output is read back): nftables has no
stable netlink library in Python, and a ruleset in nft's own language is what
a learner can read. iptables is not supported: ``minictr doctor`` says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import HostError, UsageError

TABLE = "minictr"

#: Host loopback stays the host's: nothing for 127.0.0.0/8 from a non-loopback device but published ports.
LOOPBACK_GUARD = 'iifname != "lo" ip daddr 127.0.0.0/8 ct status ! dnat drop'

RULESET = """\
table ip minictr {
  set bridges { type ifname; }
  set same { type ifname . ifname; }
  map ports_any { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map ports_on { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  chain published {
    dnat ip to ip daddr . meta l4proto . th dport map @ports_on
    dnat ip to meta l4proto . th dport map @ports_any
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump published
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump published
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    iifname @bridges oifname != @bridges masquerade
    oifname @bridges ip saddr 127.0.0.0/8 masquerade
    oifname @bridges iifname @bridges ct status dnat masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname @bridges oifname @bridges iifname . oifname != @same ct status ! dnat drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    LOOPBACK_GUARD
  }
}
""".replace("LOOPBACK_GUARD", LOOPBACK_GUARD)


def nft_path() -> str | None:
    """Where ``nft`` is (it lives in sbin, often missing from PATH)."""
    return shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")


def nft(script: str) -> subprocess.CompletedProcess[str]:
    """Run an nft script as one transaction (all of it or nothing)."""
    path = nft_path()
    if path is None:
        raise HostError("nft not found: NAT and published ports need nftables (apt-get install nftables)")
    return subprocess.run([path, "-f", "-"], input=script, capture_output=True, text=True)


def _run(script: str, what: str, create: bool = True) -> None:
    done = nft(script)
    if done.returncode == 0:
        return
    if "No such file or directory" in done.stderr and not create:
        return  # removing from a table that is gone: nothing left to remove
    if "No such file or directory" in done.stderr:
        _create_table()  # first use on this host (or it was removed): make it, then retry
        done = nft(script)
        if done.returncode == 0:
            return
    raise HostError(f"nftables, {what}: {_first_error(done.stderr)}")


def _create_table() -> None:
    done = nft(f"create table ip {TABLE}\n" + RULESET)  # fails as a whole if the table exists
    if done.returncode != 0 and "File exists" not in done.stderr:  # made by another process meanwhile
        raise HostError(f"nftables, creating table ip {TABLE}: {_first_error(done.stderr)}")


def _first_error(stderr: str) -> str:
    lines = [line.split("Error: ", 1)[1] for line in stderr.splitlines() if "Error: " in line]
    return lines[0] if lines else stderr.strip() or "failed"


def snapshot() -> dict[str, list[Any]]:
    """The table's elements now: ``{"bridges": [...], "same": [...], "ports_any": [...], "ports_on": [...]}``.

    Empty when the table does not exist.
    """
    path = nft_path()
    if path is None:
        return {}
    done = subprocess.run([path, "-j", "list", "table", "ip", TABLE], capture_output=True, text=True)
    if done.returncode != 0:
        return {}
    found: dict[str, list[Any]] = {"bridges": [], "same": [], "ports_any": [], "ports_on": []}
    for item in json.loads(done.stdout).get("nftables", []):
        body = item.get("set") or item.get("map")
        if body and body.get("name") in found:
            found[body["name"]] = [_plain(e) for e in body.get("elem", [])]
    return found


def _plain(element: Any) -> Any:
    """nft's JSON element -> tuples: {"concat": [a, b]} -> (a, b); [key, value] -> (key, value)."""
    if isinstance(element, dict) and "concat" in element:
        return tuple(element["concat"])
    if isinstance(element, list):
        return tuple(_plain(e) for e in element)
    return element


def add_bridge(bridge: str, first: bool = False) -> None:
    """Masquerade and isolate a network: its bridge joins ``bridges`` and ``same``.

    ``first``: no other minictr bridge is up, so the table is probably gone too;
    try to create it in the same transaction (one ``nft`` run instead of three).
    """
    elements = (
        f'add element ip {TABLE} bridges {{ "{bridge}" }}\nadd element ip {TABLE} same {{ "{bridge}" . "{bridge}" }}\n'
    )
    if first and nft(f"create table ip {TABLE}\n{RULESET}{elements}").returncode == 0:
        return
    # The guard again, idempotently (flush, then its one rule): a table made by an older minictr lacks it.
    guard = (
        f"add chain ip {TABLE} input {{ type filter hook input priority filter; policy accept; }}\n"
        f"flush chain ip {TABLE} input\nadd rule ip {TABLE} input {LOOPBACK_GUARD}\n"
    )
    _run(elements + guard, f"adding bridge {bridge}")


def port_key(port: dict[str, Any]) -> str:
    """The nft key of a published port: ``tcp . 8080`` or ``127.0.0.1 . tcp . 8080``."""
    key = f"{port['proto']} . {port['host_port']}"
    return f"{port['host_ip']} . {key}" if port.get("host_ip") else key


def publish(ports: list[dict[str, Any]]) -> None:
    """DNAT each host port to its container, all or none; a port already published is a UsageError."""
    if not ports:
        return
    lines = [
        f"create element ip {TABLE} {'ports_on' if p.get('host_ip') else 'ports_any'} "
        f"{{ {port_key(p)} : {p['container_ip']} . {p['container_port']} }}"
        for p in ports
    ]
    done = nft("\n".join(lines) + "\n")
    if done.returncode != 0 and "No such file or directory" in done.stderr:
        _create_table()
        done = nft("\n".join(lines) + "\n")
    if done.returncode == 0:
        return
    if "File exists" in done.stderr:
        for number, port in enumerate(ports, 1):
            if f"stdin:{number}:" in done.stderr:
                where = f"{port['host_ip']}:" if port.get("host_ip") else ""
                raise UsageError(
                    f"-p: host port {where}{port['host_port']}/{port['proto']} is already published by another "
                    "container"
                )
    raise HostError(f"nftables, publishing ports: {_first_error(done.stderr)}")


def withdraw(bridges: list[str] = [], ports: list[dict[str, Any]] = [], drop_if_empty: bool = False) -> None:  # noqa: B006 - never mutated
    """Remove bridges and ports that are present (absent ones are fine: clean-up may run twice).

    With ``drop_if_empty`` the whole table goes once nothing is left in it
    (the caller holds the host lock, so nobody adds meanwhile).
    """
    if not bridges and not ports:
        return
    now = snapshot()
    if not now:
        return
    lines = []
    for bridge in bridges:
        if bridge in now["bridges"]:
            lines.append(f'delete element ip {TABLE} bridges {{ "{bridge}" }}')
        if (bridge, bridge) in now["same"]:
            lines.append(f'delete element ip {TABLE} same {{ "{bridge}" . "{bridge}" }}')
    for port in ports:
        key = port_key(port)
        present = now["ports_on" if port.get("host_ip") else "ports_any"]
        if any(" . ".join(str(part) for part in element[0]) == key for element in present):
            lines.append(f"delete element ip {TABLE} {'ports_on' if port.get('host_ip') else 'ports_any'} {{ {key} }}")
    remaining = sum(len(v) for v in now.values()) - len(lines)
    if drop_if_empty and remaining == 0:
        lines = [f"delete table ip {TABLE}"]
    if lines:
        _run("\n".join(lines) + "\n", "removing rules", create=False)


def drop_if_empty() -> bool:
    """Delete the table when it holds no element (the caller holds the host lock); True if it did."""
    now = snapshot()
    if not now or any(now.values()):
        return False
    _run(f"delete table ip {TABLE}\n", "removing the empty table", create=False)
    return True


def withdraw_address(address: str) -> None:
    """Remove the published ports that lead to ``address`` (its lease is torn, so their keys are unknown)."""
    withdraw(ports=[port for port in published() if port["container_ip"] == address])


def withdraw_orphans(bridges: list[str], subnets: list[Any]) -> list[str]:
    """Remove elements of bridges that do not exist and ports leading outside ``subnets``; describe them.

    Under the host lock a bridge joins the sets only once it exists, and a
    port only leads into the subnet of a bridge that is up, so the others are
    what a crash left behind.
    """
    import ipaddress

    now = snapshot()
    if not now:
        return []
    gone = sorted({b for b in now["bridges"] if b not in bridges} | {p[0] for p in now["same"] if p[0] not in bridges})
    ports = [p for p in published() if not any(ipaddress.ip_address(p["container_ip"]) in net for net in subnets)]
    withdraw(bridges=gone, ports=ports)
    return [f"nftables: bridge {b}" for b in gone] + [
        f"nftables: port {port_key(p)} -> {p['container_ip']}" for p in ports
    ]


def published() -> list[dict[str, Any]]:
    """Every published port in the table, as ``-p`` parses them, with the container's address."""
    now = snapshot()
    found = []
    for name in ("ports_any", "ports_on"):
        for key, value in now.get(name, []):
            host_ip, (proto, host_port) = (key[0], key[1:]) if name == "ports_on" else ("", key)
            found.append({"proto": proto, "host_ip": host_ip, "host_port": host_port,
                          "container_ip": value[0], "container_port": value[1]})  # fmt: skip
    return found


def ruleset() -> str:
    """The table as ``nft list table ip minictr`` prints it (empty when it does not exist)."""
    path = nft_path()
    if path is None:
        return ""
    done = subprocess.run([path, "list", "table", "ip", TABLE], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""
