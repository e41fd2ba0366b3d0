"""Which cgroup hierarchies this host mounts, and where: v1, v2, the hybrid of both, or none.

:func:`cgroup_layout` reads the mount table; the managers (:mod:`.v1`,
:mod:`.v2`) are chosen from it, and ``minictr doctor`` reports it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

from minictr.kernel.mountinfo import MOUNTINFO, read_mountinfo

# cgroup v1 mount options that are not controller names (kernel/cgroup/cgroup-v1.c)
_V1_NON_CONTROLLERS = {
    "rw",
    "ro",
    "none",
    "all",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "xattr",
    "favordynmods",
}


def cgroup_layout(mountinfo: str = MOUNTINFO) -> dict[str, Any]:
    """Describe the cgroup hierarchies mounted in this mount namespace.

    Returns ``{"layout": "v1"|"v2"|"hybrid"|"none", "v1": {controller: mount point},
    "v2": {"path": mount point or None, "controllers": [...]}}``. Named v1
    hierarchies appear as ``"name=systemd"``; they hold no controller, so they
    do not by themselves make a layout "v1" or "hybrid".
    """
    v1: dict[str, str] = {}
    v2_path: str | None = None
    for m in read_mountinfo(mountinfo):
        if m.fstype == "cgroup":
            for opt in m.super_options:
                if opt not in _V1_NON_CONTROLLERS and not opt.startswith("release_agent="):
                    v1.setdefault(opt, m.mount_point)  # first mount wins over bind mounts
        elif m.fstype == "cgroup2" and v2_path is None:
            v2_path = m.mount_point
    controllers: list[str] = []
    if v2_path is not None:
        try:
            controllers = _read_line(os.path.join(v2_path, "cgroup.controllers")).split()
        except OSError:
            pass  # mounted but unreadable: report the mount with no controllers
    has_v1 = any(not c.startswith("name=") for c in v1)
    layout = "hybrid" if has_v1 and v2_path else "v1" if has_v1 else "v2" if v2_path else "none"
    return {"layout": layout, "v1": v1, "v2": {"path": v2_path, "controllers": controllers}}


def _read_line(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()
