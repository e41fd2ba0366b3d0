"""Where ``minictr-oci`` keeps its containers: ``<root>/<id>/state.json`` and ``<root>/<id>/exec.fifo``.

state.json is a :class:`~minictr.runtime.state.ContainerState` (written atomically)
with the bundle, the creation time and the cgroup record; the status in it
is what the runtime last did, and :func:`current` corrects it from the
kernel's view, as runc does: a dead first process means ``stopped``.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError
from minictr.runtime.state import ContainerState, Status, alive, read_state, write_state

#: runc's rule for container ids.
_ID = re.compile(r"^[\w+.-]+$")

DEFAULT_ROOT = "/run/minictr-oci"


class NotFound(UsageError):
    """No container with that id under this root."""


def check_id(container_id: str) -> None:
    """Refuse an id that is not a plain file name (runc's wording)."""
    if not _ID.match(container_id) or container_id in (".", ".."):
        raise UsageError(f"invalid id format: {container_id}")


def directory(root: str, container_id: str) -> str:
    """The container's directory under ``root``."""
    check_id(container_id)
    return os.path.join(root, container_id)


def fifo_path(root: str, container_id: str) -> str:
    """The exec fifo the created container waits on."""
    return os.path.join(directory(root, container_id), "exec.fifo")


def make(root: str, container_id: str) -> str:
    """Make the container's directory; an id in use is an error."""
    path = directory(root, container_id)
    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise UsageError(f"container with id exists: {container_id}") from None
    return path


def save(root: str, state: ContainerState) -> None:
    """Write the container's state.json atomically."""
    write_state(directory(root, state.id), state.to_dict())


def load(root: str, container_id: str) -> ContainerState:
    """The container's state as recorded, corrected by :func:`current`."""
    data = read_state(directory(root, container_id))
    if not data:
        raise NotFound(f"container does not exist: {container_id}")
    return current(ContainerState.from_dict(data))


def current(state: ContainerState) -> ContainerState:
    """``state`` with the status the kernel implies: stopped once its first process is gone."""
    if state.status in (Status.CREATED, Status.RUNNING, Status.PAUSED) and not alive(state.pid, state.start):
        state.status = Status.STOPPED
    return state


def all_states(root: str) -> list[ContainerState]:
    """Every container under ``root``, by id."""
    found = []
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            found.append(load(root, name))
        except UsageError:
            continue  # a directory being made or removed right now
    return found


def bundle(state: ContainerState) -> str:
    """The bundle the container was created from."""
    value: Any = state.extra.get("bundle", "")
    return str(value)
