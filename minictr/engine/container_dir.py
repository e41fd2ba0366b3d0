"""A container's directory on the host: ``<state root>/containers/<id>`` and its ``state.json``.

Each container owns a directory under the state root
(``/run/minictr/containers/<id>``) holding everything it created on the host
and ``state.json`` (its id, the host pid of its PID 1 with that process's
start time, its config, its cgroup and network). The directory goes when the
container exits (:func:`release_directory`: its cgroup, its network, then the
files); one whose owner died while nobody watched (``kill -9`` of minictr, a
detached container that ended) is removed by the next sweep
(:func:`remove_stale`). Creating a directory and sweeping hold one lock, so
a directory is never seen without its state.json.
"""

from __future__ import annotations

import contextlib
import os
import sys

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from minictr import paths, roots
from minictr.errors import MinictrError, UsageError
from minictr.files import remove_tree
from minictr.runtime.state import alive, read_state, start_time, update_state, write_state

#: The marker ``rm -f`` leaves in a container's directory: whoever else holds the container removes nothing itself.
REMOVING = "removing"


def containers_dir(state_root: str | None = None) -> str:
    """``<state root>/containers``, made searchable by all (a user-namespaced root must pass through)."""
    base = os.path.join(state_root or paths.state_root(), "containers")
    roots.record(os.path.dirname(base))  # host-wide, before anything is made from this root
    os.makedirs(base, exist_ok=True)
    for path in (os.path.dirname(base), base):
        os.chmod(path, 0o711)
    return base


@contextlib.contextmanager
def container_directory(state_root: str | None, keep: bool = False, name: str | None = None) -> Iterator[str]:
    """A fresh ``containers/<id>`` directory owned by this process; removed afterwards unless ``keep``.

    ``name`` (``--name``) must not be taken by another live container.
    """
    base = containers_dir(state_root)
    with _locked(base):  # a directory is never seen without its state.json
        remove_stale(base, locked=True)
        if name:
            for other in os.listdir(base):
                if read_state(os.path.join(base, other)).get("name") == name:
                    raise UsageError(f"--name {name!r} is already in use by container {other}")
        directory = os.path.join(base, os.urandom(6).hex())
        roots.note_container(directory)  # recorded host-wide first: found even if the root is deleted
        os.makedirs(directory)
        os.chmod(directory, 0o711)
        state = {"id": os.path.basename(directory), "status": "creating", "pid": os.getpid(),
                 "start": start_time(os.getpid())}  # fmt: skip
        write_state(directory, {**state, "name": name} if name else state)
    try:
        yield directory
    except BaseException:
        release_directory(directory)
        raise
    if not keep:
        release_directory(directory)


def release_directory(directory: str, volumes: bool = True) -> None:
    """Give back what a finished container held on the host, then remove its directory.

    Its cgroup and its network (:func:`release_resources`), its anonymous
    volumes unless ``volumes`` is false (``rm`` without ``-v`` keeps them, as
    Docker does), then the files.
    """
    release_resources(directory)
    state = read_state(directory)
    if state.get("volumes") and volumes:
        from minictr.engine.volumes import release

        release(state["volumes"])  # anonymous ones go with the container; named ones stay
    remove_tree(directory)
    if not os.path.lexists(directory):
        roots.forget_container(directory)


def release_resources(directory: str) -> None:
    """Give back a finished container's cgroup (killing whatever is left in it), then its network, and the monitors'
    cgroup if its monitor could not (see :mod:`minictr.engine.monitor_cgroup`).

    Both leave state.json once given back, so that a second call (``rm`` after
    the monitor) has nothing left to do; the directory itself stays.
    """
    state = read_state(directory)
    if state.get("cgroup"):
        from minictr.kernel import cgroups

        cgroups.load(state["cgroup"]).destroy()
    network = state.get("network")
    if network and network.get("mode") == "bridge":
        from minictr.engine.network.attach import disconnect

        disconnect(network)
    changes = {"cgroup": None, "network": None} if state.get("cgroup") or network else {}
    if state.get("monitor_cgroup"):  # its monitor was killed before it could leave: once empty, it goes (rm)
        from minictr.engine.monitor_cgroup import release

        if release(state["monitor_cgroup"]):
            changes["monitor_cgroup"] = None
    if changes:
        update_state(directory, changes)


def name_lock(base: str) -> contextlib.AbstractContextManager[None]:
    """The lock under which container names are given (``create``) and changed (``rename``)."""
    return _locked(base)


@contextlib.contextmanager
def _locked(base: str) -> Iterator[None]:
    """Hold ``<state root>/containers.lock``: creating a container directory and sweeping stale ones exclude each
    other.
    """
    from minictr.files import locked

    with locked(os.path.join(os.path.dirname(base), "containers.lock")):
        yield


def remove_stale(base: str, locked: bool = False) -> list[str]:
    """Remove container directories whose owner (minictr, or a detached container) is gone; return them."""
    if not locked:
        if not os.path.isdir(base):
            return []
        with _locked(base):
            return remove_stale(base, locked=True)
    removed = []
    for name in os.listdir(base):
        directory = os.path.join(base, name)
        state = read_state(directory)
        if state.get("managed"):
            continue  # a container with a monitor (minictr.engine.managed) stays, stopped or not, until rm
        if state and (
            alive(state["pid"], state.get("start", "")) or alive(state.get("owner", 0), state.get("owner_start", ""))
        ):
            continue
        try:
            release_directory(directory)
        except MinictrError as exc:  # kept, and tried again next time
            print(f"minictr: warning: cleaning up {name}: {exc}", file=sys.stderr)
            continue
        removed.append(directory)
    return removed


def find(container: str, state_root: str | None = None) -> dict[str, Any]:
    """The state of a running container, by name (``--name``), id or unique id prefix."""
    base = containers_dir(state_root)
    remove_stale(base)
    running = [s for s in (read_state(os.path.join(base, name)) for name in os.listdir(base)) if s.get("spec")]
    states = [s for s in running if s.get("name") == container]
    if not states:
        states = [s for s in running if container and s["id"].startswith(container)]
    if len(states) != 1:
        what = "no such container" if not states else "more than one container matches"
        raise UsageError(f"{what}: {container!r}")
    status = states[0].get("status", "running")
    if status == "paused":
        raise UsageError(f"container {states[0]['id']} is paused: unpause it first")
    if status != "running":  # kept after its exit (minictr.engine.managed) until rm
        raise UsageError(f"container {states[0]['id']} is not running")
    return states[0]


# --- a foreground container kept after its exit (run without --rm) ------------------------------


def record_kept(directory: str, store_root: str, command: list[str], options: Any,
                overlay: dict[str, Any] | None, settings: dict[str, Any]) -> None:  # fmt: skip
    """What a kept foreground container needs in state.json to be listed, inspected and started again.

    ``options`` is its :class:`~minictr.engine.run_options.RunOptions`; ``settings`` its lifecycle settings.
    """
    import dataclasses

    from minictr.engine.logs import timestamp

    now = timestamp()
    update_state(directory, {
        "created": now, "started_at": now, "command": list(command), "options": dataclasses.asdict(options),
        "lifecycle": settings, "data_root": os.path.dirname(store_root), "restart_count": 0, "overlay": overlay,
        "foreground": True,
    })  # fmt: skip


def kept_stopped(directory: str, exit_code: int, oom_killed: bool) -> None:
    """After a kept foreground container's exit: record it as Docker shows it (exited, its status), release the rest.

    Its cgroup and network go now; its root, log and state stay until ``rm``.
    An ``rm -f`` under way (its marker) removes the whole directory instead.
    """
    from minictr.engine.logs import timestamp

    if os.path.exists(os.path.join(directory, REMOVING)):
        return
    copied = not read_state(directory).get("upperdir")  # overlayfs refused: it ran in a flattened copy
    update_state(directory, {
        "managed": True, "status": "stopped", "exit_code": exit_code, "oom_killed": oom_killed,
        "finished_at": timestamp(), "owner": None, "owner_start": None, **({"overlay": None} if copied else {}),
    })  # fmt: skip
    release_resources(directory)
