"""Pause and resume: the cgroup freezer (``freezer.state`` on v1, ``cgroup.freeze`` on v2).

A frozen process gets no CPU time and cannot even die, so ``delete`` thaws a
paused container before it kills it.
"""

from __future__ import annotations

import os
import time

from minictr.errors import MinictrError, UsageError
from minictr.runtime.state import ContainerState

#: How long the kernel may take to freeze or thaw every process of a container, in seconds.
DEADLINE = 10.0


def _freezer(state: ContainerState) -> tuple[str, str, str]:
    """(file, frozen value, thawed value) of the container's freezer."""
    dirs = (state.cgroup or {}).get("dirs") or {}
    if (state.cgroup or {}).get("version") == "v2" and "unified" in dirs:
        return os.path.join(dirs["unified"], "cgroup.freeze"), "1", "0"
    if "freezer" in dirs:
        return os.path.join(dirs["freezer"], "freezer.state"), "FROZEN", "THAWED"
    raise UsageError(f"container {state.id} has no freezer cgroup: pause needs cgroups with the freezer")


def freeze(state: ContainerState, frozen: bool) -> None:
    """Freeze or thaw every process of the container; wait until the kernel says it is done."""
    path, on, off = _freezer(state)
    want = on if frozen else off
    with open(path, "w") as handle:
        handle.write(want)
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        with open(path) as handle:
            if handle.read().strip() == want:
                return
        time.sleep(0.005)
    raise MinictrError(f"container {state.id}: the freezer did not reach {want}")
