"""A compose file read into a project: the Compose specification's common subset, checked.

    project = load("compose.yaml")                 # or load(path, name="shop")
    project.services["web"].replicas, project.warnings

Every value is checked where it is read, and a wrong one is one
:class:`~minictr.errors.ComposeError` whose message starts with its path in
the file (``services.web.ports[0]: ...``). A key outside the supported subset
is not an error: it is a warning naming it (``services.web.privileged: not
supported, ignored``), as Compose itself warns about what it does not know.
Variables (``${TAG:-1}``, ``$$`` for a dollar) are taken from the environment,
then from ``.env`` beside the file, before anything is read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from minictr.engine.compose import fields as f
from minictr.errors import ComposeError

TOP_KEYS = {"services", "networks", "volumes", "name", "version"}
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes", "networks",
    "depends_on", "healthcheck", "restart", "user", "working_dir", "deploy", "labels", "hostname", "init",
    "stop_signal", "stop_grace_period", "container_name",
}  # fmt: skip
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass
class Build:
    """``build:``: where the Dockerfile and its context are, and the build arguments."""

    context: str
    dockerfile: str | None = None
    args: dict[str, str] = field(default_factory=dict)


@dataclass
class Service:
    """One service as the file says, values normalised (lists of words, absolute paths)."""

    name: str
    image: str | None = None
    build: Build | None = None
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)  # {"type", "source", "target", "read_only"}
    networks: dict[str, list[str]] = field(default_factory=dict)  # network -> aliases
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    healthcheck: dict[str, Any] | None = None
    restart: str = "no"
    user: str | None = None
    working_dir: str | None = None
    replicas: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    init: bool = False
    stop_signal: str | None = None
    stop_grace_period: float | None = None
    container_name: str | None = None


@dataclass
class Resource:
    """A top-level network or volume: its name on the host, and whether the project owns it."""

    key: str
    name: str
    external: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    subnet: str | None = None


@dataclass
class Project:
    """A compose file read and checked."""

    name: str
    directory: str
    file: str
    services: dict[str, Service]
    networks: dict[str, Resource]
    volumes: dict[str, Resource]
    warnings: list[str] = field(default_factory=list)

    def image_of(self, service: Service) -> str:
        """The image a service runs: ``image:``, else the one its build makes (``<project>-<service>``)."""
        return service.image or f"{self.name}-{service.name}"

    def network(self, key: str) -> Resource:
        """A network by its key; ``default`` is the project's own unless the file declares it."""
        return self.networks.get(key) or Resource(key, f"{self.name}_{key}")

    def ordered(self, names: list[str] | None = None) -> list[Service]:
        """The services (or ``names`` and what they depend on), each after its dependencies."""
        done: list[str] = []

        def visit(name: str) -> None:
            if name not in done:
                for dependency in self.services[name].depends_on:
                    visit(dependency)
                done.append(name)

        for name in names or list(self.services):
            if name not in self.services:
                raise ComposeError(f"no such service: {name!r}")
            visit(name)
        return [self.services[name] for name in done]


def find_file(directory: str) -> str:
    """The compose file of ``directory``, by the names Compose looks for."""
    for name in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    raise ComposeError(f"no compose.yaml in {directory} (use -f FILE)")


def project_name(text: str) -> str:
    """Compose's normalisation of a directory name: lower case, letters, digits, '-' and '_' only."""
    name = re.sub(r"[^a-z0-9_-]", "", text.lower())
    if not PROJECT_NAME.match(name):
        raise ComposeError(f"project name {text!r}: use lower-case letters, digits, '-' and '_' (-p NAME)")
    return name


def load(path: str, name: str | None = None, environ: dict[str, str] | None = None) -> Project:
    """Read and check the compose file at ``path``.

    ``name`` is the project (default: the file's ``name:``, else its directory's name).
    """
    import yaml

    path = os.path.abspath(path)
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ComposeError(f"{path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ComposeError(f"{os.path.basename(path)}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    return parse(data, path, name, environ)


def parse(data: Any, path: str, name: str | None = None, environ: dict[str, str] | None = None) -> Project:
    """Check a compose file's content already read (``data``) as if it were the file at ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    if not isinstance(data, dict):
        raise ComposeError(f"{os.path.basename(path)}: the top level must be a mapping")
    variables = {**read_env_file(os.path.join(directory, ".env"), required=False), **(environ or os.environ)}
    data = f.interpolate(data, variables, "")
    warnings = ["version: obsolete, ignored"] if "version" in data else []
    warnings += [f"{key}: not supported, ignored" for key in _unknown(data, TOP_KEYS)]
    chosen = name or f.string(data.get("name") or os.path.basename(directory), "name")
    networks = _resources(data.get("networks"), "networks", project_name(chosen), warnings)
    volumes = _resources(data.get("volumes"), "volumes", project_name(chosen), warnings)
    project = Project(project_name(chosen), directory, path, {}, networks, volumes, warnings)
    services = f.mapping(data.get("services"), "services")
    if not services:
        raise ComposeError("services: at least one service is needed")
    for key, body in services.items():
        project.services[key] = _service(project, str(key), f.mapping(body, f"services.{key}"))
    _check_references(project)
    return project


def _unknown(body: dict[str, Any], known: set[str]) -> list[str]:
    """Keys outside ``known``, sorted; ``x-`` keys are the specification's extensions, never warned about."""
    return sorted((str(key) for key in set(body) - known if not str(key).startswith("x-")), key=str)


def _resources(value: Any, kind: str, project: str, warnings: list[str]) -> dict[str, Resource]:
    """Top-level ``networks:`` or ``volumes:``; the project's names are ``<project>_<key>``."""
    known = {"external", "name", "labels", "driver"} | ({"ipam"} if kind == "networks" else set())
    found: dict[str, Resource] = {}
    for key, body in f.mapping(value, kind).items():
        where = f"{kind}.{key}"
        body = f.mapping(body, where)
        warnings.extend(f"{where}.{extra}: not supported, ignored" for extra in sorted(set(body) - known, key=str))
        driver = body.get("driver")
        if driver not in (None, "bridge" if kind == "networks" else "local"):
            raise ComposeError(
                f"{where}.driver: {driver!r} is not supported (only {'bridge' if kind == 'networks' else 'local'})"
            )
        external = f.boolean(body.get("external", False), f"{where}.external")
        name = f.string(body.get("name") or (key if external else f"{project}_{key}"), f"{where}.name")
        subnet = _subnet(body.get("ipam"), f"{where}.ipam") if kind == "networks" else None
        found[str(key)] = Resource(str(key), name, external, f.labels(body.get("labels"), f"{where}.labels"), subnet)
    return found


def _subnet(ipam: Any, where: str) -> str | None:
    """The first ``ipam.config[].subnet``, the one thing of IPAM a bridge network here takes."""
    configs = f.sequence(f.mapping(ipam, where).get("config"), f"{where}.config")
    for index, config in enumerate(configs):
        subnet = f.mapping(config, f"{where}.config[{index}]").get("subnet")
        if subnet:
            return f.string(subnet, f"{where}.config[{index}].subnet")
    return None


def _service(project: Project, name: str, body: dict[str, Any]) -> Service:
    """One service, key by key."""
    where = f"services.{name}"
    project.warnings.extend(f"{where}.{key}: not supported, ignored" for key in _unknown(body, SERVICE_KEYS))
    service = Service(name)
    if "image" in body:
        service.image = f.string(body["image"], f"{where}.image")
    if "build" in body:
        service.build = _build(body["build"], project.directory, f"{where}.build")
    if not (service.image or service.build):
        raise ComposeError(f"{where}: needs an image or a build")
    for key in ("command", "entrypoint"):
        if body.get(key) is not None:
            setattr(service, key, f.words(body[key], f"{where}.{key}"))
    service.environment = _environment(body, project.directory, where)
    service.ports = [
        f.port(item, f"{where}.ports[{i}]") for i, item in enumerate(f.sequence(body.get("ports"), f"{where}.ports"))
    ]
    service.expose = [
        f.string(item, f"{where}.expose[{i}]")
        for i, item in enumerate(f.sequence(body.get("expose"), f"{where}.expose"))
    ]
    service.volumes = [f.mount(item, project.directory, f"{where}.volumes[{i}]")
                       for i, item in enumerate(f.sequence(body.get("volumes"), f"{where}.volumes"))]  # fmt: skip
    service.networks = f.service_networks(body.get("networks"), f"{where}.networks")
    service.depends_on = f.depends_on(body.get("depends_on"), f"{where}.depends_on")
    if body.get("healthcheck") is not None:
        service.healthcheck = f.healthcheck(body["healthcheck"], f"{where}.healthcheck")
    service.restart = f.restart(body.get("restart", "no"), f"{where}.restart")
    for key in ("user", "working_dir", "hostname", "stop_signal", "container_name"):
        if body.get(key) is not None:
            setattr(service, key, f.string(body[key], f"{where}.{key}"))
    service.init = f.boolean(body.get("init", False), f"{where}.init")
    if body.get("stop_grace_period") is not None:
        service.stop_grace_period = f.duration(body["stop_grace_period"], f"{where}.stop_grace_period")
    service.labels = f.labels(body.get("labels"), f"{where}.labels")
    service.replicas = _deploy(body.get("deploy"), f"{where}.deploy", project.warnings)
    return service


def _build(value: Any, directory: str, where: str) -> Build:
    """``build: DIR`` or ``build: {context, dockerfile, args}``."""
    if isinstance(value, str):
        value = {"context": value}
    body = f.mapping(value, where)
    unknown = set(body) - {"context", "dockerfile", "args"}
    if unknown:
        raise ComposeError(f"{where}.{sorted(unknown, key=str)[0]}: not supported (context, dockerfile and args are)")
    context = os.path.normpath(os.path.join(directory, f.string(body.get("context", "."), f"{where}.context")))
    if not os.path.isdir(context):
        raise ComposeError(f"{where}.context: {context} is not a directory")
    dockerfile = f.string(body["dockerfile"], f"{where}.dockerfile") if "dockerfile" in body else None
    return Build(context, dockerfile, f.string_map(body.get("args"), f"{where}.args"))


def _environment(body: dict[str, Any], directory: str, where: str) -> dict[str, str]:
    """``env_file:`` files first, then ``environment:`` over them (a bare NAME takes this environment's value)."""
    env: dict[str, str] = {}
    files = body.get("env_file")
    for index, item in enumerate([files] if isinstance(files, str | dict) else f.sequence(files, f"{where}.env_file")):
        spot = f"{where}.env_file[{index}]"
        spec = {"path": item} if isinstance(item, str) else f.mapping(item, spot)
        path = os.path.join(directory, f.string(spec.get("path"), f"{spot}.path"))
        env.update(read_env_file(path, required=f.boolean(spec.get("required", True), f"{spot}.required"), where=spot))
    for key, value in f.string_map(body.get("environment"), f"{where}.environment", allow_none=True).items():
        if value is not None:
            env[key] = value
        elif key in os.environ:
            env[key] = os.environ[key]
    return env


def read_env_file(path: str, required: bool = True, where: str = "") -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines and optional quotes around the value)."""
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        if required:
            raise ComposeError(f"{where}: {path} not found") from None
        return {}
    env = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.removeprefix("export ").partition("=")
        if not equals or not key.strip():
            raise ComposeError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        env[key.strip()] = value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value
    return env


def _deploy(value: Any, where: str, warnings: list[str]) -> int:
    """``deploy.replicas`` (the rest of ``deploy`` belongs to an orchestrator: a warning)."""
    body = f.mapping(value, where)
    warnings.extend(f"{where}.{key}: not supported, ignored" for key in sorted(set(body) - {"replicas"}, key=str))
    return f.count(body.get("replicas", 1), f"{where}.replicas")


def _check_references(project: Project) -> None:
    """Networks, volumes and services that services name must exist; depends_on must not go round in a circle."""
    for service in project.services.values():
        where = f"services.{service.name}"
        for network in service.networks:
            if network != "default" and network not in project.networks:
                raise ComposeError(
                    f"{where}.networks: network {network!r} is not declared under the top-level networks"
                )
        if len(service.networks) > 1:
            raise ComposeError(
                f"{where}.networks: a minictr container joins one network; {len(service.networks)} given"
            )
        for index, mount in enumerate(service.volumes):
            if mount["type"] == "volume" and mount["source"] and mount["source"] not in project.volumes:
                raise ComposeError(
                    f"{where}.volumes[{index}]: volume {mount['source']!r} is not declared under the top-level volumes"
                )
        for dependency in service.depends_on:
            if dependency not in project.services:
                raise ComposeError(f"{where}.depends_on: no service {dependency!r}")
        _no_cycle(project, service.name, [])
        if service.replicas > 1 and service.container_name:
            raise ComposeError(f"{where}.container_name: one name cannot be given to {service.replicas} replicas")


def _no_cycle(project: Project, name: str, path: list[str]) -> None:
    if name in path:
        raise ComposeError(f"services.{path[0]}.depends_on: a circle: {' -> '.join([*path, name])}")
    for dependency in project.services[name].depends_on:
        _no_cycle(project, dependency, [*path, name])
