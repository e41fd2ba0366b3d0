"""Running an image as a container: the high-level layer, as Docker sits above runc.

:func:`run` resolves the image and prepares the container's copy-on-write
root (:mod:`minictr.engine.container_root`), gives it a directory of its own on the
host (:mod:`minictr.engine.container_dir`), turns the image config and the user's
options into an OCI runtime-spec config, and hands that to the runtime
(:mod:`minictr.runtime.process`). :func:`exec_in` runs another program inside a
running container; :func:`kill` signals one; :func:`update` changes its limits.

A container run as root also gets a cgroup of its own (limits, accounting,
the OOM killer's verdict): recorded in state.json before it is made, removed
with the directory (:func:`minictr.engine.container_dir.release_directory`).

The names notebooks and tests reach through this module (``image_store``,
``get_image``, ``unpacked_rootfs``, ``containers_dir``, ``read_state``,
``remove_stale``, ``find``) are imported here from the modules that define them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    from minictr.engine.console import Console
    from minictr.engine.images.store import Image, ImageStore
    from minictr.engine.network.attach import Plan
    from minictr.kernel.cgroups import Manager

from minictr import faults
from minictr.engine.container_dir import (
    container_directory,
    kept_stopped,
    record_kept,
)
from minictr.engine.container_dir import containers_dir as containers_dir  # these three for notebooks, tests and
from minictr.engine.container_dir import find as find  # the tutorial (see the docstring): container.find(...)
from minictr.engine.container_dir import remove_stale as remove_stale
from minictr.engine.container_plan import check_reachable, plan_container
from minictr.engine.container_root import (
    copy_tree,
    get_image,
    image_record,
    image_store,
    prepare_root,
    root_layers,
    shifted_rootfs,
    unpacked_rootfs,
)  # fmt: skip
from minictr.engine.container_spec import id_mappings, security_notes
from minictr.engine.run_options import RunOptions
from minictr.errors import ContainerError, MinictrError, UsageError
from minictr.runtime.process.parent import ContainerProcess, spawn, start_interpreter
from minictr.runtime.state import read_state, start_time, update_state


@dataclass
class Finished:
    """What :func:`run` returns: the exit status and captured output (or the id of a detached container)."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    id: str = ""
    note: str = ""
    oom_killed: bool = False  #: the OOM killer killed a process of the container (its memory limit was reached)


def run(
    reference: str | Image,
    command: list[str] | None = None,
    options: RunOptions | None = None,
    *,
    data_root: str | None = None,
    state_root: str | None = None,
    capture: bool = False,
    stdio: dict[str, Any] | None = None,
    terminal: bool = False,
    keep: dict[str, Any] | None = None,
    on_directory: Callable[[str], None] | None = None,
) -> Finished:
    """Run ``command`` (or the image's default) in a new container of ``reference``.

    ``stdio`` (``stdin``/``stdout``/``stderr`` for :func:`subprocess.Popen`)
    replaces the caller's streams in the foreground; with ``terminal`` its
    ``console`` (:class:`minictr.engine.console.Console`) receives the master
    of the pty the container opens from its own devpts (see :mod:`minictr.engine.terminal`).

    In the foreground it waits and returns the exit status (and the output,
    when ``capture``; otherwise the container shares this terminal); SIGINT,
    SIGTERM and SIGHUP sent to this process are passed on. With
    ``options.detach`` it returns once the program runs, with the id.
    ``reference`` may be an :class:`Image` already resolved (a build step's).
    ``keep`` (the lifecycle settings of :func:`minictr.engine.managed.lifecycle_settings`)
    keeps a foreground container after its exit, as Docker does without
    ``--rm``: stopped, with its status, root and log, until ``rm``; ``start``
    runs it again under a monitor. ``on_directory`` is called with the
    container's directory before its program starts (to open its log).
    """
    options = options or RunOptions()
    # in the foreground the container's stdio is known now: its interpreter loads while the rest is prepared
    ahead = _start_ahead(stdio) if stdio is not None and not options.detach else None
    steps = options.chosen_steps()
    notes = security_notes(options)
    store = image_store(data_root)
    image = get_image(store, reference, options.platform, options.pull) if isinstance(reference, str) else reference
    maps = id_mappings(options) if "user" in steps else None
    root_owner = maps[0][0]["hostID"] if maps and os.geteuid() == 0 else 0
    if root_owner:  # a user namespace's root set up the container: it must reach its files
        check_reachable(root_owner, [containers_dir(state_root), store.root])
    holding = contextlib.ExitStack()
    holding.enter_context(store.in_use())  # until state.json names the layers, prune must wait
    try:
        lowers = root_layers(store, image, root_owner)
        with container_directory(state_root, keep=options.detach or keep is not None, name=options.name) as directory:
            overlay = prepare_root(directory, lowers, root_owner)
            record = image_record(image, lowers, overlay, root_owner)
            update_state(directory, record)
            holding.close()
            if keep is not None:
                record_kept(directory, store.root, command or [], options, overlay, keep)
            if on_directory is not None:
                on_directory(directory)
            spec, cgroup, network = plan_container(directory, store, image, command or [], options, lowers, overlay,
                                                   root_owner)  # fmt: skip
            try:
                if stdio is not None:
                    spec["process"]["terminal"] = terminal
                io = {"stdio": stdio, "terminal": terminal, "process": ahead}
                finished = _start(directory, store, image, spec, overlay, options, capture, record, root_owner, network,
                                  cgroup, io)  # fmt: skip
                return _after_start(directory, finished, options, overlay, notes, keep is not None)
            except BaseException:
                if network:
                    with contextlib.suppress(BaseException):
                        network.wait()  # its thread must be done before the clean-up reads state.json
                raise
    finally:
        holding.close()
        if ahead is not None:
            ahead.kill()  # unused, it waits for nothing; used, the container has exited and been reaped


def _after_start(directory: str, finished: Finished, options: RunOptions, overlay: dict[str, Any] | None,
                 notes: list[str], kept: bool) -> Finished:  # fmt: skip
    """What a foreground run does once its program ended: keep a build step's changes, add the notes, record a kept
    exit.
    """
    if options.keep_upper and overlay and not options.detach:
        if not read_state(directory).get("upperdir"):  # it ran in a copy: its changes cannot be told apart
            raise ContainerError("overlayfs refused this data root, so the step's changes cannot be kept")
        os.rename(overlay["upperdir"], options.keep_upper)
    finished.note = "; ".join([*notes, finished.note] if finished.note else notes)
    if kept and not options.detach:
        kept_stopped(directory, finished.exit_code, finished.oom_killed)
    return finished


def _start_ahead(stdio: dict[str, Any]) -> ContainerProcess:
    """The container's first interpreter, started before its config: it inherits the stdio and any console socket."""
    from minictr.engine.console import spawn_streams

    streams, _ = spawn_streams(stdio)
    console = streams.pop("console", None)
    return start_interpreter(**streams, pass_fds=(console,) if console is not None else ())


def _streams(
    directory: str, detach: bool, capture: bool, io: dict[str, Any]
) -> tuple[dict[str, Any], IO[bytes] | None, Console | None]:
    """The container's stdio for :func:`spawn`, a detached container's log file for the caller to close, and the
    console of a container with a terminal (see :mod:`minictr.engine.console`).

    The caller's streams (and console) when given; a detached container
    writes to its log (the container keeps its own copy of the descriptor);
    otherwise this terminal, or pipes when the output is captured.
    """
    if io.get("stdio") is not None:
        from minictr.engine.console import spawn_streams

        streams, console = spawn_streams(io["stdio"])
        return streams, None, console
    if detach:
        log = open(os.path.join(directory, "container.log"), "ab")  # noqa: SIM115 - closed once spawned
        return {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT}, log, None
    pipe = subprocess.PIPE if capture else None
    return {"stdout": pipe, "stderr": pipe}, None, None


def _start(
    directory: str, store: ImageStore, image: Image, spec: dict[str, Any], overlay: dict[str, Any] | None,
    options: RunOptions, capture: bool, record: dict[str, Any], root_owner: int, network: Plan | None,
    cgroup: Manager | None, io: dict[str, Any] | None = None,
) -> Finished:  # fmt: skip
    """Spawn the container described by ``spec`` in ``directory``, wire its network, start it; wait unless detached."""
    container_id = os.path.basename(directory)
    streams, log, console = _streams(directory, options.detach, capture, io or {})
    try:
        process, copied = _spawn(directory, store, image, spec, overlay, options, root_owner, network, cgroup,
                                 {**streams, "process": (io or {}).get("process")})  # fmt: skip
    finally:
        if log is not None:
            log.close()
    if copied:
        record = {**record, "upperdir": ""}
    if cgroup:
        record = {**record, "cgroup": cgroup.record()}
    try:
        if console is not None:
            console.receive()  # its pty's master, before its program starts
        if network and network.needs_netlink:
            from minictr.engine.network.attach import connect

            connect(network, process)
    except BaseException:
        process.kill()
        raise
    if options.detach:
        # recorded first: were minictr killed while the program starts, the container would run on, findable
        _record_started(directory, process, spec, record)
        process.start()
        faults.point("exec")
        return Finished(0, id=container_id, note=process.note)
    # recorded like a detached one, so that exec and kill reach it too; and with its owner (us), so that no
    # sweep takes the directory (and the cgroup's OOM count) before we are done with it. Recorded before the
    # program starts: it may answer its first input before we are scheduled again, and must be findable then
    owner = {"owner": os.getpid(), "owner_start": start_time(os.getpid())}
    _record_started(directory, process, spec, {**record, **owner})
    from minictr.engine.console import forward_signals

    proxy = options.sig_proxy and not (io or {}).get("terminal")  # with -t, ^C and the rest go through its pty
    with forward_signals(process.kill, proxy):
        process.start()
        faults.point("exec")
        out, err, code = process.communicate()
    oom_killed = bool(cgroup and cgroup.oom_kills())
    return Finished(code, out, err, container_id, process.note, oom_killed)


def _spawn(
    directory: str, store: ImageStore, image: Image, spec: dict[str, Any], overlay: dict[str, Any] | None,
    options: RunOptions, root_owner: int, network: Plan | None, cgroup: Manager | None, streams: dict[str, Any],
) -> tuple[ContainerProcess, bool]:  # fmt: skip
    """Spawn the container's process (waiting for ``start``); and whether its root had to be a copy.

    Where overlayfs refuses the upper directory (it is itself on overlayfs,
    say) the image is copied, flattened, into the root instead, and spawned
    again. A set-up the OOM killer ended says so.
    """
    given: dict[str, Any] = {
        "die_with_parent": not options.detach, "init": options.init, "netlink": bool(network and network.needs_netlink),
        "cgroup": cgroup.add if cgroup else None, "extra": options.own_step_options(cgroup),  # a learner's, as source
    }  # fmt: skip
    try:
        try:
            return spawn(spec, overlay=overlay, **given, **streams), False
        except ContainerError as exc:
            if overlay is None or exc.step != "mount_overlay":
                raise
        os.rmdir(os.path.join(directory, "rootfs"))
        flat = unpacked_rootfs(store, image)
        copy_tree(shifted_rootfs(flat, root_owner) if root_owner else flat, os.path.join(directory, "rootfs"))
        streams = {key: value for key, value in streams.items() if key != "process"}  # the first one was used
        return spawn(spec, **given, **streams), True
    except MinictrError:
        if cgroup and cgroup.oom_kills():
            raise ContainerError(
                "the OOM killer killed the container while it was being set up: its memory limit (-m) is too low"
            ) from None
        raise


def cgroup_of(container: str, state_root: str | None = None) -> Manager:
    """The cgroup manager of a running container (for stats, a monitor, ``update``)."""
    from minictr.kernel import cgroups

    state = find(container, state_root)
    if not state.get("cgroup"):
        raise UsageError(f"container {container!r} has no cgroup (rootless, or chroot isolation without limits)")
    return cgroups.load(state["cgroup"])


def update(container: str, options: RunOptions, state_root: str | None = None) -> None:
    """Change a running container's limits (``minictr update``): only the options given are written."""
    from minictr.kernel import cgroups
    from minictr.kernel.cgroups.resources import from_flags

    resources, _ = from_flags(**options.resource_flags(), device_rules=False, swap_accounted=cgroups.swap_accounted())
    cgroup_of(container, state_root).update(resources)


def _record_started(directory: str, process: ContainerProcess, spec: dict[str, Any], record: dict[str, Any]) -> None:
    """state.json once the program runs: its PID 1 now owns the directory (the network entry stays)."""
    update_state(directory, {**record, "pid": process.pid, "start": start_time(process.pid), "spec": spec,
                             "status": "running"}, via="created")  # fmt: skip


def kill(container: str, sig: int = signal.SIGKILL, state_root: str | None = None) -> None:
    """Send ``sig`` to a running container's PID 1 (``minictr kill``)."""
    state = find(container, state_root)
    try:
        os.kill(state["pid"], sig)
    except ProcessLookupError:
        pass


def commit(container: str, reference: str, *, data_root: str | None = None, state_root: str | None = None,
           message: str = "", author: str = "") -> Image:  # fmt: skip
    """``minictr commit CONTAINER IMAGE``: the running container's changes as a new image."""
    from minictr.engine.images.commit import commit_upper
    from minictr.engine.images.store import Image

    state = find(container, state_root)
    upper = state.get("upperdir", "")
    if not upper:
        raise UsageError(
            f"commit: container {state['id']} has no overlay upper directory (overlayfs was unavailable), so its "
            "changes cannot be told apart"
        )
    store = image_store(data_root)
    manifest = store.read_json(state["manifest_digest"])
    config = store.read_json(manifest["config"]["digest"])
    base = Image(state.get("image", ""), state["manifest_digest"], manifest, manifest["config"]["digest"], config)
    return commit_upper(
        store, base, upper, reference, shift=int(state.get("root_owner", 0)), message=message, author=author
    )
