"""Published ports: Docker's ``-p`` and ``-P``, parsed and checked before anything is created.

-p 8080:80            host port 8080 (every host address) -> container port 80/tcp
-p 8080:53/udp        the same for UDP
-p 127.0.0.1:8080:80  only through 127.0.0.1 (any address the host has)
-p 80  or  -p 127.0.0.1::80   a free host port chosen for you
-P                    every port the image's config lists in ExposedPorts, each on a free host port
"""

from __future__ import annotations

import ipaddress
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError

PROTOCOLS = ("tcp", "udp")


def _port(text: str, flag: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"{flag}: {what} {text!r} is not a port number (1-65535)")
    return int(text)


def parse_publish(text: str) -> dict[str, Any]:
    """One ``-p`` value -> ``{"proto", "host_ip", "host_port" (0: choose), "container_port"}``."""
    flag = f"-p {text}"
    spec, _, proto = text.partition("/")
    proto = proto or "tcp"
    if proto not in PROTOCOLS:
        raise UsageError(f"{flag}: protocol {proto!r} is not tcp or udp")
    parts = spec.rsplit(":", 2)
    host_ip, host_port = "", ""
    if len(parts) == 3:
        host_ip, host_port, container = parts
    elif len(parts) == 2:
        host_port, container = parts
    else:
        container = parts[0]
    if host_ip:
        try:
            if ipaddress.ip_address(host_ip).version != 4:
                raise ValueError("only IPv4 is supported")
        except ValueError as exc:
            raise UsageError(f"{flag}: {host_ip!r} is not an IPv4 address ({exc})") from exc
        if host_ip == "0.0.0.0":
            host_ip = ""
    return {
        "proto": proto, "host_ip": host_ip, "host_port": _port(host_port, flag, "host port") if host_port else 0,
        "container_port": _port(container, flag, "container port"),
    }  # fmt: skip


def exposed_ports(image_config: dict[str, Any]) -> list[dict[str, Any]]:
    """``-P``: each of the image's ExposedPorts ("80/tcp") on a host port chosen later."""
    found = []
    for key in sorted((image_config.get("config") or {}).get("ExposedPorts") or {}):
        number, _, proto = key.partition("/")
        found.append(parse_publish(f"{number}/{proto or 'tcp'}"))
    return found


def claim_host_ports(ports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check each host port against this host's sockets; pick free ones where none was given.

    Binding tells both things at once: EADDRNOTAVAIL means the address is not
    the host's, EADDRINUSE that a program on the host listens there already
    (its traffic would be taken from it). The socket is closed again: the
    nftables rule is what publishes the port.
    """
    claimed = []
    for port in ports:
        kind = socket.SOCK_STREAM if port["proto"] == "tcp" else socket.SOCK_DGRAM
        where = f"{port['host_ip']}:" if port["host_ip"] else ""
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((port["host_ip"] or "0.0.0.0", port["host_port"]))
            except OSError as exc:
                flag = f"-p {where}{port['host_port'] or ''}:{port['container_port']}/{port['proto']}"
                if exc.errno == 99:  # EADDRNOTAVAIL
                    raise UsageError(f"{flag}: {port['host_ip']} is not an address of this host") from exc
                raise UsageError(
                    f"{flag}: host port {where}{port['host_port']}/{port['proto']} is in use on this host"
                ) from exc
            claimed.append({**port, "host_port": probe.getsockname()[1]})
    return claimed
