"""Names: /etc/hosts, /etc/hostname and /etc/resolv.conf, written per container and bind-mounted in.

A container's /etc/hosts names only localhost and the container itself.
Containers on the same user-defined network find each other through the
network's DNS server (:mod:`minictr.engine.network.resolver`), which their
/etc/resolv.conf names: by container name, ``--network-alias`` and service.
As in Docker, the default network gives no names: only user-defined ones do.

The files are rewritten *in place*: a bind mount pins the inode, so a
rename-over would leave the container looking at the old file.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FILES = ("hosts", "hostname", "resolv.conf")

LOCALHOST = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def hosts_text(own_address: str | None, own_names: str) -> str:
    """The /etc/hosts of a container: localhost, then its own address and names."""
    return f"{LOCALHOST}{own_address or '127.0.1.1'}\t{own_names}\n"


def names_of(hostname: str, name: str | None, aliases: list[str]) -> str:
    """The names a container answers to: name, aliases, hostname (once each)."""
    return " ".join(dict.fromkeys(n for n in (name, *aliases, hostname) if n))


def resolv_text(host_network: bool = False, servers: list[str] | None = None) -> str:
    """/etc/resolv.conf: the host's, without nameservers a container cannot reach (its own loopback).

    ``servers`` (``--dns``) replace the host's nameservers.

    On systemd-resolved hosts /etc/resolv.conf names only 127.0.0.53; the real
    servers are in /run/systemd/resolve/resolv.conf, which Docker reads too.
    With the host's network the host's file is right as it is.
    """
    text = read_text("/etc/resolv.conf")
    if servers:
        kept = [line for line in text.splitlines() if line.split()[:1] != ["nameserver"]]
        return "\n".join([*(f"nameserver {server}" for server in servers), *kept]) + "\n"
    if host_network:
        return text
    if _only_loopback(text):
        text = read_text("/run/systemd/resolve/resolv.conf") or text
    kept = [line for line in text.splitlines() if not _loopback_nameserver(line)]
    if _only_loopback(text) or not any(line.split()[:1] == ["nameserver"] for line in kept):
        kept.append("# the host's nameservers are on its loopback, which this container cannot reach")
    return "\n".join(kept) + "\n"


def read_text(path: str) -> str:
    """A host file's text, or "" when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _loopback_nameserver(line: str) -> bool:
    words = line.split()
    return len(words) >= 2 and words[0] == "nameserver" and (words[1].startswith("127.") or words[1] == "::1")


def _only_loopback(text: str) -> bool:
    servers = [line for line in text.splitlines() if line.split()[:1] == ["nameserver"]]
    return bool(servers) and all(_loopback_nameserver(line) for line in servers)


def write_in_place(path: str, text: str, owner: int = 0) -> None:
    """Replace a file's content without replacing the file (bind mounts follow the inode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.write(fd, data)
        if owner:
            os.fchown(fd, owner, owner)
    finally:
        os.close(fd)


def write_files(directory: str, hostname: str, hosts: str, resolv: str, owner: int = 0) -> list[dict[str, Any]]:
    """Write the three files into the container's directory; return the OCI bind mounts that put them in /etc."""
    mounts = []
    for name, text in (("hosts", hosts), ("hostname", f"{hostname}\n"), ("resolv.conf", resolv)):
        path = os.path.join(directory, name)
        write_in_place(path, text, owner)
        mounts.append(bind_file(path, f"/etc/{name}"))
    return mounts


def bind_file(source: str, destination: str) -> dict[str, Any]:
    """An OCI bind mount of one file."""
    return {"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rprivate"]}
