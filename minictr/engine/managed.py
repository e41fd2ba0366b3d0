"""Containers with a life: created, started under a monitor, stopped, started again, removed.

A *managed* container (``run -d``, ``create``, the Python API) lives in its
directory under the state root from ``create`` until ``rm``, through the OCI
statuses ``created`` → ``running`` → ``stopped`` (and back to ``running`` by
``start`` or a restart policy). Its process is never a child of the command
that started it: :func:`start` spawns a monitor (:mod:`minictr.engine.monitor`, as
conmon is for podman) that starts the container with :func:`start_here` and
then holds its output, its log and its exit. The monitor holds
``<dir>/monitor.lock`` for its whole life: a lock that can be taken means no
monitor.

Two marker files let the commands speak to a monitor without sharing
state.json: ``stop-requested`` (``stop``: no restart policy applies) and
``removing`` (``rm -f``: the monitor removes nothing itself, ``rm`` does).

state.json keeps, besides what :mod:`minictr.engine.container` records: ``status``,
``created``, ``started_at``, ``finished_at``, ``exit_code``, ``oom_killed``,
``restart_count``, ``options`` (the RunOptions), ``command``, ``data_root``
and ``lifecycle`` (auto_remove, restart, stop_signal, stop_timeout, tty,
interactive, log_max_size, log_max_file).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.images.store import Image, ImageStore
    from minictr.engine.network.attach import Plan
    from minictr.engine.run_options import RunOptions
    from minictr.runtime.process.parent import ContainerProcess

from minictr import faults
from minictr.engine import container_dir
from minictr.engine.container_dir import container_directory, containers_dir, release_resources
from minictr.engine.logs import DEFAULT_MAX_FILE, DEFAULT_MAX_SIZE, timestamp
from minictr.errors import ContainerError, ExecError, UsageError
from minictr.runtime.state import Status, alive, check_move, read_state, refusal, start_time, update_state

STOP_REQUESTED = "stop-requested"
REMOVING = container_dir.REMOVING  # rm -f's marker (container_dir's, for a kept foreground run too)
MONITOR_LOCK = "monitor.lock"
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")


def parse_restart(text: str | None) -> dict[str, Any]:
    """``no``, ``on-failure[:N]``, ``always``, ``unless-stopped`` → ``{"Name", "MaximumRetryCount"}``."""
    name, _, count = (text or "no").partition(":")
    if name not in RESTART_POLICIES or (count and (name != "on-failure" or not count.isdigit())):
        raise UsageError(f"--restart {text!r}: choose no, on-failure[:N], always or unless-stopped")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def lifecycle_settings(
    *, auto_remove: bool = False, restart: str | None = None, stop_signal: str | None = None,
    stop_timeout: int | None = None, tty: bool = False, interactive: bool = False, log_opts: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The settings a managed container keeps in state.json, checked."""
    policy = parse_restart(restart)
    if auto_remove and policy["Name"] != "no":
        raise UsageError("conflicting options: --restart and --rm")
    if stop_signal:
        signal_number(stop_signal)
    size, files = DEFAULT_MAX_SIZE, DEFAULT_MAX_FILE
    for option in log_opts or []:
        key, _, value = option.partition("=")
        try:
            if key == "max-size":
                from minictr.engine.logs import parse_size

                size = parse_size(value)
            elif key == "max-file" and value.isdigit() and int(value) > 0:
                files = int(value)
            else:
                raise ValueError("max-size=SIZE or max-file=N")
        except ValueError as exc:
            raise UsageError(f"--log-opt {option!r}: {exc}") from exc
    return {
        "auto_remove": auto_remove, "restart": policy, "stop_signal": stop_signal, "stop_timeout": stop_timeout,
        "tty": tty, "interactive": interactive, "log_max_size": size, "log_max_file": files,
    }  # fmt: skip


def signal_number(name: str | int) -> int:
    """A signal by number or name (``TERM``, ``SIGTERM``, ``15``)."""
    import signal

    text = str(name).upper()
    try:
        return int(text) if text.isdigit() else int(getattr(signal, text if text.startswith("SIG") else f"SIG{text}"))
    except AttributeError as exc:
        raise UsageError(f"{name!r}: no such signal") from exc


# --- create ------------------------------------------------------------------------------------


def create(
    reference: str, command: list[str] | None, options: RunOptions, settings: dict[str, Any] | None = None,
    *, data_root: str | None = None, state_root: str | None = None,
) -> str:  # fmt: skip
    """Create a container of ``reference``: its directory and copy-on-write root, status ``created``; return its id.

    Nothing runs yet: :func:`start` does that, under a monitor.
    """
    from minictr.engine.container_plan import check_reachable
    from minictr.engine.container_root import get_image, image_record, image_store, prepare_root, root_layers
    from minictr.engine.container_spec import id_mappings

    steps = options.chosen_steps()
    settings = settings or lifecycle_settings()
    store = image_store(data_root)
    image = get_image(store, reference, options.platform, options.pull)
    maps = id_mappings(options) if "user" in steps else None
    owner = maps[0][0]["hostID"] if maps and os.geteuid() == 0 else 0
    if owner:  # a user namespace's root set up the container: it must reach its files
        check_reachable(owner, [containers_dir(state_root), store.root])
    with store.in_use():  # until state.json names the layers, prune must wait
        lowers = root_layers(store, image, owner)
        with container_directory(state_root, keep=True, name=options.name) as directory:
            overlay = prepare_root(directory, lowers, owner)
            record = image_record(image, lowers, overlay, owner)
            update_state(directory, {
                **record, "overlay": overlay, "status": "created", "created": timestamp(), "managed": True,
                "command": list(command or []), "options": dataclasses.asdict(options), "lifecycle": settings,
                "data_root": os.path.dirname(store.root), "restart_count": 0,
            })  # fmt: skip
    return os.path.basename(directory)


# --- find --------------------------------------------------------------------------------------


def resolve(container: str, state_root: str | None = None) -> str:
    """The directory of a container given by name, id or unique id prefix (one-line error otherwise)."""
    base = containers_dir(state_root)
    states = [s for s in (read_state(os.path.join(base, name)) for name in sorted(os.listdir(base))) if s.get("id")]
    found = [s for s in states if s.get("name") == container or s["id"] == container]
    if not found:
        found = [s for s in states if container and s["id"].startswith(container)]
    if len(found) != 1:
        raise UsageError(f"{'no such container' if not found else 'more than one container matches'}: {container!r}")
    return os.path.abspath(os.path.join(base, found[0]["id"]))


def directories(state_root: str | None = None) -> list[str]:
    """Every container directory under the state root, oldest first (by creation; a foreground run's has no time)."""
    base = os.path.abspath(containers_dir(state_root))
    created = {
        os.path.join(base, name): read_state(os.path.join(base, name)).get("created") or "" for name in os.listdir(base)
    }
    return sorted(
        (path for path in created if os.path.isfile(os.path.join(path, "state.json"))), key=lambda p: created[p]
    )


def monitor_alive(directory: str) -> bool:
    """True while a monitor holds the container's ``monitor.lock``."""
    import fcntl

    try:
        fd = os.open(os.path.join(directory, MONITOR_LOCK), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def status_of(state: dict[str, Any], directory: str) -> str:
    """``creating``, ``created``, ``running``, ``paused`` or ``stopped`` (the OCI statuses), as things really are.

    A container whose monitor died (``kill -9``) keeps running as long as its
    process does; once that is gone too it is stopped, exit status unknown.
    """
    running = bool(state.get("pid")) and alive(state["pid"], state.get("start", ""))
    if not state.get("managed"):  # run in the foreground (or detached by the API): as long as its process lives
        if not (state.get("spec") and running):
            return "creating"
        return "paused" if state.get("status") == "paused" else "running"
    status: str = state.get("status", "created")
    if status in ("running", "paused", "creating") and not running and not monitor_alive(directory):
        return "stopped"  # a restart's set-up dies with its monitor too
    return status


# --- start: the caller's half, then the monitor's ----------------------------------------------


def start(container: str, state_root: str | None = None) -> str:
    """Start a created or stopped container under a new monitor; return its id once its program runs.

    Raises :class:`ExecError` (with the exit status 126/127) when its program
    cannot be run, :class:`ContainerError` for other set-up failures.
    """
    import json

    from minictr.runtime.process.parent import _child_environment, _package_parent

    directory = resolve(container, state_root)
    state = read_state(directory)
    _check_startable(state, directory)
    if not _wait_for_monitor_exit(directory):
        raise refusal(Status.RUNNING, Status.RUNNING, "started", state["id"], state.get("name"))
    for marker in (STOP_REQUESTED, REMOVING):
        _unlink(os.path.join(directory, marker))
    update_state(directory, {"restart_count": 0})
    with open(os.path.join(directory, "monitor.log"), "ab") as errors:
        monitor = subprocess.Popen(
            [*monitor_command(heavy=True), "start", directory], cwd=_package_parent(), env=_child_environment(),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, start_new_session=True,
        )  # fmt: skip
    assert monitor.stdout is not None
    raw = monitor.stdout.read()  # until the monitor has started the container (or failed to)
    monitor.wait()  # the first of its two forks: it exits at once, the monitor is no child of ours
    try:
        report = json.loads(raw)
    except ValueError:
        raise ContainerError(
            f"the monitor of {state['id']} exited without a word (see {directory}/monitor.log)"
        ) from None
    if report.get("error"):
        cls = ExecError if report.get("step") == "exec" else ContainerError
        raise cls(report["error"], step=report.get("step", ""), errno=report.get("errno"))
    return str(state["id"])


def _check_startable(state: dict[str, Any], directory: str) -> None:
    """Refuse to start a container unless it is created or stopped (a stop its monitor did not live to record is
    recorded now).
    """
    current = Status(status_of(state, directory))
    if current is Status.PAUSED:  # the machine lets a paused container resume: that is unpause's, not start's
        raise refusal(current, Status.RUNNING, "started", state["id"], state.get("name"))
    if current is not Status.STOPPED:
        check_move(state, Status.RUNNING)
    elif state.get("status") != Status.STOPPED.value:
        update_state(directory, {"status": Status.STOPPED.value})  # running (or set up) when its monitor was killed


def _wait_for_monitor_exit(directory: str, timeout: float = 30.0) -> bool:
    """Let the monitor of a stopped container finish (it gives back the network last); False if it does not."""
    from minictr.waiting import wait_until

    return wait_until(lambda: not monitor_alive(directory), timeout)


def monitor_command(heavy: bool) -> list[str]:
    """The monitor's interpreter: with site-packages (pyroute2) to start and finish, without to watch.

    ``-E``/``-s``: the caller's PYTHON* variables and user site never change
    it; minictr is imported from the working directory, as the child does.
    """
    return [sys.executable, *(() if heavy else ("-S",)), "-s", "-E", "-m", "minictr.engine.monitor"]


def start_here(directory: str, stdio: dict[str, Any], terminal: bool = False) -> ContainerProcess:
    """In the monitor: start the container in ``directory`` with ``stdio``; return its running process.

    With ``terminal``, ``stdio["console"]`` (a :class:`~minictr.engine.console.Console`)
    receives the master of the pty the container opens from its own devpts.

    The same steps as a foreground run (spec, cgroup, network, spawn,
    connect, start), on the root made by :func:`create`. On failure what was
    made for this start is given back and the status stays as it was.
    """
    from minictr.engine.console import spawn_streams
    from minictr.engine.container_plan import plan_container
    from minictr.engine.container_root import image_store
    from minictr.engine.run_options import RunOptions
    from minictr.runtime.process.parent import spawn

    state = read_state(directory)
    options = RunOptions(**state["options"])
    store = image_store(state["data_root"])
    image = recorded_image(store, state)
    lowers, owner = state["lowerdirs"], state["root_owner"]
    overlay = {**state["overlay"], "lowerdirs": list(state["overlay"]["lowerdirs"])} if state.get("overlay") else None
    # while it starts, the monitor owns the directory (a lease of a starting container is alive); a container
    # that ran before is set up anew (stopped → creating: see minictr.runtime.state)
    again = {"status": Status.CREATING.value} if state.get("status") == Status.STOPPED.value else {}
    update_state(directory, {"pid": os.getpid(), "start": start_time(os.getpid()), **again})
    network = None
    try:
        spec, cgroup, network = plan_container(
            directory, store, image, state["command"], options, lowers, overlay, owner
        )
        spec["process"]["terminal"] = terminal
        streams, console = spawn_streams(stdio)
        process = spawn(spec, overlay=overlay, init=options.init, netlink=bool(network and network.needs_netlink),
                        cgroup=cgroup.add if cgroup else None,
                        extra=options.own_step_options(cgroup), **streams)  # fmt: skip
        try:
            if console is not None:
                console.receive()
            if network and network.needs_netlink:
                from minictr.engine.network.attach import connect

                connect(network, process)
            # running from before the program starts: its first output may be read, and acted on, at once
            update_state(directory, {
                "pid": process.pid, "start": start_time(process.pid), "spec": spec, "status": "running",
                "started_at": timestamp(), "finished_at": None, "exit_code": None, "oom_killed": False, "error": "",
            }, via=Status.CREATED)  # fmt: skip
            process.start()
            faults.point("exec")  # a test's SIGKILL of the monitor as the program starts (see minictr.faults)
        except BaseException:
            process.kill()
            raise
    except BaseException:
        _undo_start(directory, network, bool(again))
        raise
    return process


def recorded_image(store: ImageStore, state: dict[str, Any]) -> Image:
    """The image a container was created from, as its state.json names it (manifest and config from the store)."""
    from minictr.engine.images.store import Image

    manifest = store.read_json(state["manifest_digest"])
    config_digest = manifest["config"]["digest"]
    return Image(state["image"], state["manifest_digest"], manifest, config_digest, store.read_json(config_digest))


def _undo_start(directory: str, network: Plan | None, again: bool) -> None:
    """Give back what a failed start made; a container set up again is stopped again (a first start's failure
    leaves it created, as Docker does).
    """
    if network:
        try:
            network.wait()  # its thread must be done before the clean-up reads state.json
        except BaseException:
            pass
    release_resources(directory)
    if again:
        update_state(directory, {"status": Status.STOPPED.value})


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
