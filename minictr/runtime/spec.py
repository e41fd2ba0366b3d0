"""OCI runtime-spec configs: the contract between the high-level layer and the runtime.

A container is described by a ``config.json`` as the OCI runtime
specification defines it (``ociVersion``, ``process``, ``root``, ``hostname``,
``mounts``, ``linux``). The notebooks show it growing: each one turns on one
more part of it. :func:`default_spec` builds the smallest useful one.
"""

from __future__ import annotations

import copy

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.2.0"

#: The PATH a container gets when its image says nothing (Docker's default).
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: /proc as chroot isolation mounts it: the host's processes, all of them.
PROC_MOUNT = {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}


def default_spec(
    rootfs: str,
    args: list[str],
    *,
    env: list[str] | None = None,
    cwd: str = "/",
    uid: int = 0,
    gid: int = 0,
    hostname: str | None = None,
    namespaces: list[str] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    terminal: bool = False,
) -> dict[str, Any]:
    """Return an OCI runtime-spec config for ``args`` run in ``rootfs``.

    ``namespaces`` lists OCI namespace types (``"mount"``, ``"pid"``…); an empty
    list — the default — means chroot isolation: the process shares every
    namespace with the host and only its root directory changes.
    """
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": uid, "gid": gid},
            "args": list(args),
            "env": list(env) if env is not None else [DEFAULT_PATH],
            "cwd": cwd,
        },
        "root": {"path": rootfs, "readonly": False},
        "mounts": copy.deepcopy(mounts) if mounts is not None else [],
        "linux": {"namespaces": [{"type": kind} for kind in (namespaces or [])]},
    }
    if hostname is not None:
        spec["hostname"] = hostname
    return spec


def namespace_types(spec: dict[str, Any]) -> set[str]:
    """The namespace types a spec asks for (new or joined by path)."""
    return {ns["type"] for ns in spec.get("linux", {}).get("namespaces", [])}


#: The namespaces ``minictr run`` creates by default, as Docker does (time is opt-in).
DEFAULT_NAMESPACES = ["pid", "network", "ipc", "uts", "mount", "cgroup"]


def standard_mounts(*, own_network: bool = True, user_namespace: bool = False) -> list[dict[str, Any]]:
    """/proc, a small /dev, /dev/pts, /dev/shm, /dev/mqueue and a read-only /sys (as ``runc spec`` has them).

    sysfs can only be mounted by root of the user namespace that owns the
    network namespace: the host's root always may, but in a user namespace
    sharing the host's network the host's /sys is bind-mounted read-only
    instead. In a user namespace the devpts group option is left out: gid 5
    may not be mapped.
    """
    pts_options = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not user_namespace:
        pts_options.append("gid=5")
    if own_network or not user_namespace:
        sys_mount = {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        }
    else:
        sys_mount = {
            "destination": "/sys",
            "type": "bind",
            "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
        }
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": pts_options},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        sys_mount,
    ]


def id_mapping(container_id: int, host_id: int, size: int) -> dict[str, int]:
    """One OCI uid/gid mapping entry."""
    return {"containerID": container_id, "hostID": host_id, "size": size}


def parse_id_map(text: str) -> dict[str, int]:
    """podman's ``--uidmap CONTAINER:HOST:SIZE`` -> an OCI mapping; ValueError when malformed."""
    parts = text.split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[2]) == 0:
        raise ValueError(f"{text!r} is not CONTAINER_ID:HOST_ID:SIZE (three numbers, size > 0)")
    return id_mapping(int(parts[0]), int(parts[1]), int(parts[2]))


def isolated_spec(
    rootfs: str,
    args: list[str],
    *,
    namespaces: list[str] | None = None,
    uid_mappings: list[dict[str, int]] | None = None,
    gid_mappings: list[dict[str, int]] | None = None,
    time_offsets: dict[str, dict[str, int]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    readonly: bool = False,
    **process: Any,
) -> dict[str, Any]:
    """An OCI config with full isolation: namespaces, standard mounts, maps, offsets, volumes.

    ``namespaces`` defaults to :data:`DEFAULT_NAMESPACES`; add ``"user"`` with
    ``uid_mappings``/``gid_mappings`` for a user namespace, ``"time"`` with
    ``time_offsets`` for shifted clocks. ``process`` takes :func:`default_spec`'s
    keywords (env, cwd, uid, gid, hostname, terminal).
    """
    kinds = list(DEFAULT_NAMESPACES if namespaces is None else namespaces)
    mounts = standard_mounts(own_network="network" in kinds, user_namespace="user" in kinds) if "mount" in kinds else []
    spec = default_spec(rootfs, args, namespaces=kinds, mounts=mounts + list(volumes or []), **process)
    spec["root"]["readonly"] = readonly
    if "user" in kinds:
        spec["linux"]["uidMappings"] = list(uid_mappings or [])
        spec["linux"]["gidMappings"] = list(gid_mappings or uid_mappings or [])
    if time_offsets:
        spec["linux"]["timeOffsets"] = time_offsets
    return spec


def bind_volume(spec_text: str) -> dict[str, Any]:
    """Docker's ``-v /host/path:/container/path[:ro]`` -> an OCI bind mount; ValueError when malformed."""
    parts = spec_text.split(":")
    if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1].startswith("/"):
        raise ValueError(f"{spec_text!r} is not /HOST_PATH:/CONTAINER_PATH[:ro|rw] (both absolute)")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ValueError(f"{spec_text!r}: the mode must be ro or rw, not {mode!r}")
    options = ["rbind", "rprivate"] + (["ro"] if mode == "ro" else [])
    return {"destination": parts[1], "type": "bind", "source": parts[0], "options": options}
