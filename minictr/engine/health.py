"""Healthchecks, as Docker runs them: a command run inside the container now and then, its verdict kept.

Where the check comes from: the image's ``HEALTHCHECK`` (``Healthcheck`` in
its config, which ``minictr build`` records), overridden field by field by
``minictr run --health-cmd/--health-interval/--health-timeout/--health-retries/
--health-start-period``; ``--no-healthcheck`` (or ``HEALTHCHECK NONE``)
turns it off. Durations are nanoseconds, as in Docker's config.

Who runs it: the container's monitor (:mod:`minictr.engine.monitor`), one check at
a time, every interval, each in a process of its own (``python -m
minictr.engine.health DIR``) that runs the command through the same exec path as
``minictr exec`` (:func:`minictr.engine.exec.exec_in`), and is killed, with the
command, when it outlives the timeout. So the monitor's lean watch phase
imports nothing for it, and a hanging check never stalls the log.

What it records, in ``<container dir>/health.json`` (a file of its own: the
checks write it while the monitor writes state.json, and two processes must
never merge into one file)::

    {"Status": "starting" | "healthy" | "unhealthy", "FailingStreak": N,
     "Log": [{"Start", "End", "ExitCode", "Output"}, ...]}      (the last 5)

A success makes it ``healthy``; ``Retries`` failures in a row make it
``unhealthy``; failures during the start period do not count while it is
still ``starting``. ``minictr ps`` shows ``Up 5 seconds (healthy)``,
``minictr inspect`` shows ``State.Health``, and :func:`wait_healthy` waits
for it (what compose's ``depends_on: condition: service_healthy`` needs).
"""

from __future__ import annotations

import os
import re
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SECOND = 1_000_000_000
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0, "Retries": 3}  # Docker's
FILE = "health.json"
PROCESS_NAME = "minictr-health"
LOG_LENGTH = 5
OUTPUT_LIMIT = 4096  # bytes of a check's output kept, as Docker keeps
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds; ValueError when it is not one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration such as 30s or 1m30s")
    return int(sum(float(number) * _UNITS[unit] for number, unit in parts))


def from_flags(
    cmd: str | None = None, interval: str | None = None, timeout: str | None = None, retries: int | None = None,
    start_period: str | None = None, disabled: bool = False,
) -> dict[str, Any] | None:  # fmt: skip
    """``run``'s health flags as a Docker HealthConfig of overrides (None when none is given)."""
    from minictr.errors import UsageError

    if disabled:
        if cmd:
            raise UsageError("--no-healthcheck conflicts with --health-cmd")
        return {"Test": ["NONE"]}
    found: dict[str, Any] = {"Test": ["CMD-SHELL", cmd]} if cmd else {}
    for key, flag, text in (("Interval", "interval", interval), ("Timeout", "timeout", timeout),
                            ("StartPeriod", "start-period", start_period)):  # fmt: skip
        if text is not None:
            try:
                found[key] = parse_duration(text)
            except ValueError as exc:
                raise UsageError(f"--health-{flag}: {exc}") from exc
            if found[key] <= 0 and key != "StartPeriod":
                raise UsageError(f"--health-{flag} {text}: must be more than 0")
    if retries is not None:
        if retries < 1:
            raise UsageError(f"--health-retries {retries}: must be at least 1")
        found["Retries"] = retries
    return found or None


def config_of(state: dict[str, Any]) -> dict[str, Any] | None:
    """A container's healthcheck (the image's, overridden by ``run``'s flags, defaults filled), or None."""
    image = (state.get("config") or {}).get("Healthcheck") or {}
    override = (state.get("options") or {}).get("healthcheck") or {}
    merged = {**image, **{k: v for k, v in override.items() if v}}
    test = merged.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return {**DEFAULTS, **{k: v for k, v in merged.items() if v}}


def command_of(test: list[str]) -> list[str]:
    """``["CMD", prog, args...]`` runs as it is; ``["CMD-SHELL", text]`` through ``/bin/sh -c``."""
    return ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])


def read(directory: str) -> dict[str, Any]:
    """The container's health record, or ``{}`` when it has no healthcheck (or has not started)."""
    from minictr.files import read_json

    return read_json(os.path.join(directory, FILE))


def reset(directory: str) -> None:
    """A (re)started container is ``starting`` again, its log kept (the monitor calls this)."""
    from minictr.files import write_json

    write_json(os.path.join(directory, FILE), {**read(directory), "Status": STARTING, "FailingStreak": 0})


def verdict(health: dict[str, Any], config: dict[str, Any], passed: bool, since_start: float) -> dict[str, Any]:
    """The record after one check: Docker's rules for the status and the failing streak."""
    if passed:
        return {**health, "Status": HEALTHY, "FailingStreak": 0}
    status = health.get("Status", STARTING)
    if status == STARTING and since_start * SECOND < config["StartPeriod"]:
        return {**health, "Status": STARTING}  # not counted during the start period
    streak = health.get("FailingStreak", 0) + 1
    return {**health, "Status": UNHEALTHY if streak >= config["Retries"] else status, "FailingStreak": streak}


def status_text(directory: str) -> str:
    """What ``ps`` adds after ``Up ...``: `` (healthy)``, `` (unhealthy)``, `` (health: starting)``, or nothing."""
    status = read(directory).get("Status")
    if not status:
        return ""
    return f" (health: {status})" if status == STARTING else f" ({status})"


def wait_healthy(container: str, timeout: float = 60.0, state_root: str | None = None) -> None:
    """Wait until ``container`` is healthy (compose's ``service_healthy``).

    Raises :class:`minictr.errors.ContainerError` when it has no healthcheck,
    turns unhealthy, stops, or is not healthy within ``timeout`` seconds.
    """
    from minictr.engine.managed import resolve, status_of
    from minictr.errors import ContainerError
    from minictr.runtime.state import read_state

    directory = resolve(container, state_root)
    name = os.path.basename(directory)[:12]
    if config_of(read_state(directory)) is None:
        raise ContainerError(f"container {name} has no healthcheck to wait for")
    deadline = time.monotonic() + timeout
    while True:
        status = read(directory).get("Status", STARTING)
        if status == HEALTHY:
            return
        if status == UNHEALTHY:
            raise ContainerError(f"container {name} is unhealthy")
        if status_of(read_state(directory), directory) not in ("running", "created"):
            raise ContainerError(f"container {name} stopped before it was healthy")
        if time.monotonic() > deadline:
            raise ContainerError(f"container {name} was not healthy within {timeout:g} s")
        time.sleep(0.1)


# --- one check (its own process, started by the monitor) -------------------------------------


def check(directory: str) -> int:
    """Run the container's healthcheck once through exec; record its verdict (``python -m minictr.engine.health``)."""
    import signal

    from minictr.engine.logs import seconds_of, timestamp
    from minictr.runtime.state import read_state

    with open("/proc/self/comm", "w") as handle:
        handle.write(PROCESS_NAME)
    state = read_state(directory)
    config = config_of(state)
    if config is None or state.get("status") != "running":
        return 0
    started = timestamp()
    since_start = time.time() - (seconds_of(state.get("started_at")) or time.time())

    def timed_out(*_: object) -> None:  # the exec'd command dies with us (it is spawned to die with its parent)
        output = f"Health check exceeded timeout ({config['Timeout'] / SECOND:g}s)"
        entry = {"Start": started, "End": timestamp(), "ExitCode": -1, "Output": output}
        _record(directory, config, since_start, entry)
        os._exit(1)

    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, config["Timeout"] / SECOND)
    code, output = _run(state, command_of(config["Test"]), os.path.dirname(os.path.dirname(directory)))
    signal.setitimer(signal.ITIMER_REAL, 0)
    _record(directory, config, since_start, {"Start": started, "End": timestamp(), "ExitCode": code, "Output": output})
    return 0


def _run(state: dict[str, Any], command: list[str], state_root: str) -> tuple[int, str]:
    """Run ``command`` in the container as ``minictr exec`` does; its status and output (cut to 4 KiB)."""
    from minictr.engine.exec import exec_in
    from minictr.errors import MinictrError

    try:
        done = exec_in(state["id"], command, state_root=state_root, capture=True)
    except MinictrError as exc:
        return getattr(exc, "exit_code", 126) or 126, str(exc)
    output = (done.stdout or b"") + (done.stderr or b"")
    return done.exit_code, output[:OUTPUT_LIMIT].decode(errors="replace")


def _record(directory: str, config: dict[str, Any], since_start: float, entry: dict[str, Any]) -> None:
    from minictr.files import write_json

    health = verdict(read(directory), config, entry["ExitCode"] == 0, since_start)
    health["Log"] = [*health.get("Log", []), entry][-LOG_LENGTH:]
    write_json(os.path.join(directory, FILE), health)


if __name__ == "__main__":
    sys.exit(check(sys.argv[1]))
