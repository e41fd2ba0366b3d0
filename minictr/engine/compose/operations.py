"""The verbs on a project that is up: stop, start, restart, logs. Each finds the containers by their labels."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from minictr.engine.compose.replicas import Replica, replicas
from minictr.errors import ComposeError


def _chosen(project: str, services: list[str] | None, state_root: str | None) -> list[Replica]:
    found = replicas(project, state_root, services)
    if services:
        missing = sorted(set(services) - {x.service for x in found})
        if missing:
            raise ComposeError(f"no containers of service {missing[0]!r} in project {project!r}")
    return found


def stop(project: str, services: list[str] | None = None, timeout: int | None = None,
         state_root: str | None = None) -> list[Replica]:  # fmt: skip
    """Stop the running replicas (of ``services``); their restart policy does not bring them back."""
    from minictr.engine.lifecycle import stop as stop_one

    found = [x for x in _chosen(project, services, state_root) if x.status == "running"]
    for replica in reversed(found):
        stop_one(replica.id, timeout, state_root)
    return found


def start(project: str, services: list[str] | None = None, state_root: str | None = None) -> list[Replica]:
    """Start the replicas that are not running, by service in the order they were created."""
    from minictr.engine.managed import start as start_one

    found = [x for x in _chosen(project, services, state_root) if x.status != "running"]
    for replica in sorted(found, key=lambda x: x.state.get("created") or ""):
        start_one(replica.id, state_root)
    return found


def restart(project: str, services: list[str] | None = None, timeout: int | None = None,
            state_root: str | None = None) -> list[Replica]:  # fmt: skip
    """Stop, then start, every replica (of ``services``)."""
    from minictr.engine.lifecycle import restart as restart_one

    found = _chosen(project, services, state_root)
    for replica in found:
        restart_one(replica.id, timeout, state_root)
    return found


def logs(project: str, services: list[str] | None = None, *, follow: bool = False, tail: int | None = None,
         state_root: str | None = None) -> Iterator[tuple[Replica, dict[str, Any]]]:  # fmt: skip
    """``(replica, entry)`` for each log line (json-file entries: log, stream, time), oldest first.

    With ``follow`` the lines keep coming, from every replica as it writes
    them, until all of them have stopped.
    """
    from minictr.engine import logs as json_log

    found = _chosen(project, services, state_root)
    if not follow:
        lines: list[tuple[Replica, dict[str, Any]]] = []
        for replica in found:
            entries, _ = json_log.read_entries(replica.directory)
            lines.extend((replica, entry) for entry in json_log.tail(entries, tail))
        yield from sorted(lines, key=lambda pair: pair[1].get("time", ""))
        return
    yield from _follow(found, tail)


def _follow(found: list[Replica], tail: int | None) -> Iterator[tuple[Replica, dict[str, Any]]]:
    """One thread per replica reads its log as it grows; the lines meet in one queue."""
    from minictr.engine import logs as json_log
    from minictr.engine.managed import status_of
    from minictr.runtime.state import read_state

    lines: queue.Queue[tuple[Replica, dict[str, Any]] | None] = queue.Queue()

    def read(replica: Replica) -> None:
        try:
            entries, offset = json_log.read_entries(replica.directory)
            for entry in json_log.tail(entries, tail):
                lines.put((replica, entry))
            running = lambda: status_of(read_state(replica.directory), replica.directory) == "running"  # noqa: E731
            for entry in json_log.follow(replica.directory, running, offset):
                lines.put((replica, entry))
        finally:
            lines.put(None)

    for replica in found:
        threading.Thread(target=read, args=(replica,), daemon=True).start()
    remaining = len(found)
    while remaining:
        item = lines.get()
        if item is None:
            remaining -= 1
        else:
            yield item
