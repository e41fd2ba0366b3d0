"""The bundle's ``cgroup`` mount made concrete: the container's own cgroup directories, bound read-only.

A config.json asks for ``{"type": "cgroup", "destination": "/sys/fs/cgroup"}``;
what that means depends on the host. On cgroup v2 the container's cgroup
directory is bound there; on v1 and the hybrid layout a small tmpfs holds
one bind per hierarchy (``memory``, ``pids``…, ``unified``), each the
container's directory in it, so ``/sys/fs/cgroup/memory/memory.limit_in_bytes``
inside is the container's own limit. The binds are read-only, as runc
makes them; the directories are known only once the cgroup is planned.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError


def expand_cgroup_mounts(spec: dict[str, Any], dirs: dict[str, str] | None) -> None:
    """Replace each ``cgroup`` mount of ``spec`` by the binds of the container's cgroup ``dirs``."""
    mounts = []
    for entry in spec.get("mounts") or []:
        if entry.get("type") != "cgroup":
            mounts.append(entry)
            continue
        if not dirs:
            raise UsageError(f"mounts: {entry['destination']}: a cgroup mount needs cgroups (run as root)")
        mounts += _binds(entry, dirs)
    if "mounts" in spec:
        spec["mounts"] = mounts


def _binds(entry: dict[str, Any], dirs: dict[str, str]) -> list[dict[str, Any]]:
    """The mounts standing for one cgroup mount."""
    destination = entry["destination"].rstrip("/") or "/"
    flags = [o for o in entry.get("options") or [] if o in ("ro", "nosuid", "noexec", "nodev")]
    bind = ["rbind", *flags] if "ro" in flags else ["rbind", "ro", *flags]
    if set(dirs) == {"unified"}:
        return [{"destination": destination, "type": "bind", "source": dirs["unified"], "options": bind}]
    out = [{"destination": destination, "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "noexec", "nodev", "mode=755", "size=64k"]}]  # fmt: skip
    for controller, path in sorted(dirs.items()):
        name = controller.removeprefix("name=")
        out.append({"destination": f"{destination}/{name}", "type": "bind", "source": path, "options": bind})
    return out
