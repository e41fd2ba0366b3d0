"""The monitors' cgroup: every ``minictr-monitor`` in ``/minictr/monitor``, out of its caller's cgroup.

A monitor is started by whoever runs ``minictr run -d`` (or ``start``, or the
Python API): a login session, a notebook kernel, a CI job, a systemd
service. Left in that caller's cgroup, it would die when that cgroup is
stopped (a session's scope closed, a kernel's unit restarted, a job's
cgroup killed) and be charged to its limits; the container, in a cgroup of
its own, would run on without anyone holding its output or recording its
exit. podman moves conmon out of its caller's scope for the same reason.

So a monitor moves itself, before it starts its container, into one cgroup
shared by every monitor, beside the containers' own under the engine's
parent (``/minictr/<id>``) in every hierarchy: no limits, nothing ever
killed there. The processes a monitor starts (the runtime's waiting process,
healthchecks) are born in it; the container's PID 1 goes to its own cgroup.

It goes with the last monitor, as the engine's parent goes with the last
container: a monitor that ends moves itself back to the root cgroup and
removes the monitors' cgroup if no other process is in it (then the parent,
if no container's cgroup is left in it). A monitor killed with SIGKILL
cannot: its container's state.json records the cgroup before the monitor
joins it, and ``rm`` (:func:`minictr.engine.container_dir.release_resources`)
removes it once it is empty. Without root (no cgroups for containers either)
a monitor stays where it was started.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is for checkers; the monitor's start and finish phases import this module
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.cgroups import Manager

NAME = "monitor"


def plan() -> Manager | None:
    """The monitors' cgroup on this host (nothing made yet), or None where containers get no cgroups."""
    from minictr.kernel import cgroups

    if not cgroups.available():
        return None
    return cgroups.new(f"/{cgroups.PARENT}/{NAME}")


def enter(directory: str) -> None:
    """Move this process (a monitor) into the monitors' cgroup, recorded first in ``directory``'s state.json."""
    from minictr.runtime.state import update_state

    manager = plan()
    if manager is None:
        return
    update_state(directory, {"monitor_cgroup": manager.record()})
    manager.join(os.getpid())


def leave() -> None:
    """As a monitor ends: back to the root cgroups, then remove the monitors' cgroup if it was the last one there."""
    from minictr.kernel import cgroups

    manager = plan()
    if manager is None:
        return
    cgroups.move_to_root()  # a hierarchy where that fails stays busy: the next monitor, or rm, removes it once empty
    release(manager.record())


def release(record: dict[str, Any]) -> bool:
    """Remove the monitors' cgroup recorded as ``record`` unless a process is in it; then the engine's parent, if
    empty. True when it is gone.
    """
    from minictr.kernel import cgroups
    from minictr.kernel.cgroups.base import remove_dir

    manager = cgroups.load(record)
    if manager.pids():
        return False  # another monitor's (or what one started): that one removes it
    for directory in manager.dirs.values():
        remove_dir(directory, patient=True)  # a process that just left may hold it for a moment (EBUSY)
    for parent in manager.created:
        remove_dir(parent)  # busy while a container's cgroup is in it: that container's removal takes it
    return not any(os.path.isdir(directory) for directory in manager.dirs.values())


def sweep() -> list[str]:
    """``system prune``: the monitors' cgroup when no monitor is in it (one killed before it could leave)."""
    manager = plan()
    if manager is None or not any(os.path.isdir(d) for d in manager.dirs.values()) or manager.pids():
        return []
    from minictr.kernel import cgroups

    return [f"cgroup /{cgroups.PARENT}/{NAME}: no monitor left in it"] if release(manager.record()) else []
