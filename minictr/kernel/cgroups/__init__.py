"""cgroups: limits and accounting for a container, on cgroup v1, v2 or the hybrid of both.

One interface (:class:`~.base.Manager`), two drivers chosen at run time from
what is mounted (:func:`.layout.cgroup_layout`), as runc chooses
between its ``fs`` and ``fs2`` managers:

- ``v2``: a pure unified hierarchy (current distributions) -> :class:`~.v2.V2Manager`;
- ``v1``, and ``hybrid`` (v1 controllers plus a cgroup2 tree holding few or
  none) -> :class:`~.v1.V1Manager`, which also joins the cgroup2 tree.

How a container uses it (:mod:`minictr.engine.container` does this)::

    manager = cgroups.new(spec["linux"]["cgroupsPath"])   # plan only: paths
    write_state(..., cgroup=manager.record())             # recorded first, for kill -9
    manager.create(spec["linux"]["resources"])            # mkdir + limits
    spawn(spec, cgroup=manager.add)                       # the child joins before unsharing
    ... manager.stats(), manager.oom_kills() ...
    manager.destroy()                                     # or cgroups.load(record).destroy() later

The Docker flags -> OCI ``linux.resources`` conversion is :mod:`.resources`;
readings are :class:`~.stats.Stats`; the notebook's live graph is
:mod:`.monitor` (never imported on the start path).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.cgroups.stats import Stats

from minictr.errors import UsageError
from minictr.kernel.cgroups.base import OCI_PARENT, PARENT, Manager, own_cgroup, plan
from minictr.kernel.cgroups.layout import cgroup_layout

__all__ = [
    "OCI_PARENT",
    "PARENT",
    "Manager",
    "Stats",
    "available",
    "default_path",
    "layout",
    "load",
    "move_to_root",
    "new",
    "swap_accounted",
]


def __getattr__(name: str) -> Any:
    """``Stats`` on first use: a dataclass (its module imports ``inspect``); a container start never needs it."""
    if name == "Stats":
        from minictr.kernel.cgroups.stats import Stats

        return Stats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def layout() -> dict[str, Any]:
    """This host's cgroup layout (``{"layout": "v1"|"v2"|"hybrid"|"none", "v1": {...}, "v2": {...}}``)."""
    return cgroup_layout()


def available() -> bool:
    """True when this process can give containers cgroups: a layout with controllers, and root."""
    return os.geteuid() == 0 and layout()["layout"] != "none"


def move_to_root(pid: int = 0) -> None:
    """Move process ``pid`` (0: this one) to the root cgroup of every hierarchy, where one fails, on the others.

    For minictr's own processes that outlive the command that started them
    (a network's helpers, a monitor on its way out): left in the caller's
    cgroup they would keep it from being removed, and die when it is stopped.
    """
    from minictr.errors import CgroupError
    from minictr.kernel.cgroups.base import write

    host = layout()
    for mount in {*host["v1"].values(), host["v2"]["path"]} - {""}:
        try:
            write(os.path.join(mount, "cgroup.procs"), str(pid or os.getpid()))
        except CgroupError:
            pass  # not movable here (a hierarchy we may not write): that one stays as it was


def swap_accounted(host: dict[str, Any] | None = None) -> bool:
    """True when swap is limited per cgroup: always on v2 (5.8+), on v1 only with ``memory.memsw.*`` files."""
    host = host or layout()
    if host["layout"] == "v2":
        return True
    memory = host["v1"].get("memory")
    return bool(memory and os.path.exists(os.path.join(memory, "memory.memsw.limit_in_bytes")))


def default_path(container_id: str, parent: str = PARENT) -> str:
    """Where a container's cgroup goes: ``/minictr/<id>`` in every hierarchy (minictr-oci: under its own parent)."""
    return f"/{parent}/{container_id}"


def new(cgroups_path: str, host: dict[str, Any] | None = None) -> Manager:
    """Plan a container's cgroup at OCI ``cgroupsPath`` on this host (or on ``host``, a :func:`layout`).

    Only paths are computed: nothing exists until :meth:`Manager.create`.
    """
    from minictr.kernel.cgroups.v1 import V1Manager
    from minictr.kernel.cgroups.v2 import V2Manager

    host = host or layout()
    kind = host["layout"]
    if kind == "none":
        raise UsageError("no cgroup hierarchy is mounted on this host: limits are unavailable (see minictr doctor)")
    if kind == "v2":
        leaf, made = plan(host["v2"]["path"], cgroups_path, own_cgroup(""))
        return V2Manager({"unified": leaf}, made)
    dirs: dict[str, str] = {}
    created: list[str] = []
    mounts = [(controller, mount) for controller, mount in host["v1"].items()]
    if host["v2"]["path"]:
        mounts.append(("unified", host["v2"]["path"]))
    for controller, mount in mounts:
        leaf, made = plan(mount, cgroups_path, own_cgroup("" if controller == "unified" else controller))
        dirs[controller] = leaf
        created += [d for d in made if d not in created]
    return V1Manager(dirs, created)


def load(record: dict[str, Any]) -> Manager:
    """The manager of a cgroup recorded earlier (``Manager.record()`` from state.json)."""
    from minictr.kernel.cgroups.v1 import V1Manager
    from minictr.kernel.cgroups.v2 import V2Manager

    cls = V2Manager if record.get("version") == "v2" else V1Manager
    return cls(record.get("dirs", {}), record.get("created", []))
