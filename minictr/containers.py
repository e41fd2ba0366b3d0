"""Containers from Python, in the spirit of docker-py: for notebooks and scripts.

    import minictr.containers as containers

    web = containers.run("busybox", ["httpd", "-f", "-p", "80"], detach=True, name="web")
    web.status                      # 'running'
    web.exec_run(["wget", "-qO-", "http://127.0.0.1/"])   # ExecResult(exit_code=..., output=b"...")
    web.logs()                      # b'...' (stdout and stderr, as written)
    web.stats()["memory"]           # bytes in use, from its cgroup
    web.stop(timeout=2); web.wait() # {'StatusCode': 137, 'Error': None}
    web.remove()

    containers.run("busybox", ["echo", "hi"], remove=True)   # b'hi\\n' (waits; raises if it fails)
    containers.run("busybox", ["echo", "hi"])                # the same, and the exited container is kept

Every container runs under its own monitor (:mod:`minictr.engine.monitor`), never
as a child of the calling process: a notebook kernel may be restarted while
its containers run on, and :func:`list`/:func:`get` find them again. Keyword
options are :class:`~minictr.engine.run_options.RunOptions` fields (``env``,
``workdir``, ``network``, ``volumes``, ``memory``, …) or docker-py's names
for them (``environment``, ``working_dir``, ``mem_limit``, ``ports``…).
``data_root``/``state_root`` choose the store and the state root
(:class:`Client` keeps them).
"""

from __future__ import annotations

import builtins
import dataclasses
import os

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from minictr.errors import ContainerError

#: docker-py's keyword -> RunOptions field
DOCKER_PY_NAMES = {"environment": "env", "working_dir": "workdir", "mem_limit": "memory", "network_mode": "network"}
#: lifecycle keywords (docker-py's spelling) -> :func:`minictr.engine.managed.lifecycle_settings` keywords
LIFECYCLE = {"remove": "auto_remove", "auto_remove": "auto_remove", "stop_signal": "stop_signal",
             "stop_timeout": "stop_timeout", "tty": "tty", "stdin_open": "interactive"}  # fmt: skip


@dataclasses.dataclass
class ExecResult:
    """What :meth:`Container.exec_run` returns, as docker-py does."""

    exit_code: int
    output: bytes


class Container:
    """One container, by id; its attributes are read from its state when asked (``reload``)."""

    def __init__(self, client: Client, container_id: str) -> None:
        self.client = client
        self.id = container_id
        self.attrs: dict[str, Any] = {}
        self.reload()

    def __repr__(self) -> str:
        return f"<Container {self.id} {self.name} {self.status}>"

    @property
    def name(self) -> str:
        name: str = self.attrs["Name"]
        return name.lstrip("/")

    @property
    def status(self) -> str:
        """Docker's word: created, running or exited."""
        self.reload()
        status: str = self.attrs["State"]["Status"]
        return status

    @property
    def health(self) -> str:
        """docker-py's word: ``starting``, ``healthy``, ``unhealthy``, or ``unknown`` without a healthcheck."""
        self.reload()
        return str(self.attrs["State"].get("Health", {}).get("Status", "unknown"))

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Block until it is healthy; ContainerError if it turns unhealthy, stops, or ``timeout`` runs out."""
        from minictr.engine.health import wait_healthy

        wait_healthy(self.id, timeout, self.client.state_root)

    def reload(self) -> None:
        """Read the container's state again (``inspect``)."""
        from minictr.engine.container_view import inspect

        self.attrs = inspect(self._directory())

    def _directory(self) -> str:
        from minictr.engine.managed import resolve

        return resolve(self.id, self.client.state_root)

    def start(self) -> None:
        from minictr.engine.managed import start

        start(self.id, self.client.state_root)

    def stop(self, timeout: int | None = None) -> None:
        from minictr.engine.lifecycle import stop

        stop(self.id, timeout, self.client.state_root)

    def restart(self, timeout: int | None = None) -> None:
        from minictr.engine.lifecycle import restart

        restart(self.id, timeout, self.client.state_root)

    def kill(self, signal: str | int = "SIGKILL") -> None:
        from minictr.engine.lifecycle import send_signal
        from minictr.engine.managed import signal_number

        send_signal(self.id, signal_number(signal), self.client.state_root)

    def remove(self, force: bool = False) -> None:
        from minictr.engine.lifecycle import remove

        remove(self.id, force, self.client.state_root)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until it stops: ``{"StatusCode": N, "Error": None}``."""
        from minictr.engine.lifecycle import wait

        code = wait(self.id, self.client.state_root, timeout=timeout)
        self.reload()
        return {"StatusCode": code, "Error": self.attrs["State"]["Error"] or None}

    def logs(self, stdout: bool = True, stderr: bool = True, timestamps: bool = False, tail: int | str = "all",
             stream: bool = False, follow: bool | None = None) -> bytes | Iterator[bytes]:  # fmt: skip
        """Its output, as one ``bytes`` (or, with ``stream``, chunks as they come until it stops)."""
        from minictr.engine import logs
        from minictr.engine.managed import status_of

        directory = self._directory()
        wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
        entries, offset = logs.read_entries(directory)
        kept = logs.tail(entries, None if tail == "all" else int(tail))

        def render(entry: dict[str, Any]) -> bytes:
            text = entry["log"]
            return (f"{entry['time']} {text}" if timestamps else text).encode()

        if not (stream or follow):
            return b"".join(render(e) for e in kept if e["stream"] in wanted)

        def chunks() -> Iterator[bytes]:
            from minictr.runtime.state import read_state

            yield from (render(e) for e in kept if e["stream"] in wanted)
            running = lambda: status_of(read_state(directory), directory) == "running"  # noqa: E731
            yield from (render(e) for e in logs.follow(directory, running, offset) if e["stream"] in wanted)

        return chunks()

    def exec_run(
        self, cmd: str | builtins.list[str], environment: builtins.list[str] | None = None, workdir: str | None = None
    ) -> ExecResult:
        """Run ``cmd`` inside (``minictr exec``); its stdout and stderr together in ``output``."""
        import shlex

        from minictr.engine.exec import exec_in

        command = shlex.split(cmd) if isinstance(cmd, str) else builtins.list(cmd)
        done = exec_in(
            self.id, command, env=environment, workdir=workdir, state_root=self.client.state_root, capture=True
        )
        return ExecResult(done.exit_code, done.stdout + done.stderr)

    def stats(self) -> dict[str, Any]:
        """Its cgroup's accounting now (memory, CPU time, pids, io, OOM kills)."""
        from minictr.engine.container import cgroup_of

        return cgroup_of(self.id, self.client.state_root).stats().as_dict()


class Client:
    """The containers of one state root and image store (defaults: minictr's)."""

    def __init__(self, data_root: str | None = None, state_root: str | None = None) -> None:
        self.data_root = data_root
        self.state_root = state_root

    def create(self, image: str, command: str | builtins.list[str] | None = None, **options: Any) -> Container:
        """A created container (``start`` runs it)."""
        import shlex

        from minictr.engine.managed import create

        run_options, settings = _split_options(options)
        args = shlex.split(command) if isinstance(command, str) else builtins.list(command or [])
        container_id = create(image, args, run_options, settings, data_root=self.data_root, state_root=self.state_root)
        return Container(self, container_id)

    def run(
        self, image: str, command: str | builtins.list[str] | None = None, detach: bool = False, stdout: bool = True,
        stderr: bool = False, **options: Any,
    ) -> Container | bytes:  # fmt: skip
        """Create and start; with ``detach`` return the Container, else wait and return its output.

        As docker-py's: the output is its stdout (``stderr=True`` adds what it
        wrote there, ``stdout=False`` leaves the stdout out), the exited
        container is kept (``logs``, ``inspect``, ``start`` again, until
        :meth:`Container.remove`) unless ``remove=True``, and a non-zero exit
        raises :class:`ContainerError` with the status and the end of its stderr.
        """
        removing = not detach and bool(options.pop("remove", False) or options.pop("auto_remove", False))
        container = self.create(image, command, **options)  # waited for here, so removed here (after its logs)
        try:
            container.start()
        except BaseException:
            container.remove(force=True)
            raise
        if detach:
            return container
        code = container.wait()["StatusCode"]
        output = container.logs(stdout=stdout, stderr=stderr)
        said = container.logs(stdout=False, stderr=True) if code else b""
        assert isinstance(output, bytes) and isinstance(said, bytes)  # not streamed: one bytes
        if removing:
            container.remove(force=True)
        if code != 0:
            raise ContainerError(f"{image} {command!r} exited with {code}: {said.decode(errors='replace')[-400:]}")
        return output

    def get(self, container: str) -> Container:
        """A container by name, id or unique id prefix."""
        from minictr.engine.managed import resolve

        return Container(self, os.path.basename(resolve(container, self.state_root)))

    def list(self, all: bool = False) -> builtins.list[Container]:
        """Running containers (every one with ``all``), newest first."""
        from minictr.engine.container_view import ps_rows

        return [Container(self, row["ID"]) for row in ps_rows(self.state_root, all=all)]

    def prune(self) -> dict[str, Any]:
        """Remove every stopped container."""
        from minictr.engine.lifecycle import prune

        return {"ContainersDeleted": prune(self.state_root)}


def _split_options(options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """RunOptions and lifecycle settings from docker-py-style keywords."""
    from minictr.engine.managed import lifecycle_settings
    from minictr.engine.run_options import RunOptions

    fields = {f.name for f in dataclasses.fields(RunOptions)}
    run: dict[str, Any] = {}
    life: dict[str, Any] = {}
    for key, value in options.items():
        if key in LIFECYCLE:
            life[LIFECYCLE[key]] = value
        elif key == "restart_policy":
            life["restart"] = (
                f"{value.get('Name', 'no')}:{value['MaximumRetryCount']}"
                if value.get("MaximumRetryCount")
                else value.get("Name", "no")
            )
        elif key == "ports":  # {"80/tcp": 8080} as docker-py
            run["publish"] = [f"{host}:{container}" for container, host in value.items()]
        elif key in ("environment", "env") and isinstance(value, dict):
            run["env"] = [f"{k}={v}" for k, v in value.items()]
        elif DOCKER_PY_NAMES.get(key, key) in fields:
            run[DOCKER_PY_NAMES.get(key, key)] = value
        else:
            raise TypeError(f"unknown option {key!r}")
    return RunOptions(**run), lifecycle_settings(**life)


_default = Client()


def run(
    image: str, command: str | builtins.list[str] | None = None, detach: bool = False, **options: Any
) -> Container | bytes:
    """:meth:`Client.run` with minictr's default roots (or ``data_root``/``state_root`` among the options)."""
    return _client(options).run(image, command, detach=detach, **options)


def create(image: str, command: str | builtins.list[str] | None = None, **options: Any) -> Container:
    """:meth:`Client.create` with the default roots (or ``data_root``/``state_root``)."""
    return _client(options).create(image, command, **options)


def get(container: str, *, state_root: str | None = None) -> Container:
    """:meth:`Client.get`."""
    return Client(state_root=state_root).get(container)


def list(all: bool = False, *, state_root: str | None = None) -> builtins.list[Container]:  # docker-py's name
    """:meth:`Client.list`."""
    return Client(state_root=state_root).list(all=all)


def prune(*, state_root: str | None = None) -> dict[str, Any]:
    """:meth:`Client.prune`."""
    return Client(state_root=state_root).prune()


def _client(options: dict[str, Any]) -> Client:
    roots = {key: options.pop(key) for key in ("data_root", "state_root") if key in options}
    return Client(**roots) if roots else _default
