"""Everything a container needs before it is spawned: its volumes, its cgroup, its network, its spec.

Both a foreground :func:`minictr.engine.container.run` and a start under a
monitor (:func:`minictr.engine.managed.start_here`) plan a container through
:func:`plan_container`, so the two never drift apart; what it makes on the
host is recorded in state.json before it is made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.images.store import Image, ImageStore
    from minictr.engine.network.attach import Plan
    from minictr.engine.run_options import RunOptions
    from minictr.kernel.cgroups import Manager

from minictr import faults
from minictr.engine.container_dir import find
from minictr.engine.container_root import add_init_layer
from minictr.engine.container_spec import base_spec, container_spec, limit_spec
from minictr.errors import HostError
from minictr.runtime.state import update_state


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

        binds, extra_mounts = attach(
            directory, options.volumes, options.mounts, image, lowers, os.path.dirname(store.root), root_owner
        )
        options = dataclasses.replace(options, volumes=binds, mounts=[])
    rootfs = os.path.join(directory, "rootfs")
    limits = base_spec(image, rootfs, command, options, container_id, None)  # no user: passwd is read once, below
    cgroup = make_cgroup(directory, limits) if limit_spec(limits, options, container_id) else None
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


def make_cgroup(directory: str, spec: dict[str, Any]) -> Manager:
    """Plan the container's cgroup, record it in state.json, then create it with its limits."""
    from minictr.kernel import cgroups

    cgroup = cgroups.new(spec["linux"]["cgroupsPath"])
    update_state(directory, {"cgroup": cgroup.record()})
    cgroup.create(spec["linux"]["resources"])
    faults.point("cgroup")
    return cgroup


def check_reachable(owner: int, paths: list[str]) -> None:
    """Refuse, in one line and before anything is made, a user namespace whose root cannot reach ``paths``.

    The container's root is set up inside its user namespace, as ``owner``
    (the host uid its root is mapped to): on directories of the host's root
    the kernel grants it no override, so every directory above the state
    root and the data root must let it pass. A private (0700) directory
    above them, a temporary directory say, would otherwise stop the set-up
    half-way with ``mount(…): Permission denied``.
    """
    if not owner:
        return
    for path in paths:
        parts = os.path.abspath(path).split(os.sep)
        for end in range(1, len(parts) + 1):
            directory = os.sep.join(parts[:end]) or os.sep
            info = os.stat(directory)
            bit = stat.S_IXUSR if info.st_uid == owner else stat.S_IXGRP if info.st_gid == owner else stat.S_IXOTH
            if not info.st_mode & bit:
                raise HostError(
                    f"the container's root (uid {owner} on the host, a user namespace) cannot pass through "
                    f"{directory} (mode {stat.S_IMODE(info.st_mode):04o}): let others search it (chmod o+x), or "
                    "choose a --root and --data-root below directories every user may pass"
                )
