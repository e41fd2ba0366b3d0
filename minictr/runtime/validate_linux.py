"""The checks of a spec's ``linux`` section (OCI runtime-spec config-linux.md).

Namespaces and what depends on them (id mappings, time offsets), the
cgroup's resources, device nodes, masked and read-only paths, sysctls,
seccomp and the root's propagation. :func:`minictr.runtime.validate.validate` calls
:func:`check_linux`; every problem names its field (see
:mod:`minictr.runtime.validate_fields`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

from minictr.runtime.validate_fields import Checker, child, show

#: The namespace types a spec may create or join.
NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")

#: ``linux.rootfsPropagation``: the spec's four kinds and their recursive forms (as runc accepts them).
PROPAGATIONS = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable"})

#: seccomp's actions (``defaultAction``, ``syscalls[].action``) and argument comparisons.
SECCOMP_ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
})  # fmt: skip
SECCOMP_OPERATORS = frozenset({
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
})  # fmt: skip

#: The clocks a time namespace can shift.
CLOCKS = ("monotonic", "boottime")

_NANOSECONDS = 999_999_999
_UINT32 = 2**32 - 1


def namespace_entries(linux: Any) -> list[tuple[str, dict[str, Any]]]:
    """The (path, entry) pairs of ``linux.namespaces`` that are objects; nothing for a malformed section.

    (It records no problems: :func:`check_linux` does.)
    """
    entries = linux.get("namespaces") if isinstance(linux, dict) else None
    if not isinstance(entries, list):
        return []
    return [(f"linux.namespaces[{i}]", e) for i, e in enumerate(entries) if isinstance(e, dict)]


def check_linux(check: Checker, linux: dict[str, Any]) -> None:
    """Record every problem of the ``linux`` section."""
    kinds = _check_namespaces(check, linux)
    _check_mappings(check, linux, "user" in kinds)
    _check_time_offsets(check, linux, "time" in kinds)
    resources = check.member(linux, "resources", "linux", dict)
    if resources is not None:
        _check_memory_cpu_pids(check, resources)
        _check_block_io(check, resources)
        _check_device_rules(check, resources)
        check.string_map(resources, "unified", "linux.resources")
    check.member(linux, "cgroupsPath", "linux", str)  # absolute, or relative to the runtime's own place
    _check_devices(check, linux)
    for key in ("maskedPaths", "readonlyPaths"):
        for where, path in check.array(linux, key, "linux"):
            check.absolute(path, where)
    check.string_map(linux, "sysctl", "linux")
    check.one_of(linux, "rootfsPropagation", "linux", PROPAGATIONS, "propagation")
    for key in ("mountLabel", "intelRdt"):
        check.member(linux, key, "linux", str if key == "mountLabel" else dict)
    seccomp = check.member(linux, "seccomp", "linux", dict)
    if seccomp is not None:
        _check_seccomp(check, seccomp)


def _check_namespaces(check: Checker, linux: dict[str, Any]) -> set[str]:
    """Known types, each at most once, an absolute path when joined; return the types."""
    kinds: set[str] = set()
    for where, entry in check.objects(linux, "namespaces", "linux"):
        check.unique_type(entry, where, NAMESPACES, kinds, "namespace")
        if "path" in entry:
            check.absolute(entry["path"], child(where, "path"))
    return kinds


def _check_mappings(check: Checker, linux: dict[str, Any], user_namespace: bool) -> None:
    """uid/gid maps: only with a user namespace; sizes > 0; no two ranges overlapping, inside or out."""
    for key in ("uidMappings", "gidMappings"):
        entries = check.objects(linux, key, "linux")
        if entries and not user_namespace:
            check.add(f"linux.{key}", "needs a user namespace (linux.namespaces has none)")
        ranges: dict[str, list[tuple[int, int, str]]] = {"containerID": [], "hostID": []}
        for where, entry in entries:
            size = check.integer(entry, "size", where, 1, _UINT32, required=True)
            for side, taken in ranges.items():
                first = check.integer(entry, side, where, 0, _UINT32, required=True)
                if first is None or size is None:
                    continue
                _check_overlap(check, child(where, side), (first, first + size - 1), taken)
                taken.append((first, first + size - 1, where))


def _check_overlap(check: Checker, path: str, span: tuple[int, int], taken: list[tuple[int, int, str]]) -> None:
    for first, last, other in taken:
        if span[0] <= last and first <= span[1]:
            check.add(path, f"ids {span[0]}-{span[1]} overlap {first}-{last} of {other}")
            return


def _check_time_offsets(check: Checker, linux: dict[str, Any], time_namespace: bool) -> None:
    offsets = check.member(linux, "timeOffsets", "linux", dict)
    if offsets is None:
        return
    if offsets and not time_namespace:
        check.add("linux.timeOffsets", "needs a time namespace (linux.namespaces has none)")
    for clock in offsets:
        where = child("linux.timeOffsets", clock)
        if clock not in CLOCKS:
            check.add(where, f"unknown clock (known: {', '.join(CLOCKS)})")
        elif check.typed(offsets[clock], where, dict) is not None:
            check.integer(offsets[clock], "secs", where)
            check.integer(offsets[clock], "nanosecs", where, 0, _NANOSECONDS)


def _check_memory_cpu_pids(check: Checker, resources: dict[str, Any]) -> None:
    """Limits are integers, -1 meaning none; cpus and mems are cpuset strings."""
    memory = check.member(resources, "memory", "linux.resources", dict)
    if memory is not None:
        for key in ("limit", "reservation", "swap", "kernel", "kernelTCP"):
            check.integer(memory, key, "linux.resources.memory", -1)
        check.integer(memory, "swappiness", "linux.resources.memory", 0, 100)
        for key in ("disableOOMKiller", "useHierarchy", "checkBeforeUpdate"):
            check.member(memory, key, "linux.resources.memory", bool)
    cpu = check.member(resources, "cpu", "linux.resources", dict)
    if cpu is not None:
        for key in ("shares", "period", "realtimePeriod"):
            check.integer(cpu, key, "linux.resources.cpu", 0)
        for key in ("quota", "realtimeRuntime", "burst"):
            check.integer(cpu, key, "linux.resources.cpu", -1)
        for key in ("cpus", "mems"):
            check.member(cpu, key, "linux.resources.cpu", str)
    pids = check.member(resources, "pids", "linux.resources", dict)
    if pids is not None:
        check.integer(pids, "limit", "linux.resources.pids", -1, required=True)
    for where, entry in check.objects(resources, "hugepageLimits", "linux.resources"):
        check.member(entry, "pageSize", where, str, required=True)
        check.integer(entry, "limit", where, 0, required=True)


def _check_block_io(check: Checker, resources: dict[str, Any]) -> None:
    """Weights 10..1000 (cgroup v1's blkio range); devices by major:minor; rates >= 0."""
    block = check.member(resources, "blockIO", "linux.resources", dict)
    if block is None:
        return
    path = "linux.resources.blockIO"
    for key in ("weight", "leafWeight"):
        check.integer(block, key, path, 10, 1000)
    for where, entry in check.objects(block, "weightDevice", path):
        _check_major_minor(check, entry, where)
        for key in ("weight", "leafWeight"):
            check.integer(entry, key, where, 10, 1000)
    for key in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for where, entry in check.objects(block, key, path):
            _check_major_minor(check, entry, where)
            check.integer(entry, "rate", where, 0, required=True)


def _check_major_minor(check: Checker, entry: dict[str, Any], where: str, required: bool = True) -> None:
    for key in ("major", "minor"):
        check.integer(entry, key, where, 0, required=required)


def _check_device_rules(check: Checker, resources: dict[str, Any]) -> None:
    """The devices cgroup: allow (required), type a/c/b, major/minor (absent or -1: all), access within rwm."""
    for where, rule in check.objects(resources, "devices", "linux.resources"):
        check.member(rule, "allow", where, bool, required=True)
        check.one_of(rule, "type", where, ("a", "c", "b"), "device type")
        for key in ("major", "minor"):
            check.integer(rule, key, where, -1)
        access = check.member(rule, "access", where, str)
        if access is not None and not set(access) <= set("rwm"):
            check.add(child(where, "access"), f"{show(access)} is not made of r, w and m")


def _check_devices(check: Checker, linux: dict[str, Any]) -> None:
    """Device nodes to create: an absolute path; type c, b, u or p; numbers except for a fifo."""
    for where, device in check.objects(linux, "devices", "linux"):
        path = check.member(device, "path", where, str, required=True)
        if path is not None:
            check.absolute(path, child(where, "path"))
        kind = device.get("type")
        check.one_of(device, "type", where, ("c", "b", "u", "p"), "device type", required=True)
        _check_major_minor(check, device, where, required=kind in ("c", "b", "u"))
        check.integer(device, "fileMode", where, 0, 0o7777)
        for key in ("uid", "gid"):
            check.integer(device, key, where, 0)


def _check_seccomp(check: Checker, seccomp: dict[str, Any]) -> None:
    """A known default action; each rule names its syscalls and a known action."""
    path = "linux.seccomp"
    check.one_of(seccomp, "defaultAction", path, SECCOMP_ACTIONS, "action", required=True)
    for where, architecture in check.array(seccomp, "architectures", path, str):
        if not architecture.startswith("SCMP_ARCH_"):
            check.add(where, f"unknown architecture {show(architecture)}")
    check.array(seccomp, "flags", path, str)
    for where, rule in check.objects(seccomp, "syscalls", path):
        check.array(rule, "names", where, str)
        if "names" not in rule:
            check.add(child(where, "names"), "required")
        elif rule["names"] == []:
            check.add(child(where, "names"), "must name at least one syscall")
        check.one_of(rule, "action", where, SECCOMP_ACTIONS, "action", required=True)
        check.integer(rule, "errnoRet", where, 0)
        for arg_path, arg in check.objects(rule, "args", where):
            check.integer(arg, "index", arg_path, 0, 5, required=True)
            check.integer(arg, "value", arg_path, 0, required=True)
            check.integer(arg, "valueTwo", arg_path, 0)
            check.one_of(arg, "op", arg_path, SECCOMP_OPERATORS, "operator", required=True)
