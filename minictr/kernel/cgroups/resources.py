"""Resource limits as Docker spells them, turned into OCI ``linux.resources`` and checked.

``minictr run -m 512m --cpus 0.5 --pids-limit 64 ...`` becomes the
``resources`` object of the OCI runtime spec (``memory.limit``,
``cpu.quota``/``cpu.period``, ``pids.limit``, ``blockIO`` and ``devices``),
which is all the drivers (:mod:`.v1`, :mod:`.v2`) read. Every value is
checked here, before anything is created on the host, and a bad one is a
:class:`~minictr.errors.UsageError` naming the flag and the reason.

The unit conversions between the two cgroup versions are runc's, so that the
same config gives the same result under runc and minictr:

- CPU shares (v1, 2..262144, default 1024) -> weight (v2, 1..10000, default 100):
  ``weight = 1 + (shares - 2) * 9999 // 262142``;
- blkio weight (v1, 10..1000) -> io weight (v2, 1..10000):
  ``1 + (weight - 10) * 9999 // 990``;
- memory+swap (v1 ``memsw``, OCI ``memory.swap``) -> swap alone (v2 ``memory.swap.max``).
"""

from __future__ import annotations

import os
import re
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError

#: Docker refuses memory limits below this: a process cannot even start in less.
MIN_MEMORY = 6 * 1024 * 1024
#: The CFS period Docker uses for --cpus (100 ms, in microseconds).
DEFAULT_CPU_PERIOD = 100_000

#: OCI resource -> the flag a user types, for error messages.
FLAGS = {
    ("memory", "limit"): "--memory",
    ("memory", "reservation"): "--memory-reservation",
    ("memory", "swap"): "--memory-swap",
    ("cpu", "quota"): "--cpus/--cpu-quota",
    ("cpu", "period"): "--cpu-period",
    ("cpu", "shares"): "--cpu-shares",
    ("cpu", "cpus"): "--cpuset-cpus",
    ("cpu", "mems"): "--cpuset-mems",
    ("pids", "limit"): "--pids-limit",
    ("blockIO", "weight"): "--blkio-weight",
    ("blockIO", "throttleReadBpsDevice"): "--device-read-bps",
    ("blockIO", "throttleWriteBpsDevice"): "--device-write-bps",
    ("blockIO", "throttleReadIOPSDevice"): "--device-read-iops",
    ("blockIO", "throttleWriteIOPSDevice"): "--device-write-iops",
    ("devices", ""): "--device",
}

#: The devices every container may use (runc's and Docker's defaults): everything else is denied.
#: (type, major, minor, access); -1 is a wildcard. "m" alone lets mknod make any node, not open it.
DEFAULT_ALLOWED = [
    ("c", -1, -1, "m"),
    ("b", -1, -1, "m"),
    ("c", 1, 3, "rwm"),
    ("c", 1, 5, "rwm"),
    ("c", 1, 7, "rwm"),
    ("c", 1, 8, "rwm"),
    ("c", 1, 9, "rwm"),  # null zero full random urandom
    ("c", 5, 0, "rwm"),
    ("c", 5, 1, "rwm"),
    ("c", 5, 2, "rwm"),
    ("c", 136, -1, "rwm"),  # tty console ptmx pts/*
    ("c", 10, 200, "rwm"),  # net/tun
]

_SIZE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$", re.IGNORECASE)
_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: str | int, flag: str) -> int:
    """Docker's sizes: ``512m``, ``1g``, ``64k``, ``1.5g``, ``100`` (bytes); binary units, case ignored."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise UsageError(f"{flag} {value!r}: invalid size (a number with an optional unit b, k, m, g: 512m)")
    return int(float(match[1]) * _UNITS[match[2].lower() if match[2] else None])


def human(size: int) -> str:
    """A byte count the way a learner reads it: 32MiB, 6.5MiB, 512KiB."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(size) >= factor:
            return f"{size / factor:.3g}{unit}"
    return f"{size}B"


def _number(value: str | int | float, flag: str, kind: type = int) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise UsageError(f"{flag} {value!r}: not {what}") from None


def parse_cpuset(text: str, flag: str, available: set[int] | None = None) -> str:
    """A cpuset list (``0-2,4``), checked for syntax and against what the host has; returned as given."""
    wanted: set[int] = set()
    for part in str(text).split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not match or (match[2] and int(match[2]) < int(match[1])):
            raise UsageError(f"{flag} {text!r}: invalid list (numbers and ranges: 0-2,4)")
        wanted.update(range(int(match[1]), int(match[2] or match[1]) + 1))
    if available is not None and not wanted <= available:
        raise UsageError(f"{flag} {text}: not available - requested {text}, available: {format_cpuset(available)}")
    return str(text).replace(" ", "")


def format_cpuset(numbers: set[int]) -> str:
    """{0, 1, 2, 4} -> ``0-2,4``."""
    ranges: list[str] = []
    for n in sorted(numbers):
        if ranges and "-" not in ranges[-1] and int(ranges[-1]) == n - 1:
            ranges[-1] = f"{ranges[-1]}-{n}"
        elif ranges and "-" in ranges[-1] and int(ranges[-1].split("-")[1]) == n - 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{n}"
        else:
            ranges.append(str(n))
    return ",".join(ranges)


def online(kind: str) -> set[int]:
    """The host's online CPUs (``cpu``) or memory nodes (``node``), from /sys/devices/system."""
    try:
        with open(f"/sys/devices/system/{kind}/online") as handle:
            return {int(n) for n in parse_ranges(handle.read().strip())}
    except OSError:
        return set(range(os.cpu_count() or 1)) if kind == "cpu" else {0}


def parse_ranges(text: str) -> list[int]:
    """``0-2,4`` -> [0, 1, 2, 4] (the kernel's list format)."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        out.extend(range(int(first), int(last or first) + 1))
    return out


# --- runc's conversions between v1 and v2 units ----------------------------------------------


def shares_to_weight(shares: int) -> int:
    """v1 ``cpu.shares`` -> v2 ``cpu.weight`` (runc's formula; 0 means unset)."""
    return 0 if shares == 0 else 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """v2 ``cpu.weight`` -> v1 ``cpu.shares``: the inverse of :func:`shares_to_weight` (to within rounding)."""
    return 0 if weight == 0 else 2 + ((weight - 1) * 262142) // 9999


def blkio_to_io_weight(weight: int) -> int:
    """v1 ``blkio.weight`` (10..1000) -> v2 ``io.weight`` (1..10000), as runc converts it."""
    return 0 if weight == 0 else 1 + (weight - 10) * 9999 // 990


def swap_for_v2(memory_swap: int, memory: int) -> int:
    """OCI ``memory.swap`` is memory+swap (v1's memsw); v2's ``memory.swap.max`` is the swap alone (-1: max)."""
    if memory_swap in (0, -1) or memory == -1:
        return memory_swap
    if memory == 0:
        raise UsageError("--memory-swap: a swap limit needs a memory limit (-m) too")
    if memory_swap < memory:
        raise UsageError(
            f"--memory-swap {human(memory_swap)}: must be at least --memory {human(memory)} (it counts memory + swap)"
        )
    return memory_swap - memory


# --- from flags to OCI ------------------------------------------------------------------------


def block_device(path: str, flag: str) -> tuple[int, int]:
    """The (major, minor) of a block device given by path: throttling needs a whole disk, not a partition."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror}") from exc
    if not stat.S_ISBLK(info.st_mode):
        raise UsageError(f"{flag} {path}: not a block device")
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    if os.path.exists(f"/sys/dev/block/{major}:{minor}/partition"):
        raise UsageError(f"{flag} {path}: a partition; the kernel throttles whole disks only (use the disk it is on)")
    return major, minor


def throttle(entries: list[str], flag: str, rate_is_size: bool) -> list[dict[str, int]]:
    """``/dev/sda:1mb`` (bps) or ``/dev/sda:100`` (iops) -> OCI ``{"major", "minor", "rate"}`` entries."""
    out = []
    for entry in entries:
        path, sep, rate_text = entry.rpartition(":")
        if not sep or not path:
            raise UsageError(f"{flag} {entry!r}: expected DEVICE:RATE (/dev/sda:1mb)")
        rate = parse_size(rate_text, f"{flag} {path}:") if rate_is_size else _number(rate_text, flag)
        if rate <= 0:
            raise UsageError(f"{flag} {entry}: the rate must be positive")
        major, minor = block_device(path, flag)
        out.append({"major": major, "minor": minor, "rate": rate})
    return out


def device_option(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Docker's ``--device HOST[:CONTAINER][:PERMS]`` -> (OCI ``linux.devices`` entry, allow rule)."""
    parts = text.split(":")
    perms = parts.pop() if len(parts) > 1 and re.fullmatch(r"[rwm]+", parts[-1]) else "rwm"
    if len(parts) > 2 or not parts[0].startswith("/"):
        raise UsageError(f"--device {text!r}: expected /HOST/PATH[:/CONTAINER/PATH][:rwm]")
    host, inside = parts[0], parts[1] if len(parts) == 2 else parts[0]
    try:
        info = os.stat(host)
    except OSError as exc:
        raise UsageError(f"--device {host}: {exc.strerror}") from exc
    if not (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)):
        raise UsageError(f"--device {host}: not a device node")
    kind = "c" if stat.S_ISCHR(info.st_mode) else "b"
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    node = {
        "path": inside,
        "type": kind,
        "major": major,
        "minor": minor,
        "fileMode": stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
    }
    return node, {"allow": True, "type": kind, "major": major, "minor": minor, "access": perms}


def default_device_rules() -> list[dict[str, Any]]:
    """Deny everything, then allow :data:`DEFAULT_ALLOWED` (OCI ``linux.resources.devices``)."""
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for kind, major, minor, access in DEFAULT_ALLOWED:
        rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
        if major >= 0:
            rule["major"] = major
        if minor >= 0:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def memory_resources(memory: Any, reservation: Any, swap: Any, swap_accounted: bool) -> dict[str, int]:
    """``-m``, ``--memory-reservation`` and ``--memory-swap`` -> OCI ``memory``, with Docker's rules."""
    out: dict[str, int] = {}
    limit = parse_size(memory, "--memory") if memory not in (None, "") else 0
    if limit:
        if limit < MIN_MEMORY:
            raise UsageError(f"--memory {memory}: the minimum memory limit is {human(MIN_MEMORY)}")
        out["limit"] = limit
    if reservation not in (None, ""):
        out["reservation"] = parse_size(reservation, "--memory-reservation")
        if limit and out["reservation"] > limit:
            raise UsageError(
                f"--memory-reservation {reservation}: above --memory {memory} (a reservation is a soft floor below "
                "the limit)"
            )
    if swap not in (None, ""):
        total = -1 if str(swap).strip() == "-1" else parse_size(swap, "--memory-swap")
        if not limit:
            raise UsageError("--memory-swap: a swap limit needs a memory limit (-m) too")
        if total != -1 and total < limit:
            raise UsageError(f"--memory-swap {swap}: must be at least --memory {memory} (it counts memory + swap)")
        if not swap_accounted:
            raise UsageError("--memory-swap: this kernel does not account swap per cgroup (boot with swapaccount=1)")
        out["swap"] = total
    elif limit and swap_accounted:
        out["swap"] = 2 * limit  # Docker's default: as much swap as memory
    return out


def cpu_resources(
    cpus: Any, quota: Any, period: Any, shares: Any, cpuset_cpus: Any, cpuset_mems: Any
) -> dict[str, Any]:
    """``--cpus`` (or ``--cpu-quota``/``--cpu-period``), ``--cpu-shares``, ``--cpuset-*`` -> OCI ``cpu``."""
    out: dict[str, Any] = {}
    if cpus not in (None, ""):
        if quota not in (None, "") or period not in (None, ""):
            raise UsageError("--cpus: conflicts with --cpu-quota/--cpu-period (give one or the other)")
        value = _number(cpus, "--cpus", float)
        host = len(online("cpu"))
        if not 0.01 <= value <= host:
            raise UsageError(
                f"--cpus {cpus}: out of range: from 0.01 to {host:.2f}, as there are only {host} CPUs available"
            )
        out["quota"], out["period"] = round(value * DEFAULT_CPU_PERIOD), DEFAULT_CPU_PERIOD
    if period not in (None, ""):
        out["period"] = _number(period, "--cpu-period")
        if not 1000 <= out["period"] <= 1_000_000:
            raise UsageError(f"--cpu-period {period}: must be between 1000 and 1000000 microseconds (1 ms to 1 s)")
    if quota not in (None, ""):
        out["quota"] = _number(quota, "--cpu-quota")
        if out["quota"] != -1 and out["quota"] < 1000:
            raise UsageError(f"--cpu-quota {quota}: must be at least 1000 microseconds (1 ms), or -1 for none")
        out.setdefault("period", DEFAULT_CPU_PERIOD)
    if shares not in (None, ""):
        out["shares"] = _number(shares, "--cpu-shares")
        if not 2 <= out["shares"] <= 262144:
            raise UsageError(f"--cpu-shares {shares}: must be between 2 and 262144 (1024 is one CPU's default share)")
    if cpuset_cpus not in (None, ""):
        out["cpus"] = parse_cpuset(cpuset_cpus, "--cpuset-cpus", online("cpu"))
    if cpuset_mems not in (None, ""):
        out["mems"] = parse_cpuset(cpuset_mems, "--cpuset-mems", online("node"))
    return out


def pids_resources(limit: Any) -> dict[str, int]:
    """``--pids-limit N``: at most N processes (and threads); 0 or -1 is no limit, as in Docker."""
    if limit in (None, ""):
        return {}
    value = _number(limit, "--pids-limit")
    if value < -1:
        raise UsageError(f"--pids-limit {limit}: must be positive (or -1 for no limit)")
    return {"limit": value if value > 0 else -1}


def block_io_resources(
    weight: Any, read_bps: list[str], write_bps: list[str], read_iops: list[str], write_iops: list[str]
) -> dict[str, Any]:
    """``--blkio-weight`` and the four per-device throttles -> OCI ``blockIO``."""
    out: dict[str, Any] = {}
    if weight not in (None, "", 0, "0"):
        out["weight"] = _number(weight, "--blkio-weight")
        if not 10 <= out["weight"] <= 1000:
            raise UsageError(f"--blkio-weight {weight}: must be between 10 and 1000")
    for key, flag, entries, is_size in (
        ("throttleReadBpsDevice", "--device-read-bps", read_bps, True),
        ("throttleWriteBpsDevice", "--device-write-bps", write_bps, True),
        ("throttleReadIOPSDevice", "--device-read-iops", read_iops, False),
        ("throttleWriteIOPSDevice", "--device-write-iops", write_iops, False),
    ):
        if entries:
            out[key] = throttle(list(entries), flag, is_size)
    return out


def wanted_controllers(resources: dict[str, Any]) -> dict[str, str]:
    """The controllers a resources object needs -> the flag that needs each (v2 names; v1 maps them)."""
    need: dict[str, str] = {}
    for (section, key), flag in FLAGS.items():
        value = resources.get(section)
        if not value or (key and key not in value):
            continue
        controller = {"memory": "memory", "pids": "pids", "blockIO": "io", "devices": "devices"}.get(section, "cpu")
        if section == "cpu" and key in ("cpus", "mems"):
            controller = "cpuset"
        need.setdefault(controller, flag)
    return need


def from_flags(
    *,
    memory: Any = None,
    memory_reservation: Any = None,
    memory_swap: Any = None,
    cpus: Any = None,
    cpu_quota: Any = None,
    cpu_period: Any = None,
    cpu_shares: Any = None,
    cpuset_cpus: Any = None,
    cpuset_mems: Any = None,
    pids_limit: Any = None,
    blkio_weight: Any = None,
    device_read_bps: Any = (),
    device_write_bps: Any = (),
    device_read_iops: Any = (),
    device_write_iops: Any = (),
    devices: Any = (),
    device_rules: bool = True,
    swap_accounted: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``minictr run``'s resource flags -> (OCI ``linux.resources``, OCI ``linux.devices`` for ``--device``).

    Sections nobody asked for are left out. ``device_rules`` adds the
    default allowlist (and ``--device`` entries) as ``resources.devices``.
    """
    resources: dict[str, Any] = {
        "memory": memory_resources(memory, memory_reservation, memory_swap, swap_accounted),
        "cpu": cpu_resources(cpus, cpu_quota, cpu_period, cpu_shares, cpuset_cpus, cpuset_mems),
        "pids": pids_resources(pids_limit),
        "blockIO": block_io_resources(blkio_weight, list(device_read_bps), list(device_write_bps),
                                      list(device_read_iops), list(device_write_iops)),
    }  # fmt: skip
    resources = {key: value for key, value in resources.items() if value}
    nodes = []
    rules = default_device_rules() if device_rules or devices else []
    for text in devices:
        node, rule = device_option(text)
        nodes.append(node)
        rules.append(rule)
    if rules:
        resources["devices"] = rules
    return resources, nodes
