"""OCI runtime-spec configs: the contract between the high-level layer and the runtime.

A container is described by a ``config.json`` as the OCI runtime
specification defines it (``ociVersion``, ``process``, ``root``, ``hostname``,
``mounts``, ``linux``). The notebooks show it growing: each one turns on one
more part of it. :func:`default_spec` builds the smallest useful one.
"""

from __future__ import annotations

import copy
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
