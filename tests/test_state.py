"""The container state type: the runtime-spec's statuses, their moves, and state.json read and written whole."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import pytest

from conftest import remove_container
from minictr.engine.container import run
from minictr.engine.container_dir import container_directory
from minictr.engine.run_options import RunOptions
from minictr.errors import MinictrError, StateTransitionError, UsageError
from minictr.runtime.spec import OCI_VERSION, isolated_spec
from minictr.runtime.state import TRANSITIONS, ContainerState, Status, read_state, transition, update_state

ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
FORBIDDEN = [(a, b) for a, b in itertools.product(Status, Status) if b not in TRANSITIONS[a]]


def test_the_lifecycle_of_the_runtime_spec() -> None:
    assert sorted((a.value, b.value) for a, b in ALLOWED) == [
        ("created", "paused"), ("created", "running"), ("created", "stopped"), ("creating", "created"),
        ("creating", "stopped"), ("paused", "created"), ("paused", "running"), ("paused", "stopped"),
        ("running", "paused"), ("running", "stopped"),
        ("stopped", "creating"),  # the engine's start again (Docker's), beyond the spec
    ]  # fmt: skip
    assert [s.value for s in Status] == ["creating", "created", "running", "stopped", "paused"]


@pytest.mark.parametrize(("current", "new"), ALLOWED, ids=[f"{a.value}->{b.value}" for a, b in ALLOWED])
def test_allowed_moves(current: Status, new: Status) -> None:
    assert transition(current, new) is new
    assert transition(current.value, new.value, "abc") is new  # by name, as state.json spells them


@pytest.mark.parametrize(("current", "new"), FORBIDDEN, ids=[f"{a.value}->{b.value}" for a, b in FORBIDDEN])
def test_every_other_move_is_refused(current: Status, new: Status) -> None:
    with pytest.raises(StateTransitionError) as caught:
        transition(current, new, "abc123")
    assert str(caught.value).startswith(f"container abc123 is {current.value}: it cannot be ")
    assert (caught.value.current, caught.value.wanted) == (current.value, new.value)
    assert isinstance(caught.value, UsageError)


@pytest.mark.parametrize(("current", "new", "message"), [
    ("stopped", "running", "container abc123 is stopped: it cannot be started"),
    ("running", "running", "container abc123 is running: it cannot be started"),
    ("created", "created", "container abc123 is created: it cannot be created"),
    ("running", "creating", "container abc123 is running: it cannot be created"),
    ("creating", "running", "container abc123 is creating: it cannot be started"),
    ("stopped", "stopped", "container abc123 is stopped: it cannot be stopped"),
    ("paused", "paused", "container abc123 is paused: it cannot be paused"),
    ("stopped", "paused", "container abc123 is stopped: it cannot be paused"),
])  # fmt: skip
def test_messages_say_what_the_container_is(current: str, new: str, message: str) -> None:
    with pytest.raises(StateTransitionError, match=f"^{message}$"):
        transition(current, new, "abc123")


def test_without_an_id_the_message_still_reads() -> None:
    with pytest.raises(StateTransitionError, match=r"^the container is stopped: it cannot be started$"):
        transition(Status.STOPPED, Status.RUNNING)
    with pytest.raises(StateTransitionError, match=r"^container web \(3f2a9c01b2de\) is stopped: it cannot be paused$"):
        transition(Status.STOPPED, Status.PAUSED, "3f2a9c01b2de", "web")


def test_unknown_status_names_are_errors() -> None:
    with pytest.raises(MinictrError, match="unknown container status 'sleeping'"):
        transition("sleeping", "running")
    with pytest.raises(MinictrError, match="unknown container status 'zombie'"):
        ContainerState.from_dict({"id": "abc", "status": "zombie"})


def test_moved_to_walks_the_lifecycle() -> None:
    state = ContainerState(id="abc123", pid=42)
    state = state.moved_to(Status.CREATED).moved_to("running").moved_to(Status.STOPPED)
    assert (state.status, state.pid) == (Status.STOPPED, 42)
    with pytest.raises(StateTransitionError, match="container abc123 is stopped: it cannot be started"):
        state.moved_to(Status.RUNNING)


def test_unknown_keys_are_kept_and_written_back() -> None:
    data = {"id": "abc", "status": "created", "pid": 7, "start": "99", "later": {"feature": [1, 2]}, "bundle": "/b"}
    state = ContainerState.from_dict(data)
    assert state.extra == {"later": {"feature": [1, 2]}, "bundle": "/b"}
    assert state.to_dict() == data
    assert ContainerState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_a_state_json_from_before_statuses_gets_the_implied_one() -> None:
    creating = {"id": "abc", "pid": 7, "start": "99", "name": "web"}
    assert ContainerState.from_dict(creating).status is Status.CREATING
    assert ContainerState.from_dict(creating).to_dict() == {**creating, "status": "creating"}
    running = {**creating, "spec": isolated_spec("/r", ["sh"]), "network": {"mode": "bridge", "address": "10.1.0.2"}}
    assert ContainerState.from_dict(running).status is Status.RUNNING
    assert ContainerState.from_dict(running).network == {"mode": "bridge", "address": "10.1.0.2"}


def test_the_directory_minictr_makes_reads_as_creating(state_root: str) -> None:
    """The state.json container_directory and update_state write today, read and written back whole."""
    with container_directory(state_root, name="web") as directory:
        update_state(directory, {"image": "busybox", "lowerdirs": ["/l"], "upperdir": "", "root_owner": 0})
        data = read_state(directory)
        state = ContainerState.from_dict(data)
        assert (state.id, state.name, state.pid, state.status) == (
            os.path.basename(directory),
            "web",
            os.getpid(),
            Status.CREATING,
        )
        assert state.extra == {}
        assert state.to_dict() == {**data, "status": "creating"}
        assert "pid" not in state.oci_state()  # minictr's own pid is not the container's


def test_update_state_walks_the_machine_on_disk(state_root: str) -> None:
    """Every move the engine records, as it records them: through update_state, checked against state.json."""
    with container_directory(state_root, name="web") as directory:
        assert read_state(directory)["status"] == "creating"
        for status in ("created", "running", "paused", "running", "stopped", "creating"):
            update_state(directory, {"status": status})
            assert read_state(directory)["status"] == status
        update_state(directory, {"status": "running", "pid": 7}, via="created")  # spawned, then started at once
        assert (read_state(directory)["status"], read_state(directory)["pid"]) == ("running", 7)
        update_state(directory, {"status": "running", "exit_code": None})  # the status it has: no move
        update_state(directory, {"status": "stopped", "exit_code": 3})
        assert (read_state(directory)["status"], read_state(directory)["exit_code"]) == ("stopped", 3)


def test_an_illegal_move_is_refused_naming_the_container_and_nothing_is_written(state_root: str) -> None:
    with container_directory(state_root, name="web") as directory:
        update_state(directory, {"status": "stopped", "exit_code": 0})
        before = read_state(directory)
        message = f"^container web \\({before['id']}\\) is stopped: it cannot be paused$"
        with pytest.raises(StateTransitionError, match=message):
            update_state(directory, {"status": "paused", "exit_code": 9})
        with pytest.raises(StateTransitionError, match="is stopped: it cannot be started"):
            update_state(directory, {"status": "running"})
        with pytest.raises(StateTransitionError, match="is creating: it cannot be paused"):
            update_state(directory, {"status": "creating"})  # allowed: stopped → creating (start again) ...
            update_state(directory, {"status": "running"}, via="paused")  # ... but not through paused
        assert read_state(directory) == {**before, "status": "creating"}


def test_a_removed_directory_is_not_made_again_by_a_late_writer(state_root: str) -> None:
    with container_directory(state_root) as directory:
        pass  # removed on leaving
    with pytest.raises(FileNotFoundError):
        update_state(directory, {"status": "stopped"})
    assert not os.path.exists(directory)


_WRITER = """
import sys
from minictr.errors import StateTransitionError
from minictr.runtime.state import update_state
directory, me = sys.argv[1], sys.argv[2]
for n in range(25):
    update_state(directory, {f"{me}-{n}": n})
try:
    update_state(directory, {"status": "running", "started_by": me}, via="created")
    print("started")
except StateTransitionError as exc:
    print(exc)
"""


def test_processes_racing_lose_no_write_and_only_one_starts_the_container(state_root: str) -> None:
    """Six commands at once: every key each adds is kept, and of six starts of one created container one wins."""
    with container_directory(state_root, name="web") as directory:
        update_state(directory, {"status": "created"})
        env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
        command = [sys.executable, "-c", _WRITER, directory]
        writers = [subprocess.Popen([*command, f"w{i}"], stdout=subprocess.PIPE, text=True, env=env) for i in range(6)]
        said = [writer.communicate()[0].strip() for writer in writers]
        assert [writer.returncode for writer in writers] == [0] * 6
        state = read_state(directory)
        assert all(state[f"w{i}-{n}"] == n for i in range(6) for n in range(25))
        assert said.count("started") == 1 and state["status"] == "running"
        winner = said.index("started")
        assert state["started_by"] == f"w{winner}"
        losers = [line for line in said if line != "started"]
        assert losers == [f"container web ({state['id']}) is running: it cannot be created"] * 5


@pytest.mark.root
def test_a_running_containers_state_round_trips(data_root: str, state_root: str) -> None:
    """A detached container's real state.json: every key it holds is a field, nothing is lost."""
    started = run("busybox", ["sleep", "90"], RunOptions(network="none", detach=True), data_root=data_root,
                  state_root=state_root)  # fmt: skip
    try:
        directory = os.path.join(state_root, "containers", started.id)
        data = read_state(directory)
        state = ContainerState.from_dict(data)
        assert state.extra == {}, "state.json holds keys ContainerState does not know"
        assert state.status is Status.RUNNING
        assert state.to_dict() == {**data, "status": "running"}
        assert ContainerState.from_dict(state.to_dict()) == state
        assert state.oci_state() == {"ociVersion": OCI_VERSION, "id": started.id, "status": "running",
                                     "pid": data["pid"], "bundle": directory}  # fmt: skip
        assert os.path.exists(f"/proc/{state.pid}")
    finally:
        remove_container(started.id, data_root=data_root, state_root=state_root)


def test_oci_state_fields() -> None:
    spec = isolated_spec("/containers/abc/rootfs", ["sh"])
    spec["annotations"] = {"org.example.role": "web"}
    state = ContainerState(id="abc", status=Status.CREATED, pid=1234, spec=spec)
    assert state.oci_state() == {"ociVersion": OCI_VERSION, "id": "abc", "status": "created", "pid": 1234,
                                 "bundle": "/containers/abc", "annotations": {"org.example.role": "web"}}  # fmt: skip
    stopped = state.moved_to("stopped").oci_state(bundle="/bundles/abc")
    assert "pid" not in stopped and stopped["bundle"] == "/bundles/abc" and stopped["status"] == "stopped"
