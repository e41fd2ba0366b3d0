"""A project's containers on the host, found by their labels, and how one replica is made.

Containers, networks and volumes carry Docker Compose's labels, so a project
is found again without its file (``down -p NAME``) and other tools read it:

    com.docker.compose.project           the project's name
    com.docker.compose.service           the service (containers)
    com.docker.compose.container-number  1, 2, … (replicas)
    com.docker.compose.config-hash       sha256 of the service's configuration: ``up`` recreates on a change
    com.docker.compose.network / .volume the key in the file (networks, volumes)

Service discovery is by network alias: every replica joins its network with
the service's name (and its ``aliases:``) as aliases, so ``db`` or ``web``
resolve on the project's network to the replicas of that service, whether the
network answers names through ``/etc/hosts`` or a DNS server.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from minictr.engine.compose.model import Project, Service

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
HASH = "com.docker.compose.config-hash"
ONEOFF = "com.docker.compose.oneoff"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"


@dataclass
class Replica:
    """One container of a project."""

    id: str
    name: str
    service: str
    number: int
    labels: dict[str, str]
    status: str  # created, running, stopped
    directory: str
    state: dict[str, Any]


def replicas(project: str, state_root: str | None = None, services: list[str] | None = None) -> list[Replica]:
    """The containers labelled with ``project`` (of ``services`` only, when given), by service and number."""
    from minictr.engine.container_view import labels_of
    from minictr.engine.managed import directories, status_of
    from minictr.runtime.state import read_state

    found = []
    for directory in directories(state_root):
        state = read_state(directory)
        labels = labels_of(state)
        if labels.get(PROJECT) != project or not state.get("managed"):
            continue
        if services and labels.get(SERVICE) not in services:
            continue
        number = int(labels.get(NUMBER, "0") or 0)
        status = status_of(state, directory)
        found.append(Replica(state["id"], state.get("name") or state["id"], labels.get(SERVICE, ""), number, labels,
                             status, directory, state))  # fmt: skip
    return sorted(found, key=lambda r: (r.service, r.number))


def config_hash(project: Project, service: Service) -> str:
    """The digest of everything that shapes a replica, but not how many there are (scaling recreates nothing)."""
    shape = dataclasses.asdict(service)
    shape.pop("replicas")
    shape["networks"] = {_network_name(project, key): aliases for key, aliases in service.networks.items()}
    shape["volumes"] = [_mount_text(project, mount) for mount in service.volumes]
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def container_name(project: Project, service: Service, number: int) -> str:
    """``container_name:``, else Compose's ``<project>-<service>-<n>``."""
    return service.container_name or f"{project.name}-{service.name}-{number}"


def _network_name(project: Project, key: str) -> str:
    return project.network(key).name


def _mount_text(project: Project, mount: dict[str, Any]) -> str:
    """A mount as ``minictr run -v`` takes it."""
    if mount["type"] == "volume" and mount["source"]:
        source = f"{project.volumes[mount['source']].name}:"
    elif mount["type"] == "bind":
        source = f"{mount['source']}:"
    else:
        source = ""
    return f"{source}{mount['target']}{':ro' if mount['read_only'] else ''}"


def run_options(project: Project, service: Service, number: int, digest: str) -> tuple[Any, dict[str, Any], list[str]]:
    """What :func:`minictr.engine.managed.create` needs for replica ``number``: options, settings, command."""
    from minictr.engine.managed import lifecycle_settings
    from minictr.engine.run_options import RunOptions

    network, aliases = next(iter(service.networks.items()))
    labels = {
        **service.labels, PROJECT: project.name, SERVICE: service.name, NUMBER: str(number),
        HASH: config_hash(project, service), ONEOFF: "False", WORKING_DIR: project.directory,
        CONFIG_FILES: project.file, "com.docker.compose.image": digest,
    }  # fmt: skip
    entrypoint = service.entrypoint
    options = RunOptions(
        env=[f"{key}={value}" for key, value in service.environment.items()], workdir=service.working_dir,
        entrypoint=entrypoint[0] if entrypoint else ("" if entrypoint == [] else None), hostname=service.hostname,
        init=service.init, network=_network_name(project, network), name=container_name(project, service, number),
        network_aliases=[service.name, *aliases], publish=list(service.ports), user=service.user,
        volumes=[_mount_text(project, m) for m in service.volumes if m["type"] != "tmpfs"],
        tmpfs=[m["target"] for m in service.volumes if m["type"] == "tmpfs"],
        labels=labels,
    )  # fmt: skip
    _health_options(options, service.healthcheck)
    settings = lifecycle_settings(
        restart=service.restart, stop_signal=service.stop_signal,
        stop_timeout=None if service.stop_grace_period is None else max(1, round(service.stop_grace_period)),
    )  # fmt: skip
    command = [*(entrypoint or [])[1:], *(service.command or [])]
    return options, settings, command


def _health_options(options: Any, health: dict[str, Any] | None) -> None:
    """A ``healthcheck:`` as the engine's HealthConfig override (Docker's: durations in nanoseconds)."""
    if health:
        seconds = ("Interval", "Timeout", "StartPeriod")
        options.healthcheck = {key: int(value * 1e9) if key in seconds else value for key, value in health.items()}


def same_image_digest(replica: Replica, digest: str) -> bool:
    """Whether a replica runs the image the service's reference names now."""
    return replica.state.get("manifest_digest") == digest
