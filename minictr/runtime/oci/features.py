"""The two documents minictr-oci prints: a starting ``config.json`` (``spec``) and what it supports (``features``).

``spec`` gives a bundle's config the same shape an engine would: the
namespaces Docker uses, the standard mounts, Docker's default capabilities,
masked and read-only paths, ``sh`` on a terminal; ``--rootless`` adds a
user namespace mapping the caller to root and drops what it cannot do.
``features`` is the runtime-spec's features document (features.md), read
by engines to know what they may ask for.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.runtime.oci import hooks
from minictr.runtime.spec import DEFAULT_PATH, OCI_VERSION, default_spec, standard_mounts


def bundle_spec(rootless: bool = False) -> dict[str, Any]:
    """A config.json for ``sh`` in ``./rootfs`` (``minictr-oci spec``)."""
    from minictr.kernel.security import capabilities, paths

    kinds = ["pid", "network", "ipc", "uts", "mount"] + (["user"] if rootless else [])
    spec = default_spec("rootfs", ["sh"], env=[DEFAULT_PATH, "TERM=xterm"], terminal=True, hostname="minictr",
                        namespaces=kinds, mounts=standard_mounts(user_namespace=rootless))  # fmt: skip
    caps = list(capabilities.DEFAULT)
    spec["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    spec["process"]["noNewPrivileges"] = True
    spec["root"]["readonly"] = True
    linux = spec["linux"]
    linux["maskedPaths"], linux["readonlyPaths"] = list(paths.MASKED), list(paths.READONLY)
    if rootless:
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
        spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys"] + [
            {
                "destination": "/sys",
                "type": "none",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        ]
    return spec


def features() -> dict[str, Any]:
    """The runtime-spec's features document for this runtime on this host."""
    from minictr.kernel import rootfs
    from minictr.kernel.security import capabilities
    from minictr.kernel.security.profile import ARCHES
    from minictr.runtime.validate_linux import SECCOMP_ACTIONS, SECCOMP_OPERATORS

    options = sorted({*rootfs.MOUNT_FLAGS, *rootfs._PROPAGATION, *rootfs._CLEARING, "bind", "rbind"})
    known = capabilities.NAMES[: capabilities.last_cap() + 1]
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(hooks.PHASES),
        "mountOptions": options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": list(known),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": sorted(SECCOMP_ACTIONS - {"SCMP_ACT_NOTIFY"}),
                "operators": sorted(SECCOMP_OPERATORS),
                "archs": sorted({a for _, archs in ARCHES.values() for a in archs}),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {},
    }
