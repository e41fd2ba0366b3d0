"""An image's config and a user's :class:`~minictr.engine.run_options.RunOptions` -> one OCI runtime-spec.

The command (Entrypoint + Cmd, as Docker joins them), the environment, the user
and its home from the image's /etc/passwd, the id maps of ``--userns private``,
the steps of the recipe chosen (notebooks), the security flags, and the cgroup
limits (:func:`limit_spec`). :func:`minictr.engine.container.plan_container` is
where a start calls it, once.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.images.store import Image
    from minictr.engine.network.attach import Plan

from minictr.engine.run_options import (
    PRIVATE_ID_BASE,
    PRIVATE_ID_COUNT,
    RESOURCE_FLAGS,
    USERNS_MODES,
    RunOptions,
)
from minictr.errors import UsageError
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
    spec = base_spec(image, rootfs, command, options, container_id, network)
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


def base_spec(
    image: Image, rootfs: str, command: list[str], options: RunOptions, container_id: str, network: Plan | None
) -> dict[str, Any]:
    """The spec of :func:`container_spec` without the user's uid and home (which read the image's /etc/passwd)."""
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
    resources, nodes = from_flags(
        **options.resource_flags(), device_rules=device_rules, swap_accounted=cgroups.swap_accounted(host)
    )
    parent = options.cgroup_parent
    spec["linux"]["cgroupsPath"] = (
        f"{parent.rstrip('/')}/{container_id}" if parent else cgroups.default_path(container_id)
    )
    spec["linux"]["resources"] = resources
    if nodes:
        spec["linux"]["devices"] = nodes
    return True


def security_notes(options: RunOptions) -> list[str]:
    """Warnings about the security flags (privileged; capabilities the host lacks); none without the security step."""
    if "security" not in options.chosen_steps():
        return []
    from minictr.kernel.security.options import notes

    return notes(options.security(), user_namespace=id_mappings(options) is not None)
