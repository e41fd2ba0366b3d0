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
``remove_stale``) are imported here from the modules that define them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any

    from minictr.engine.images.store import Image, ImageStore
    from minictr.engine.network.attach import Plan
    from minictr.kernel.cgroups import Manager
    from minictr.kernel.security.options import Security

from minictr import faults
from minictr.engine.container_dir import (
    container_directory,
    containers_dir,
    kept_stopped,
    record_kept,
    remove_stale,
)
from minictr.engine.container_root import (
    add_init_layer,
    copy_tree,
    get_image,
    image_record,
    image_store,
    prepare_root,
    root_layers,
    shifted_rootfs,
    unpacked_rootfs,
)  # fmt: skip
from minictr.errors import ContainerError, MinictrError, UsageError
from minictr.runtime.process.parent import ContainerProcess, spawn
from minictr.runtime.spec import (
    DEFAULT_NAMESPACES,
    DEFAULT_PATH,
    PROC_MOUNT,
    bind_volume,
    default_spec,
    id_mapping,
    isolated_spec,
    parse_id_map,
)
from minictr.runtime.state import read_state, start_time, update_state

ISOLATIONS = ("full", "chroot")
USERNS_MODES = ("host", "private")

#: Where ``--userns private`` maps the container's ids on the host (as podman's default range).
PRIVATE_ID_BASE = 100000
PRIVATE_ID_COUNT = 65536


@dataclass
class RunOptions:
    """What ``minictr run`` was asked for, beyond the image and command."""

    isolation: str = "full"
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    entrypoint: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    init: bool = False
    network: str | None = None  # none, host, container:ID, bridge or a network's name; default: bridge (none rootless)
    name: str | None = None
    network_aliases: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)  # --dns IP[:PORT]: where a user network's DNS server forwards
    labels: dict[str, str] = field(default_factory=dict)  # -l/--label KEY=VALUE, merged over the image's (com.docker.compose.service: a DNS name)
    healthcheck: dict[str, Any] | None = None  # --health-*: overrides of the image's Healthcheck (minictr.engine.health)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    userns: str = "host"
    uidmap: list[str] = field(default_factory=list)
    gidmap: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)  # --mount type=volume|bind|tmpfs,source=…,target=…[,readonly]
    read_only: bool = False
    timens: bool = False
    detach: bool = False
    user: str | None = None
    platform: str | None = None
    pull: str = "missing"
    # resource limits, as Docker spells them (strings like "512m" or numbers): see minictr.kernel.cgroups.resources
    memory: str | int | None = None
    memory_reservation: str | int | None = None
    memory_swap: str | int | None = None
    cpus: str | float | None = None
    cpu_quota: str | int | None = None
    cpu_period: str | int | None = None
    cpu_shares: str | int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: str | int | None = None
    blkio_weight: str | int | None = None
    device_read_bps: list[str] = field(default_factory=list)
    device_write_bps: list[str] = field(default_factory=list)
    device_read_iops: list[str] = field(default_factory=list)
    device_write_iops: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    cgroup_parent: str | None = None
    # security, as Docker spells it: see minictr.kernel.security.options
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    security_opt: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    ulimits: list[str] = field(default_factory=list)
    oom_score_adj: int | None = None
    sig_proxy: bool = True  #: a foreground run passes SIGINT, SIGTERM and SIGHUP on to its container (--sig-proxy)

    def security(self) -> Security:
        """The security flags, parsed (UsageError when malformed)."""
        from minictr.kernel.security.options import parse_security_opts

        return parse_security_opts(self.security_opt, self.privileged, self.cap_add, self.cap_drop)
    keep_upper: str | None = None  # build steps: move the container's upper directory here when it exits
    # the recipe's steps this container is made with (minictr.runtime.process.recipe; None: all), and a learner's
    # functions carrying some out ({"pivot_into": {"name": ..., "source": ...}}): the notebooks' runtime grows
    steps: list[str] | None = None
    own_steps: dict[str, dict[str, str]] = field(default_factory=dict)

    def chosen_steps(self) -> tuple[str, ...]:
        """The recipe's steps for this container: ``steps``, or chroot alone for ``--isolation chroot``, or all."""
        from minictr.runtime.process import recipe

        if self.isolation not in ISOLATIONS:
            raise UsageError(f"--isolation {self.isolation!r}: choose one of {', '.join(ISOLATIONS)}")
        if self.isolation == "chroot" and self.steps is not None and set(self.steps) != {"chroot"}:
            raise UsageError("--isolation chroot is the chroot step alone: give it or --steps, not both")
        try:
            chosen = recipe.choose(["chroot"] if self.isolation == "chroot" else self.steps)
            recipe.check_own(self.own_steps, chosen)
        except ValueError as exc:
            raise UsageError(f"--steps: {exc}") from exc
        if self.steps is not None:
            self._check_flags(chosen)
        return chosen

    def _check_flags(self, steps: tuple[str, ...]) -> None:
        """A flag whose step the container does not have is an error, never silently ignored."""
        needs = {
            "network": ("--network/--publish",
                        self.network not in (None, "host") or bool(self.publish or self.publish_all)),
            # without the security step every capability stays, so --privileged and --cap-add are granted already
            "security": ("--cap-drop/--security-opt", bool(self.cap_drop or self.security_opt)),
            "mount": ("-v/--mount/--read-only", bool(self.volumes or self.mounts or self.read_only)),
        }
        for step, (flags, given) in needs.items():
            if given and step not in steps:
                raise UsageError(f"{flags} need the {step} step (--steps)")

    def resource_flags(self) -> dict[str, Any]:
        """The resource options only, by their keyword names (for :func:`minictr.kernel.cgroups.resources.from_flags`)."""
        return {name: getattr(self, name) for name in RESOURCE_FLAGS}


#: The RunOptions fields that are resource limits.
RESOURCE_FLAGS = (
    "memory", "memory_reservation", "memory_swap", "cpus", "cpu_quota", "cpu_period", "cpu_shares", "cpuset_cpus",
    "cpuset_mems", "pids_limit", "blkio_weight", "device_read_bps", "device_write_bps", "device_read_iops",
    "device_write_iops", "devices",
)  # fmt: skip


def command_for(config: dict[str, Any], command: list[str], entrypoint: str | None) -> list[str]:
    """Docker's rules: ``--entrypoint`` replaces Entrypoint (and drops Cmd); arguments replace Cmd."""
    image_entrypoint = list(config.get("Entrypoint") or [])
    image_cmd = list(config.get("Cmd") or [])
    if entrypoint is not None:
        return [entrypoint, *command] if entrypoint else list(command)
    return image_entrypoint + (list(command) if command else image_cmd)


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Docker's ``-e``: NAME=VALUE sets, a bare NAME copies this process's value (if it has one)."""
    env = list(base)
    for item in overrides:
        if "=" not in item:
            if item not in os.environ:
                continue
            item = f"{item}={os.environ[item]}"
        env = [e for e in env if e.split("=", 1)[0] != item.split("=", 1)[0]] + [item]
    return env


def id_mappings(options: RunOptions) -> tuple[list[dict[str, int]], list[dict[str, int]]] | None:
    """The uid and gid maps the options ask for, or None for no user namespace.

    Not root: the caller becomes root inside (rootless), whatever was asked.
    """
    try:
        uids = [parse_id_map(m) for m in options.uidmap]
        gids = [parse_id_map(m) for m in options.gidmap]
    except ValueError as exc:
        raise UsageError(f"--uidmap/--gidmap: {exc}") from exc
    if options.userns not in USERNS_MODES:
        raise UsageError(f"--userns {options.userns!r}: choose one of {', '.join(USERNS_MODES)}")
    if os.geteuid() != 0:
        if uids or gids or options.userns == "private":
            raise UsageError(
                f"rootless: only your own uid can be mapped (root inside is uid {os.geteuid()} outside); "
                "--uidmap, --gidmap and --userns private need root"
            )
        return [id_mapping(0, os.geteuid(), 1)], [id_mapping(0, os.getegid(), 1)]
    if uids or gids:
        return uids or gids, gids or uids
    if options.userns == "private":
        private = [id_mapping(0, PRIVATE_ID_BASE, PRIVATE_ID_COUNT)]
        return private, private
    return None


def _step_maps(options: RunOptions, steps: tuple[str, ...]) -> tuple[list[dict[str, int]], list[dict[str, int]]] | None:
    """:func:`id_mappings`, when the user step is in the recipe; without it, asking for a user namespace is an error."""
    if "user" in steps:
        return id_mappings(options)
    if options.userns == "private" or options.uidmap or options.gidmap:
        raise UsageError("--userns private, --uidmap and --gidmap need the user step (--steps)")
    return None


def container_spec(
    image: Image, rootfs: str, command: list[str], options: RunOptions, container_id: str = "",
    lowers: list[str] | None = None, network: Plan | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The OCI runtime-spec config for one container of ``image``.

    ``lowers`` are its image's directories (to look users up in /etc/passwd);
    ``network`` adds the /etc files and, for ``container:ID``, a joined namespace.
    """
    spec = _container_spec(image, rootfs, command, options, container_id, network)
    user = options.user if options.user is not None else image.config.get("config", {}).get("User", "")
    env = spec["process"]["env"]
    has_home = any(item.startswith("HOME=") for item in env)
    if user or not has_home:  # both come from the image's /etc/passwd, read once
        from minictr.engine.images.layers import read_file
        from minictr.engine.images.runconfig import resolve_user

        uid, gid, extra, home = resolve_user(user, lambda path: read_file(lowers or [], path))
        if user:
            spec["process"]["user"] = {"uid": uid, "gid": gid, **({"additionalGids": extra} if extra else {})}
        if not has_home:
            env.append(f"HOME={home}")  # as Docker: from passwd, unless the image's Env or -e set it
    return spec


def _container_spec(
    image: Image, rootfs: str, command: list[str], options: RunOptions, container_id: str, network: Plan | None
) -> dict[str, Any]:
    config = image.config.get("config", {})
    args = command_for(config, command, options.entrypoint)
    if not args:
        raise UsageError(f"no command: {image.name} has no Cmd or Entrypoint, so give one after the image")
    env = merge_env(list(config.get("Env") or [DEFAULT_PATH]), options.env)
    cwd = options.workdir or config.get("WorkingDir") or "/"
    steps = options.chosen_steps()
    if steps == ("chroot",):
        return default_spec(rootfs, args, env=env, cwd=cwd, mounts=[PROC_MOUNT])
    host_network = "network" not in steps or bool(network and network.mode == "host")
    kinds = [k for k in DEFAULT_NAMESPACES if k in steps and not (k == "network" and host_network)]
    maps = _step_maps(options, steps)
    if maps:
        kinds.insert(0, "user")
    if options.timens:
        kinds.append("time")
    try:
        volumes = [bind_volume(v) for v in options.volumes]
    except ValueError as exc:
        raise UsageError(f"-v/--volume: {exc}") from exc
    from minictr.kernel.namespaces import uptime_offsets

    uts = "uts" in kinds
    spec = isolated_spec(
        rootfs, args, namespaces=kinds, env=env, cwd=cwd,
        hostname=(options.hostname or container_id[:12] or "minictr") if uts else None,
        uid_mappings=maps[0] if maps else None, gid_mappings=maps[1] if maps else None,
        time_offsets=uptime_offsets() if options.timens else None, volumes=volumes, readonly=options.read_only,
    )  # fmt: skip
    if "mount" not in kinds:
        spec["mounts"].insert(0, PROC_MOUNT)  # as chroot alone has it: the host's processes
    if options.domainname:
        spec["domainname"] = options.domainname
    from minictr.kernel.security import options as security

    if "security" in steps:
        security.apply(spec, options.security())
    security.apply_limits(spec, options.tmpfs, options.ulimits, options.oom_score_adj)
    if network:
        spec["mounts"].extend(network.mounts)
        for entry in spec["linux"]["namespaces"]:
            if entry["type"] == "network" and network.namespace_path:
                entry["path"] = network.namespace_path  # --network container:ID joins its namespace
    return spec


def limit_spec(spec: dict[str, Any], options: RunOptions, container_id: str) -> bool:
    """Add ``linux.resources``, ``linux.cgroupsPath`` and ``linux.devices`` from the options; True if it has a cgroup.

    As root every fully isolated container gets a cgroup (accounting, the
    default devices allowlist), as with Docker; a chroot gets one only for
    limits. Rootless, minictr cannot create cgroups, so a limit is an error.
    """
    limited = any(getattr(options, name) not in (None, "", []) for name in RESOURCE_FLAGS)
    if os.geteuid() != 0:
        if limited or options.cgroup_parent:
            raise UsageError("resource limits need root: rootless containers get no cgroup of their own")
        return False
    from minictr.kernel import cgroups
    from minictr.kernel.cgroups.resources import from_flags

    host = cgroups.layout()
    if host["layout"] == "none":
        if limited:
            raise UsageError("resource limits need cgroups, and none is mounted on this host (see minictr doctor)")
        return False
    steps = options.chosen_steps()
    if "cgroup" not in steps and not limited:
        return False  # before the cgroup step (and with chroot isolation), a cgroup only for limits
    device_rules = "cgroup" in steps and "mount" in steps and not options.privileged  # privileged: every device
    resources, nodes = from_flags(**options.resource_flags(), device_rules=device_rules,
                                  swap_accounted=cgroups.swap_accounted(host))
    parent = options.cgroup_parent
    spec["linux"]["cgroupsPath"] = f"{parent.rstrip('/')}/{container_id}" if parent else cgroups.default_path(container_id)
    spec["linux"]["resources"] = resources
    if nodes:
        spec["linux"]["devices"] = nodes
    return True



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
    replaces the caller's streams in the foreground; with ``terminal`` they
    are a pty's slave (see :mod:`minictr.engine.terminal`).

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
    steps = options.chosen_steps()
    notes = _security_notes(options)
    store = image_store(data_root)
    image = get_image(store, reference, options.platform, options.pull) if isinstance(reference, str) else reference
    maps = id_mappings(options) if "user" in steps else None
    root_owner = maps[0][0]["hostID"] if maps and os.geteuid() == 0 else 0
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
                io = {"stdio": stdio, "terminal": terminal}
                finished = _start(directory, store, image, spec, overlay, options, capture, record, root_owner, network,
                                  cgroup, io)  # fmt: skip
                if options.keep_upper and overlay and not options.detach:
                    if not read_state(directory).get("upperdir"):  # it ran in a copy: its changes cannot be told apart
                        raise ContainerError("overlayfs refused this data root, so the step's changes cannot be kept")
                    os.rename(overlay["upperdir"], options.keep_upper)
                finished.note = "; ".join([*notes, finished.note] if finished.note else notes)
                if keep is not None and not options.detach:
                    kept_stopped(directory, finished.exit_code, finished.oom_killed)
                return finished
            except BaseException:
                if network:
                    with contextlib.suppress(BaseException):
                        network.wait()  # its thread must be done before the clean-up reads state.json
                raise
    finally:
        holding.close()


def _security_notes(options: RunOptions) -> list[str]:
    """Warnings about the security flags (privileged; capabilities the host lacks); none without the security step."""
    if "security" not in options.chosen_steps():
        return []
    from minictr.kernel.security.options import notes

    return notes(options.security(), user_namespace=id_mappings(options) is not None)


def plan_container(
    directory: str, store: ImageStore, image: Image, command: list[str], options: RunOptions, lowers: list[str],
    overlay: dict[str, Any] | None, root_owner: int,
) -> tuple[dict[str, Any], Manager | None, Plan | None]:  # fmt: skip
    """Everything a container needs before it is spawned, in one place: volumes, cgroup, network, spec.

    Both a foreground :func:`run` and a start under a monitor
    (:func:`minictr.engine.managed.start_here`) come through here, so the two never
    drift apart. Volumes are recorded in state.json and made (a restart finds
    its anonymous ones again); the cgroup is recorded and made with its
    limits; the network's work starts (see :mod:`minictr.engine.network.attach`);
    then the spec is built, once, and the init layer added. On failure the
    network's thread is waited for, so that clean-up reads a settled state.
    """
    container_id = os.path.basename(directory)
    extra_mounts: list[dict[str, Any]] = []
    steps = options.chosen_steps()
    if "mount" in steps and (options.volumes or options.mounts or image.config.get("config", {}).get("Volumes")):
        from minictr.engine.volumes import attach

        binds, extra_mounts = attach(directory, options.volumes, options.mounts, image, lowers, os.path.dirname(store.root))
        options = dataclasses.replace(options, volumes=binds, mounts=[])
    rootfs = os.path.join(directory, "rootfs")
    limits = _container_spec(image, rootfs, command, options, container_id, None)  # no user: passwd is read once, below
    cgroup = _make_cgroup(directory, limits) if limit_spec(limits, options, container_id) else None
    network = network_plan(directory, options, image.config, root_owner) if "network" in steps else None
    try:
        spec = container_spec(image, rootfs, command, options, container_id, lowers, network)
        spec["linux"].update({k: v for k, v in limits["linux"].items() if k != "namespaces"})
        spec["mounts"].extend(extra_mounts)
        if overlay:
            add_init_layer(directory, overlay, spec, lowers, root_owner)
    except BaseException:
        if network:
            with contextlib.suppress(BaseException):
                network.wait()  # its thread must be done before the clean-up reads state.json
        raise
    return spec, cgroup, network


def network_plan(directory: str, options: RunOptions, image_config: dict[str, Any], owner: int) -> Plan:
    """Check the network options and start the container's network work (see :mod:`minictr.engine.network.attach`)."""
    from minictr.engine.network.attach import plan
    from minictr.engine.network.dns import SERVICE_LABEL

    mode = options.network or ("bridge" if os.geteuid() == 0 else "none")  # rootless: no bridge without root
    hostname = options.hostname or os.path.basename(directory)[:12]
    joined = None
    if mode.startswith("container:") and mode != "container:":
        joined = find(mode.split(":", 1)[1], os.path.dirname(os.path.dirname(directory)))  # its state root
    return plan(
        directory, mode, hostname=hostname, name=options.name, aliases=options.network_aliases,
        publish=options.publish, publish_all=options.publish_all, image_config=image_config, owner=owner,
        joined=joined, dns=options.dns, service=options.labels.get(SERVICE_LABEL),
    )  # fmt: skip


def _start(
    directory: str, store: ImageStore, image: Image, spec: dict[str, Any], overlay: dict[str, Any] | None,
    options: RunOptions, capture: bool, record: dict[str, Any], root_owner: int, network: Plan | None,
    cgroup: Manager | None, io: dict[str, Any] | None = None,
) -> Finished:  # fmt: skip
    """Spawn the container described by ``spec`` in ``directory``, wire its network, start it; wait unless detached."""
    container_id = os.path.basename(directory)
    netlink = bool(network and network.needs_netlink)
    place = cgroup.add if cgroup else None
    own = {"own_steps": options.own_steps} if options.own_steps else None  # a learner's functions, as source
    io = io or {}
    log: IO[bytes] | None = None  # a detached container's log: the container keeps its own copy, ours is closed below
    if io.get("stdio") is not None:
        streams: dict[str, Any] = dict(io["stdio"], terminal=io.get("terminal", False))
    elif options.detach:
        log = open(os.path.join(directory, "container.log"), "ab")  # noqa: SIM115 - closed once spawned
        streams = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": subprocess.STDOUT}
    else:
        pipe = subprocess.PIPE if capture else None
        streams = {"stdout": pipe, "stderr": pipe}
    try:
        process = spawn(spec, overlay=overlay, die_with_parent=not options.detach, init=options.init, netlink=netlink,
                        cgroup=place, extra=own, **streams)
    except ContainerError as exc:
        if overlay is None or exc.step != "mount_overlay":
            raise
        # overlayfs refused this upper directory (e.g. it is itself on overlayfs): copy a flattened image instead
        os.rmdir(os.path.join(directory, "rootfs"))
        flat = unpacked_rootfs(store, image)
        copy_tree(shifted_rootfs(flat, root_owner) if root_owner else flat, os.path.join(directory, "rootfs"))
        record = {**record, "upperdir": ""}
        process = spawn(spec, die_with_parent=not options.detach, init=options.init, netlink=netlink, cgroup=place,
                        extra=own, **streams)
    except MinictrError:
        if cgroup and cgroup.oom_kills():
            raise ContainerError("the OOM killer killed the container while it was being set up: "
                                 "its memory limit (-m) is too low") from None
        raise
    finally:
        if log is not None:
            log.close()
    if cgroup:
        record = {**record, "cgroup": cgroup.record()}
    if network and network.needs_netlink:
        from minictr.engine.network.attach import connect

        try:
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
    with _forward_signals(process) if options.sig_proxy else contextlib.nullcontext():
        process.start()
        faults.point("exec")
        # recorded like a detached one, so that exec and kill reach it too; and with its owner (us),
        # so that no sweep takes the directory (and the cgroup's OOM count) before we are done with it
        owner = {"owner": os.getpid(), "owner_start": start_time(os.getpid())}
        _record_started(directory, process, spec, {**record, **owner})
        out, err, code = process.communicate()
    oom_killed = bool(cgroup and cgroup.oom_kills())
    return Finished(code, out, err, container_id, process.note, oom_killed)


def _make_cgroup(directory: str, spec: dict[str, Any]) -> Manager:
    """Plan the container's cgroup, record it in state.json, then create it with its limits."""
    from minictr.kernel import cgroups

    cgroup = cgroups.new(spec["linux"]["cgroupsPath"])
    update_state(directory, {"cgroup": cgroup.record()})
    cgroup.create(spec["linux"]["resources"])
    faults.point("cgroup")
    return cgroup


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
    update_state(directory, {**record, "pid": process.pid, "start": start_time(process.pid), "spec": spec})


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


def exec_in(
    container: str,
    command: list[str],
    *,
    env: list[str] | None = None,
    workdir: str | None = None,
    state_root: str | None = None,
    capture: bool = False,
    stdio: dict[str, Any] | None = None,
    terminal: bool = False,
    user: str | None = None,
    detach: bool = False,
) -> Finished:
    """Run ``command`` inside the running container ``container`` (``minictr exec``).

    ``stdio`` and ``terminal`` as for :func:`run` (``exec -i``/``-t``).
    ``user`` (``-u NAME|UID[:GROUP|GID]``) is looked up in the container's own
    /etc/passwd and /etc/group. ``detach`` (``-d``) returns once the program
    runs; its output is discarded, as Docker does.
    """
    state = find(container, state_root)
    spec = state["spec"]
    process_spec = spec.get("process", {})
    ids = process_spec.get("user", {})
    uid, gid, extra = ids.get("uid", 0), ids.get("gid", 0), ids.get("additionalGids", [])
    if user:
        from minictr.engine.images.runconfig import resolve_user
        from minictr.engine.safe_tree import read_inside

        uid, gid, extra, _home = resolve_user(user, lambda path: read_inside(f"/proc/{state['pid']}/root", path))
    exec_spec = default_spec(
        f"/proc/{state['pid']}/root", command, env=merge_env(process_spec.get("env", []), env or []),
        cwd=workdir or process_spec.get("cwd", "/"), uid=uid, gid=gid,
    )  # fmt: skip
    if extra:
        exec_spec["process"]["user"]["additionalGids"] = extra
    from minictr.kernel.security.options import for_exec

    for_exec(spec, exec_spec)
    pipe = subprocess.PIPE if capture else None
    place = None
    if state.get("cgroup") and os.geteuid() == 0:
        from minictr.kernel import cgroups

        place = cgroups.load(state["cgroup"]).add  # an exec'd program is limited like the rest
    streams = dict(stdio) if stdio is not None else {"stdout": pipe, "stderr": pipe}
    if detach:
        streams = dict.fromkeys(("stdin", "stdout", "stderr"), subprocess.DEVNULL)
    exec_spec["process"]["terminal"] = terminal and not detach
    process = spawn(exec_spec, **streams, die_with_parent=not detach, join=state["pid"], cgroup=place,
                    terminal=terminal and not detach)  # fmt: skip
    if detach:
        process.start()
        return Finished(0, id=state["id"])
    with _forward_signals(process):
        process.start()
        out, err, code = process.communicate()
    return Finished(code, out, err, state["id"])


def kill(container: str, sig: int = signal.SIGKILL, state_root: str | None = None) -> None:
    """Send ``sig`` to a running container's PID 1 (``minictr kill``)."""
    state = find(container, state_root)
    try:
        os.kill(state["pid"], sig)
    except ProcessLookupError:
        pass


@contextlib.contextmanager
def _forward_signals(process: ContainerProcess) -> Iterator[None]:
    """Pass SIGINT, SIGTERM and SIGHUP on to the container, as ``docker run`` does (--sig-proxy)."""
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    try:
        previous = {sig: signal.signal(sig, lambda sig, _frame: process.kill(sig)) for sig in forwarded}
    except ValueError:  # not the main thread (a notebook's worker): nothing to forward
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def commit(container: str, reference: str, *, data_root: str | None = None, state_root: str | None = None,
           message: str = "", author: str = "") -> Image:  # fmt: skip
    """``minictr commit CONTAINER IMAGE``: the running container's changes as a new image."""
    from minictr.engine.images.commit import commit_upper
    from minictr.engine.images.store import Image

    state = find(container, state_root)
    upper = state.get("upperdir", "")
    if not upper:
        raise UsageError(f"commit: container {state['id']} has no overlay upper directory (overlayfs was unavailable), so its changes cannot be told apart")
    store = image_store(data_root)
    manifest = store.read_json(state["manifest_digest"])
    config = store.read_json(manifest["config"]["digest"])
    base = Image(state.get("image", ""), state["manifest_digest"], manifest, manifest["config"]["digest"], config)
    return commit_upper(store, base, upper, reference, shift=int(state.get("root_owner", 0)), message=message, author=author)
