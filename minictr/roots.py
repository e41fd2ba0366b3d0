"""The host-wide record of state roots: every root minictr has used on this host, and its containers.

A state root (``/run/minictr``, or any ``--root``; tests use temporary ones)
holds the containers and networks made from it, but what they create on the
host is shared by all roots: cgroups under the ``minictr`` parent, bridges,
veths, the nftables table, IPv4 forwarding. A root whose directory is deleted
while it still has something on the host would leave it with nothing to find
it. So, as root, minictr records each root here *before* anything is made
from it, and each container *before* its directory::

    /run/minictr-roots/<key>/path              the state root's absolute path
    /run/minictr-roots/<key>/containers/<id>   a container of that root (gone after its directory)

A network's bridge carries its root's key in its interface alias
(``minictr root=<key> network=<name>``, see :func:`bridge_alias`), so the
sweep finds it on the host alone. ``minictr system prune``
(:mod:`minictr.engine.system`) sweeps every recorded root; for a root whose
directory is gone, it removes what the host still carries of it and forgets it.

Rootless minictr creates nothing host-wide (no cgroups, no bridges), so it
records nothing. ``/run`` is a tmpfs: the record goes at reboot, with what it
describes.
"""

from __future__ import annotations

import contextlib
import os
import zlib

from minictr.files import write_atomic

RECORD_DIR = "/run/minictr-roots"

_keys: dict[str, str] = {}  # root path -> key, once recorded by this process


def record(state_root: str) -> str | None:
    """Record ``state_root`` host-wide (once per process) and make sure it exists; its key, or None when not root.

    The directory is made first, so that a sweep never takes a recorded root
    for a deleted one while it is being set up.
    """
    path = os.path.abspath(state_root)
    if path in _keys:
        return _keys[path]
    if os.geteuid() != 0:
        return None
    os.makedirs(path, exist_ok=True)
    base = f"{zlib.crc32(path.encode()):08x}"
    for suffix in range(1000):  # a crc32 collision takes the next free key
        key = base if not suffix else f"{base}-{suffix}"
        recorded = _read_path(key)
        if recorded == path:
            break
        if recorded is None:
            os.makedirs(os.path.join(RECORD_DIR, key, "containers"), mode=0o700, exist_ok=True)
            os.chmod(RECORD_DIR, 0o700)
            write_atomic(os.path.join(RECORD_DIR, key, "path"), path.encode(), mode=0o600, durable=False)
            break
    _keys[path] = key
    return key


def recorded() -> dict[str, str]:
    """Every recorded root: key -> path."""
    try:
        keys = sorted(os.listdir(RECORD_DIR))
    except OSError:
        return {}
    found = {key: _read_path(key) for key in keys}
    return {key: path for key, path in found.items() if path}


def key_of(state_root: str) -> str | None:
    """The key of a recorded root, or None."""
    path = os.path.abspath(state_root)
    return next((key for key, known in recorded().items() if known == path), None)


def note_container(directory: str) -> None:
    """Record the container directory ``<root>/containers/<id>`` before it is made."""
    root = os.path.abspath(os.path.dirname(os.path.dirname(directory)))
    for _ in range(2):
        key = record(root)
        if key is None:
            return
        try:
            with open(os.path.join(RECORD_DIR, key, "containers", os.path.basename(directory)), "a"):
                return
        except FileNotFoundError:  # a sweep forgot the root meanwhile (it had no directory yet): again
            _keys.pop(root, None)


def forget_container(directory: str, key: str | None = None) -> None:
    """Drop a container from the record (its directory is gone); ``key``: its root's, when known."""
    root = os.path.abspath(os.path.dirname(os.path.dirname(directory)))
    key = key or _keys.get(root) or (key_of(root) if os.geteuid() == 0 else None)
    if key:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(RECORD_DIR, key, "containers", os.path.basename(directory)))


def containers(key: str) -> list[str]:
    """The container ids recorded for root ``key``."""
    try:
        return sorted(os.listdir(os.path.join(RECORD_DIR, key, "containers")))
    except OSError:
        return []


def forget(key: str) -> None:
    """Forget root ``key`` and its containers (a sweep removed what the host carried of them)."""
    import shutil

    shutil.rmtree(os.path.join(RECORD_DIR, key), ignore_errors=True)
    for path, known in list(_keys.items()):
        if known == key:
            del _keys[path]  # recorded again if this process uses it again


def bridge_alias(state_root: str, network: str) -> str:
    """The interface alias of a network's bridge: which root and network made it (at most 256 bytes)."""
    return f"minictr root={record(state_root) or '-'} network={network}"


def alias_of(interface: str) -> dict[str, str]:
    """A minictr interface's alias as a dict (``{"root": key, "network": name}``); empty when it has none."""
    try:
        with open(f"/sys/class/net/{interface}/ifalias") as handle:
            words = handle.read().split()
    except OSError:
        return {}
    if words[:1] != ["minictr"]:
        return {}
    return dict(word.split("=", 1) for word in words[1:] if "=" in word)


def _read_path(key: str) -> str | None:
    try:
        with open(os.path.join(RECORD_DIR, key, "path")) as handle:
            return handle.read() or None
    except OSError:
        return None
