"""What one does to a container after ``run``: stop, rm, wait, restart, prune, inspect, list.

Each works on the container's directory and state.json, and on its monitor
through the marker files and the lock described in :mod:`minictr.engine.managed`;
none holds the container. Docker's semantics and exit codes throughout:
``stop`` sends the stop signal (``--stop-signal``, else the image's
StopSignal, else SIGTERM) and SIGKILL after the timeout; ``rm`` refuses a
running container without ``force``; ``wait`` returns the exit status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from typing import Any

from minictr.engine.container_dir import release_directory
from minictr.engine.managed import (
    REMOVING,
    STOP_REQUESTED,
    directories,
    monitor_alive,
    resolve,
    signal_number,
    start,
    status_of,
)
from minictr.errors import ContainerError, MinictrError, StateTransitionError, UsageError
from minictr.runtime.state import alive, read_state, update_state
from minictr.waiting import wait_until

DEFAULT_STOP_TIMEOUT = 10
#: How long rm -f and stop wait for a killed container's monitor to record its exit.
SETTLE_TIMEOUT = 30.0


def _touch(path: str) -> None:
    with open(path, "a"):
        pass


def _signal(state: dict[str, Any], sig: int) -> None:
    """Signal the container's PID 1, if it is still the process recorded (never a recycled pid)."""
    if alive(state.get("pid", 0), state.get("start", "")):
        try:
            os.kill(state["pid"], sig)
        except ProcessLookupError:
            pass


def stop_signal(state: dict[str, Any]) -> int:
    """``--stop-signal``, else the image's StopSignal, else SIGTERM."""
    chosen = state.get("lifecycle", {}).get("stop_signal") or state.get("config", {}).get("StopSignal") or "SIGTERM"
    return signal_number(chosen)


def stop(container: str, timeout: int | None = None, state_root: str | None = None) -> str:
    """Stop a running container: its stop signal, then SIGKILL after ``timeout`` seconds; return its id.

    A stopped container is left as it is. No restart policy applies after a
    stop; a restart already under way when the stop came is stopped too.
    """
    directory = resolve(container, state_root)
    state = read_state(directory)
    _thaw(state, directory)  # stopped as a running one would be
    state = read_state(directory)
    restarting = state.get("managed") and monitor_alive(directory)  # between two runs, its policy says restart
    if status_of(state, directory) != "running" and not restarting:
        return str(state["id"])
    _touch(os.path.join(directory, STOP_REQUESTED))
    if timeout is None:
        timeout = state.get("lifecycle", {}).get("stop_timeout")
    timeout = DEFAULT_STOP_TIMEOUT if timeout is None else max(timeout, 0)
    sig = stop_signal(state)
    kill_at: dict[tuple[int, str], float] = {}  # each process of the container (a restart makes a new one)

    def stopped() -> bool:
        now = read_state(directory)
        if not now or _settled(now, directory):
            return True
        key = (now.get("pid", 0), now.get("start", ""))
        if now.get("status") == "running" and alive(*key):
            if key not in kill_at:
                kill_at[key] = time.monotonic() + timeout
                _signal(now, sig)
            elif time.monotonic() > kill_at[key]:
                _signal(now, signal.SIGKILL)
        return False

    wait_until(stopped, timeout + SETTLE_TIMEOUT, 0.05)
    return str(state["id"])


def _settled(state: dict[str, Any], directory: str) -> bool:
    """True once a container's exit is recorded: its monitor done with it (or, run in the foreground, its process
    gone).
    """
    if state.get("managed"):
        return not monitor_alive(directory)
    return not alive(state.get("pid", 0), state.get("start", ""))


def remove(container: str, force: bool = False, state_root: str | None = None, volumes: bool = False) -> str:
    """Remove a container and everything it holds on the host; ``force`` kills a running one first.

    Its anonymous volumes stay (as Docker's ``rm``) unless ``volumes`` (``rm -v``); named ones always do.
    """
    directory = resolve(container, state_root)
    state = read_state(directory)
    status = status_of(state, directory)
    if status in ("running", "paused") and not force:
        raise UsageError(f"cannot remove container {state['id']}: it is {status} (stop it first, or use rm -f)")
    _touch(os.path.join(directory, REMOVING))
    _signal(state, signal.SIGKILL)
    _thaw(state, directory)  # the SIGKILL takes effect as it thaws
    if state.get("managed"):
        wait_until(lambda: not monitor_alive(directory), SETTLE_TIMEOUT)
    else:  # a foreground run: its minictr cleans up after its container
        wait_until(
            lambda: not os.path.exists(directory) or not alive(state.get("owner", 0), state.get("owner_start", "")),
            SETTLE_TIMEOUT,
        )
    if os.path.exists(directory):
        release_directory(directory, volumes=volumes)
    return str(state["id"])


def wait(container: str, state_root: str | None = None, timeout: float | None = None) -> int:
    """Block until the container stops; return its exit status (at once if it is stopped already).

    With ``timeout`` (seconds), a container still running then is a :class:`ContainerError`.
    """
    directory = resolve(container, state_root)
    first = read_state(directory)
    if status_of(first, directory) not in ("running", "paused"):
        return _exit_code(first)
    started = first.get("started_at")

    def finished() -> bool:
        state = read_state(directory)
        if not state:
            return True
        ended = state.get("finished_at") and (state.get("started_at") != started or state.get("status") != "running")
        return bool(ended) or status_of(state, directory) not in ("running", "paused")

    if timeout is not None:
        if not wait_until(finished, timeout, 0.05):
            raise ContainerError(f"container {first['id']} still runs after {timeout:g} s")
    else:
        while not wait_until(finished, 3600, 0.05):
            pass
    return _exit_code(read_state(directory) or first)


def _exit_code(state: dict[str, Any]) -> int:
    code = state.get("exit_code")
    return -1 if code is None else code


def restart(container: str, timeout: int | None = None, state_root: str | None = None) -> str:
    """``stop`` then ``start``."""
    stop(container, timeout, state_root)
    return start(container, state_root)


def prune(state_root: str | None = None) -> list[str]:
    """Remove every stopped container; return their ids."""
    removed = []
    for directory in directories(state_root):
        state = read_state(directory)
        if state.get("managed") and status_of(state, directory) == "stopped":
            removed.append(remove(state["id"], state_root=state_root))
    return removed


def send_signal(container: str, sig: int, state_root: str | None = None) -> str:
    """``kill``: signal a running container's PID 1."""
    directory = resolve(container, state_root)
    state = read_state(directory)
    status = status_of(state, directory)
    if status != "running":
        why = "paused: unpause it first" if status == "paused" else "not running"
        raise UsageError(f"container {state['id']} is {why}")
    _signal(state, sig)
    return str(state["id"])


def pause(container: str, state_root: str | None = None, paused: bool = True) -> str:
    """Freeze every process of a running container (``paused=False``: thaw a paused one); return its id.

    The cgroup freezer does it (``freezer.state`` on v1, ``cgroup.freeze`` on
    v2, the same code as ``minictr-oci pause``); the move is the state
    machine's (running ⇄ paused), recorded in state.json.
    """
    from minictr.runtime.oci.freezer import freeze
    from minictr.runtime.state import ContainerState, Status, refusal, transition

    directory = resolve(container, state_root)
    state = read_state(directory)
    current = Status(status_of(state, directory))
    if not paused and current is not Status.PAUSED:  # the machine's other ways to running are not unpause's
        raise refusal(current, Status.RUNNING, "resumed", state["id"], state.get("name"))
    target = transition(current, Status.PAUSED if paused else Status.RUNNING, state["id"], state.get("name"))
    if not state.get("cgroup"):
        raise UsageError(f"container {state['id']} has no cgroup (rootless or chroot isolation): it cannot be paused")
    freeze(ContainerState.from_dict(state), paused)
    try:
        update_state(directory, {"status": target.value})  # checked again against what was recorded meanwhile
    except StateTransitionError:
        with contextlib.suppress(MinictrError, OSError):  # another command moved it first: undo ours
            freeze(ContainerState.from_dict(state), not paused)
        raise
    return str(state["id"])


def _thaw(state: dict[str, Any], directory: str) -> None:
    """Thaw a paused container (a frozen process cannot even die); the monitor then records its exit as usual."""
    if status_of(state, directory) == "paused":
        from minictr.runtime.oci.freezer import freeze
        from minictr.runtime.state import ContainerState

        freeze(ContainerState.from_dict(state), False)
        with contextlib.suppress(StateTransitionError):  # moved on meanwhile (another stop thawed it, it exited)
            update_state(directory, {"status": "running"})


def rename(container: str, name: str, state_root: str | None = None) -> str:
    """Give a container a new name (``minictr rename``); refused when another container has it. Returns its id.

    On a user-defined network the new name resolves at once, and the old one no longer does (as Docker's).
    """
    import re

    from minictr.engine.container_dir import containers_dir, name_lock

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise UsageError(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    directory = resolve(container, state_root)
    base = containers_dir(state_root)
    with name_lock(base):  # as create does: two containers never take one name
        for other in os.listdir(base):
            state = read_state(os.path.join(base, other))
            if state.get("name") == name and state.get("id") != os.path.basename(directory):
                raise UsageError(f"the name {name!r} is already in use by container {state['id']}")
        state = read_state(directory)
        changes: dict[str, Any] = {"name": name}
        if state.get("options"):  # a managed container's next start names it (and its network lease) from these
            changes["options"] = {**state["options"], "name": name}
        if state.get("network"):
            from minictr.engine.network.attach import rename as rename_member

            changes["network"] = rename_member(state["network"], name)
        update_state(directory, changes)
    return os.path.basename(directory)
