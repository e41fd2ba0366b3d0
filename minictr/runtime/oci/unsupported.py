"""Fields of config.json that minictr-oci does not implement: refused by name, never silently ignored.

:func:`minictr.runtime.validate.validate` checks that a spec is well formed; this
module checks that this runtime, on this host, can honour it. Each entry
says what is missing, so an engine's user reads which field to drop.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError

#: Fields minictr-oci does not implement, and why.
_NOT_IMPLEMENTED = {
    ("process", "scheduler"): "sched_setattr is not implemented",
    ("process", "ioPriority"): "ioprio_set is not implemented",
    ("process", "execCPUAffinity"): "CPU affinity is not implemented",
    ("linux", "intelRdt"): "Intel RDT (resctrl) is not supported",
    ("linux", "memoryPolicy"): "set_mempolicy is not implemented",
    ("linux", "netDevices"): "moving network devices is not implemented",
}

#: Resource sections the cgroup drivers do not write.
_RESOURCES = ("rdma", "network", "hugepageLimits")


def problems(spec: dict[str, Any]) -> list[str]:
    """What in ``spec`` this runtime cannot do here: ``"field: reason"`` each."""
    found = [f"{a}.{b}: {why}" for (a, b), why in _NOT_IMPLEMENTED.items() if (spec.get(a) or {}).get(b)]
    process, linux = spec.get("process") or {}, spec.get("linux") or {}
    security = "AppArmor is not enabled on this host" if not _apparmor() else "AppArmor profiles are not implemented"
    if process.get("apparmorProfile"):
        found.append(f"process.apparmorProfile: {security}")
    for where, value in (
        ("process.selinuxLabel", process.get("selinuxLabel")),
        ("linux.mountLabel", linux.get("mountLabel")),
    ):
        if value:
            found.append(f"{where}: SELinux labels are not supported")
    personality = linux.get("personality")
    if personality and (personality.get("domain") != "LINUX" or personality.get("flags")):
        found.append("linux.personality: only the LINUX domain without flags is supported")
    resources = linux.get("resources") or {}
    found += [f"linux.resources.{key}: not supported by the cgroup drivers" for key in _RESOURCES if resources.get(key)]
    for number, mount in enumerate(spec.get("mounts") or []):
        if (
            mount.get("uidMappings")
            or mount.get("gidMappings")
            or {"idmap", "ridmap"} & set(mount.get("options") or [])
        ):
            found.append(f"mounts[{number}]: id-mapped mounts are not supported")
    root = (spec.get("root") or {}).get("path", "")
    if root and not os.path.isdir(root):
        found.append(f"root.path: {root} is not a directory")
    return found


def check_supported(spec: dict[str, Any]) -> None:
    """Raise :class:`UsageError` listing every field of ``spec`` this runtime cannot honour."""
    found = problems(spec)
    if found:
        raise UsageError("unsupported by minictr-oci: " + "; ".join(found))


def _apparmor() -> bool:
    try:
        with open("/sys/module/apparmor/parameters/enabled") as handle:
            return handle.read().strip() == "Y"
    except OSError:
        return False
