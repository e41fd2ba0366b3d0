"""A container's state: the OCI runtime-spec's statuses, the moves between them, and state.json as a type.

The runtime specification (runtime.md, "State") gives a container one of
four statuses, and its lifecycle the only ways between them::

    creating ──create done──> created ──start──> running ──exit──> stopped
        │ ^                      │                  │ ^              │
        │ └──────────────────────┼──────────────────┼─┼──start again─┘ (the engine's, not the spec's)
        └──set-up failed──> stopped <──kill──┘      │ │ pause / resume (not the spec's:
                                                    v │  runc's, through the cgroup freezer)
                                                  paused

A created container may be paused too (the freezer holds its waiting
process) and resumes to created, as runc allows.

The spec's stopped is final: an OCI runtime's container is deleted, and a
new one created. Docker's containers start again (``minictr start`` of an
exited container, a restart policy): the engine keeps the container and sets
it up anew, so its one move beyond the spec is stopped → creating, and from
there the spec's way again (created, running; or stopped, when set-up fails).
Docker's words for these are the view's (:mod:`minictr.engine.container_view`):
created, running, paused, exited (stopped).

:func:`transition` allows exactly these moves and refuses any other with a
:class:`~minictr.errors.StateTransitionError` that says what the container is
(``container web (3f2a9c01b2de) is stopped: it cannot be paused``), as runc
refuses a move its state machine lacks. :func:`update_state` is the one way
the engine changes a recorded status: it checks the move against the status
on disk, under the container's lock, so two commands racing never record an
illegal one.

:class:`ContainerState` is what ``state.json`` holds for one container (its
id, the pid and start time of its first process, its owner, cgroup,
network, spec and image), read with :meth:`ContainerState.from_dict` and
written with :meth:`ContainerState.to_dict` without losing a key it does not
know. :meth:`ContainerState.oci_state` is the state a runtime reports to the
tools that drive it (``minictr-oci state``): ociVersion, id, status, pid,
bundle, annotations.
"""

from __future__ import annotations

import _thread
import enum
import os

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import MinictrError, StateTransitionError
from minictr.files import locked, read_json, write_json
from minictr.runtime.spec import OCI_VERSION


class Status(enum.Enum):
    """The runtime-spec's statuses of a container."""

    CREATING = "creating"  #: being set up: namespaces, mounts, cgroup
    CREATED = "created"  #: set up, waiting for ``start``; its program has not run yet
    RUNNING = "running"  #: its program runs
    STOPPED = "stopped"  #: its program exited (or set-up failed); what it held may remain until deleted
    PAUSED = "paused"  #: frozen by the cgroup freezer (runc's status; the spec reserves nothing for it)


#: The moves a container may make from each status.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATING: frozenset({Status.CREATED, Status.STOPPED}),
    Status.CREATED: frozenset({Status.RUNNING, Status.STOPPED, Status.PAUSED}),
    Status.RUNNING: frozenset({Status.STOPPED, Status.PAUSED}),
    Status.PAUSED: frozenset({Status.RUNNING, Status.CREATED, Status.STOPPED}),
    Status.STOPPED: frozenset({Status.CREATING}),  # the engine's start again; never minictr-oci's
}

#: What a container that made the move to a status has been, for messages ("it cannot be started").
_DONE = {Status.CREATING: "created", Status.CREATED: "created", Status.RUNNING: "started", Status.STOPPED: "stopped",
         Status.PAUSED: "paused"}  # fmt: skip


def transition(current: Status | str, new: Status | str, container_id: str = "", name: str | None = None) -> Status:
    """Return ``new`` if a container in ``current`` may move there; else raise :class:`StateTransitionError`.

    ``container_id`` (and ``name``) name the container in the message.
    """
    current, new = status_of(current), status_of(new)
    if new in TRANSITIONS[current]:
        return new
    done = "resumed" if current is Status.PAUSED and new is Status.RUNNING else _DONE[new]
    raise refusal(current, new, done, container_id, name)


def refusal(current: Status, wanted: Status, done: str, container_id: str = "", name: str | None = None
            ) -> StateTransitionError:  # fmt: skip
    """The error for a container in ``current`` that cannot be ``done`` (a participle: "started", "resumed")."""
    who = f"container {name} ({container_id})" if name and container_id else f"container {name or container_id}"
    who = who if (name or container_id) else "the container"
    return StateTransitionError(f"{who} is {current.value}: it cannot be {done}", current.value, wanted.value)


def recorded_status(data: dict[str, Any]) -> Status:
    """The status a state.json records; one written before statuses were has the one its contents imply.

    A container with a spec is running, one without is being created (a
    stopped one is found by its pid: see :func:`alive`).
    """
    if "status" in data:
        return status_of(data["status"])
    return Status.RUNNING if data.get("spec") else Status.CREATING


def status_of(value: Status | str) -> Status:
    """A :class:`Status` from itself or its name; a :class:`MinictrError` for an unknown name."""
    if isinstance(value, Status):
        return value
    try:
        return Status(value)
    except ValueError:
        known = ", ".join(s.value for s in Status)
        raise MinictrError(f"unknown container status {value!r} (known: {known})") from None


#: The fields of :class:`ContainerState`, in state.json's order.
FIELDS = ("id", "status", "pid", "start", "name", "owner", "owner_start", "cgroup", "network", "spec", "image",
          "image_id", "manifest_digest", "lowerdirs", "upperdir", "root_owner", "config", "extra")  # fmt: skip


class ContainerState:
    """One container's ``state.json``.

    Fields left ``None`` were never recorded and are not written. Keys this
    type does not know are kept in ``extra`` and written back unchanged.
    A plain class, not a dataclass: ``dataclasses`` imports ``inspect`` (and
    ``ast``, ``dis``, ``tokenize``), 5-6 ms of every ``minictr-oci`` verb.
    """

    def __init__(
        self,
        id: str,
        status: Status = Status.CREATING,
        pid: int = 0,
        start: str = "",
        name: str | None = None,
        owner: int | None = None,
        owner_start: str | None = None,
        cgroup: dict[str, Any] | None = None,
        network: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        image: str | None = None,
        image_id: str | None = None,
        manifest_digest: str | None = None,
        lowerdirs: list[str] | None = None,
        upperdir: str | None = None,
        root_owner: int | None = None,
        config: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.status = status
        self.pid = pid  #: its first process (before that, the process creating it), as the host sees it
        self.start = start  #: that process's start time (/proc/PID/stat field 22): with the pid, it names one process
        self.name = name  #: ``--name``
        self.owner = owner  #: a foreground ``minictr run`` waiting for it
        self.owner_start = owner_start
        self.cgroup = cgroup  #: the cgroup manager's record (minictr.kernel.cgroups.load)
        self.network = network  #: the network's record (minictr.engine.network.attach)
        self.spec = spec  #: the OCI runtime-spec config it runs
        self.image = image  #: the image's name, then the fields of container_root.image_record
        self.image_id = image_id
        self.manifest_digest = manifest_digest
        self.lowerdirs = lowerdirs
        self.upperdir = upperdir
        self.root_owner = root_owner
        self.config = config  #: the image config's run settings (images.runconfig.recorded)
        self.extra: dict[str, Any] = {} if extra is None else extra

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContainerState):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in FIELDS)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS)
        return f"ContainerState({fields})"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContainerState:
        """Read a state.json's contents (the status as :func:`recorded_status` reads it)."""
        names = set(FIELDS) - {"extra", "status"}
        known = {key: value for key, value in data.items() if key in names}
        extra = {key: value for key, value in data.items() if key not in names and key != "status"}
        return cls(**{"id": "", **known}, status=recorded_status(data), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """What state.json holds: every recorded field, the status by name, and the unknown keys as read."""
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if name == "status":
                out["status"] = value.value
            elif name != "extra" and value is not None:
                out[name] = value
        return {**out, **self.extra}

    def moved_to(self, new: Status | str) -> ContainerState:
        """A copy in status ``new``, if the move is allowed (see :func:`transition`)."""
        fields = {name: getattr(self, name) for name in FIELDS}
        return ContainerState(**{**fields, "status": transition(self.status, new, self.id, self.name)})

    def oci_state(self, bundle: str | None = None) -> dict[str, Any]:
        """The runtime-spec's state of this container, as ``runc state`` prints it.

        ``bundle`` defaults to the directory holding the spec's root (for
        ``minictr run``, the container's own directory). The pid is given
        once the container's first process exists (created, running, paused);
        annotations only when the spec has some.
        """
        spec = self.spec or {}
        root = spec.get("root", {}).get("path", "")
        state: dict[str, Any] = {
            "ociVersion": spec.get("ociVersion", OCI_VERSION),
            "id": self.id,
            "status": self.status.value,
        }
        if self.status in (Status.CREATED, Status.RUNNING, Status.PAUSED) and self.pid:
            state["pid"] = self.pid
        state["bundle"] = bundle if bundle is not None else (os.path.dirname(root) if os.path.isabs(root) else "")
        if spec.get("annotations"):
            state["annotations"] = dict(spec["annotations"])
        return state


# --- state.json on disk, and whether its processes still run -----------------------------------

_STATE_LOCK = _thread.allocate_lock()  # the network's thread and this one both add to state.json (threading: 0.5 ms)

#: The lock file in a container's directory that :func:`update_state` holds (across processes).
STATE_LOCK = "state.lock"


def update_state(directory: str, changes: dict[str, Any], via: Status | str | None = None) -> None:
    """Add ``changes`` to the container's state.json: read, check, merge, write atomically, one writer at a time.

    A ``changes["status"]`` other than the recorded one is a move of the
    state machine: checked against the status on disk (:func:`transition`)
    under the lock, so that of two commands racing the second sees what the
    first wrote; an illegal one raises :class:`StateTransitionError` and
    nothing is written. ``via`` is a status passed on the way in the same
    write (the engine records ``running`` once its spawned process, created,
    is about to start). Writing the status it already has is no move.
    A directory already removed is not made again: that is an ``OSError``.
    """
    # the thread lock for this process's threads; lockf for other processes, never held by a child forked meanwhile
    with _STATE_LOCK, locked(os.path.join(directory, STATE_LOCK), make_directory=False, this_process=True):
        state = read_state(directory)
        if "status" in changes:
            moves = [via, changes["status"]] if via is not None else [changes["status"]]
            current = recorded_status(state)
            for new in moves:
                if status_of(new) is not current:
                    current = transition(current, new, state.get("id", os.path.basename(directory)), state.get("name"))
            changes = {**changes, "status": current.value}
        write_state(directory, {**state, **changes})


def check_move(state: dict[str, Any], new: Status | str) -> Status:
    """The status of a container (``state``: its state.json) after a move to ``new``, if allowed (:func:`transition`).

    For a command's first look, before it acts; :func:`update_state` checks again as it records the move.
    """
    return transition(recorded_status(state), new, state.get("id", ""), state.get("name"))


def write_state(directory: str, state: dict[str, Any]) -> None:
    """Write ``state.json`` atomically (a reader sees the old or the new one, never half)."""
    write_json(os.path.join(directory, "state.json"), state)


def read_state(directory: str) -> dict[str, Any]:
    """The container's ``state.json``: empty when missing or torn (its writer crashed; the sweep takes it)."""
    return read_json(os.path.join(directory, "state.json"))


def alive(pid: int, start: str) -> bool:
    """True when process ``pid`` started at ``start`` still runs (a zombie has finished)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[19] == start and fields[0] not in ("Z", "X")


def start_time(pid: int) -> str:
    """A process's start time (field 22 of /proc/<pid>/stat): with the pid, it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
