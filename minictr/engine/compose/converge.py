"""``up`` and ``down``: bring the host to what the compose file says, changing only what differs.

``up`` makes the project's networks and volumes (labelled, see
:mod:`minictr.engine.compose.replicas`), builds or pulls images, then goes through
the services in dependency order. For each it wants ``replicas`` containers
numbered 1..N: a replica whose config hash and image are still those of the
file is kept (started if it was stopped), one that differs is recreated, a
missing one is created, and numbers above N are removed. Before a service
starts, the services it depends on must be started, healthy, or finished
successfully, as its ``depends_on`` conditions say.

``down`` needs only the project's name: it removes every container, then
network, labelled with it, and with ``volumes`` its volumes too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from minictr.engine.compose import replicas as r
from minictr.engine.compose.model import Project, Service
from minictr.errors import ComposeError

Say = Callable[[str], None]
#: How long ``depends_on`` waits for a service to become healthy or to finish.
DEPENDENCY_TIMEOUT = float(os.environ.get("MINICTR_COMPOSE_WAIT", "300"))


def up(
    project: Project, *, data_root: str | None = None, state_root: str | None = None, build: bool = False,
    scale: dict[str, int] | None = None, services: list[str] | None = None, say: Say = print,
) -> list[r.Replica]:  # fmt: skip
    """Bring the project (or ``services`` and what they need) up; return its replicas as they are now."""
    scale = scale or {}
    for name in scale:
        if name not in project.services:
            raise ComposeError(f"--scale: no service {name!r}")
    chosen = project.ordered(services)
    for service in chosen:
        _check_ports(service, scale.get(service.name, service.replicas))
    ensure_networks(project, state_root, say)
    ensure_volumes(project, data_root, say)
    for service in chosen:
        digest = ensure_image(project, service, build=build, data_root=data_root, state_root=state_root, say=say)
        _wait_dependencies(project, service, state_root, say)
        converge(project, service, scale.get(service.name, service.replicas), digest, data_root, state_root, say)
    orphans = sorted({x.service for x in r.replicas(project.name, state_root)} - set(project.services))
    if orphans:
        say(f"warning: containers of services no longer in the file: {', '.join(orphans)} (down removes them)")
    return r.replicas(project.name, state_root)


def _check_ports(service: Service, count: int) -> None:
    """A fixed host port can be published once: refuse it for several replicas before anything starts."""
    for index, port in enumerate(service.ports):
        parts = port.split("/")[0].split(":")
        if count > 1 and len(parts) > 1 and parts[-2]:
            raise ComposeError(
                f"services.{service.name}.ports[{index}]: host port {parts[-2]} cannot be published by {count} "
                "replicas (publish the container port alone, or put a load balancer in front)"
            )


def ensure_networks(project: Project, state_root: str | None, say: Say) -> None:
    """The project's networks (``default`` when a service uses it), created with Compose's labels if missing."""
    from minictr import paths
    from minictr.engine.network.manage import create
    from minictr.engine.network.store import NetworkStore

    root = state_root or paths.state_root()
    store = NetworkStore(root)
    wanted = {key for service in project.services.values() for key in service.networks}
    for key in sorted(wanted):
        resource = project.network(key)
        if store.load(resource.name):
            continue
        if resource.external:
            raise ComposeError(f"networks.{key}: external network {resource.name!r} not found")
        create(root, resource.name, resource.subnet, None, {**resource.labels, r.PROJECT: project.name, r.NETWORK: key})
        say(f"Network {resource.name}  Created")


def ensure_volumes(project: Project, data_root: str | None, say: Say) -> None:
    """The project's named volumes, created with Compose's labels if missing."""
    from minictr.engine import volumes

    existing = {v["Name"] for v in volumes.listing(data_root=data_root)}
    for key, resource in project.volumes.items():
        if resource.name in existing:
            continue
        if resource.external:
            raise ComposeError(f"volumes.{key}: external volume {resource.name!r} not found")
        volumes.create(
            resource.name, labels={**resource.labels, r.PROJECT: project.name, r.VOLUME: key}, data_root=data_root
        )
        say(f"Volume {resource.name}  Created")


def ensure_image(project: Project, service: Service, *, build: bool, data_root: str | None, state_root: str | None,
                 say: Say) -> str:  # fmt: skip
    """The manifest digest of the service's image: built when asked or missing (``build:``), else pulled if missing."""
    from minictr.engine.container_root import get_image, image_store
    from minictr.errors import ImageNotFound

    store = image_store(data_root)
    reference = project.image_of(service)
    if service.build:
        try:
            if not build:
                return get_image(store, reference, None, "never").manifest_digest
        except ImageNotFound:
            pass
        return build_service(project, service, data_root=data_root, state_root=state_root, say=say)
    return get_image(store, reference, None, "missing").manifest_digest


def build_service(
    project: Project, service: Service, *, data_root: str | None, state_root: str | None, say: Say
) -> str:
    """``minictr build`` of a service's ``build:``, tagged with its image name; the manifest digest."""
    from minictr.engine.build import BuildOptions, build

    assert service.build is not None
    say(f"Service {service.name}  Building")
    options = BuildOptions(tags=[project.image_of(service)], build_args=dict(service.build.args),
                           dockerfile=os.path.join(service.build.context, service.build.dockerfile)
                           if service.build.dockerfile else None)  # fmt: skip
    image = build(service.build.context, options, data_root=data_root, state_root=state_root, progress=say)
    say(f"Service {service.name}  Built")
    return image.manifest_digest


def converge(project: Project, service: Service, count: int, digest: str, data_root: str | None,
             state_root: str | None, say: Say) -> None:  # fmt: skip
    """Make the service's replicas 1..count match the file; remove the ones above."""
    from minictr.engine.managed import create, start

    wanted = r.config_hash(project, service)
    current = {x.number: x for x in r.replicas(project.name, state_root, [service.name])}
    for number in range(1, count + 1):
        replica = current.get(number)
        if replica and replica.labels.get(r.HASH) == wanted and r.same_image_digest(replica, digest):
            if replica.status != "running":
                start(replica.id, state_root)
                say(f"Container {replica.name}  Started")
            else:
                say(f"Container {replica.name}  Running")
            continue
        if replica:
            remove_replica(replica, state_root)
            say(f"Container {replica.name}  Recreated")
        options, settings, command = r.run_options(project, service, number, digest)
        container = create(
            project.image_of(service), command, options, settings, data_root=data_root, state_root=state_root
        )
        start(container, state_root)
        say(f"Container {options.name}  Started")
    for number in sorted(n for n in current if n > count):
        remove_replica(current[number], state_root)
        say(f"Container {current[number].name}  Removed")


def remove_replica(replica: r.Replica, state_root: str | None) -> None:
    """Stop (its stop signal, then SIGKILL after its grace period) and remove one container."""
    from minictr.engine.lifecycle import remove, stop

    if replica.status == "running":
        stop(replica.id, None, state_root)
    remove(replica.id, True, state_root)


def _wait_dependencies(project: Project, service: Service, state_root: str | None, say: Say) -> None:
    """Wait until each ``depends_on`` condition holds (``service_started`` holds once ``up`` started it)."""
    for name, condition in service.depends_on.items():
        where = f"services.{service.name}.depends_on.{name}"
        if condition == "service_healthy":
            _wait_healthy(name, where, r.replicas(project.name, state_root, [name]), state_root)
            say(f"Container {name}  Healthy")
        elif condition == "service_completed_successfully":
            deadline = time.monotonic() + DEPENDENCY_TIMEOUT
            while not _completed(r.replicas(project.name, state_root, [name]), where):
                if time.monotonic() > deadline:
                    raise ComposeError(f"{where}: {name} still running after {DEPENDENCY_TIMEOUT:.0f} s")
                time.sleep(0.2)
            say(f"Container {name}  Exited")


def _wait_healthy(name: str, where: str, found: list[r.Replica], state_root: str | None) -> None:
    """Every replica of ``name`` healthy, as its healthcheck says (:func:`minictr.engine.health.wait_healthy`)."""
    from minictr.engine.health import wait_healthy
    from minictr.errors import MinictrError

    if not found:
        raise ComposeError(f"{where}: service {name} has no container to wait for")
    for replica in found:
        try:
            wait_healthy(replica.id, DEPENDENCY_TIMEOUT, state_root)
        except MinictrError as exc:
            raise ComposeError(f"{where}: {exc}") from exc


def _completed(found: list[r.Replica], where: str) -> bool:
    """Whether every replica has exited (0; another status is an error, as Compose makes it)."""
    for replica in found:
        if replica.status == "stopped" and replica.state.get("exit_code"):
            raise ComposeError(f"{where}: {replica.name} exited with {replica.state['exit_code']}")
    return all(replica.status == "stopped" for replica in found)


#: ``down --rmi``: ``local`` removes the images the project built under its own names, ``all`` every service's.
RMI_MODES = ("local", "all")


def down(project: str, *, volumes: bool = False, rmi: str | None = None, file: Project | None = None,
         data_root: str | None = None, state_root: str | None = None, say: Say = print) -> None:  # fmt: skip
    """Remove the project's containers and networks (and, with ``volumes``, its volumes), found by their labels.

    ``rmi`` (:data:`RMI_MODES`) removes the images too, as ``docker compose
    down --rmi`` does: those of the services in ``file`` (the project as
    read, when there is a file) and those its containers ran.
    """
    from minictr import paths
    from minictr.engine import volumes as volume_store
    from minictr.engine.network.manage import remove
    from minictr.engine.network.store import NetworkStore

    if rmi is not None and rmi not in RMI_MODES:
        raise ComposeError(f"--rmi {rmi!r}: choose one of {', '.join(RMI_MODES)}")
    found = r.replicas(project, state_root)
    images = _images_to_remove(project, rmi, file, found) if rmi else []
    for replica in reversed(found):
        remove_replica(replica, state_root)
        say(f"Container {replica.name}  Removed")
    root = state_root or paths.state_root()
    for network in NetworkStore(root).all():
        if network.labels.get(r.PROJECT) == project:
            remove(root, network.name)
            say(f"Network {network.name}  Removed")
    if volumes:
        for volume in volume_store.listing(data_root=data_root):
            if (volume.get("Labels") or {}).get(r.PROJECT) == project:
                volume_store.remove(volume["Name"], data_root=data_root, state_root=state_root)
                say(f"Volume {volume['Name']}  Removed")
    _remove_images(images, data_root, root, say)


def _images_to_remove(project: str, rmi: str, file: Project | None, found: list[r.Replica]) -> list[str]:
    """``local``: the images a build made under the project's name (``<project>-<service>``); ``all``: every one."""
    from minictr.engine.images.store import normalize_reference

    wanted: set[str] = set()
    if file is not None:
        services = [s for s in file.services.values() if rmi == "all" or not s.image]
        wanted.update(normalize_reference(file.image_of(service)) for service in services)
    for replica in found:  # without a file, the containers say which service ran which image
        image = normalize_reference(replica.state.get("image") or "")
        if image and (rmi == "all" or image == normalize_reference(f"{project}-{replica.service}")):
            wanted.add(image)
    return sorted(wanted)


def _remove_images(images: list[str], data_root: str | None, state_root: str, say: Say) -> None:
    """Untag each image and remove what only it needed; one the store no longer has is passed over, one that
    another container uses is kept (with a warning), as ``rmi`` without ``-f`` would.
    """
    from minictr.engine.container_root import image_store
    from minictr.engine.images.prune import image_users, remove_image
    from minictr.errors import ImageNotFound

    store = image_store(data_root)
    users = image_users(state_root)
    for name in images:
        try:
            image = store.get(name)
        except ImageNotFound:
            continue
        if image.id in users:  # another container (not the project's: those are gone) would lose its image
            say(f"minictr: warning: image {name} is kept: container {users[image.id][:12]} uses it")
            continue
        remove_image(store, name, state_root)
        say(f"Image {name}  Removed")


def scale_of(text: list[str]) -> dict[str, int]:
    """``--scale SERVICE=N`` flags as a mapping."""
    found: dict[str, int] = {}
    for item in text:
        name, equals, number = item.partition("=")
        if not equals or not number.isdigit():
            raise ComposeError(f"--scale {item!r}: expected SERVICE=N")
        found[name] = int(number)
    return found
