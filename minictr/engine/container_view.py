"""Containers as Docker shows them: ``inspect``'s JSON and ``ps``'s rows, from state.json.

The state keeps the OCI statuses (created, running, stopped); Docker's words
are shown here (``exited`` for stopped, ``restarting`` for a managed
container set up again, ``Up 3 seconds``, ``Exited (0) 2 minutes ago``).
"""

from __future__ import annotations

import json
import os
import re
import time

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from typing import Any

from minictr.engine.health import STARTING, config_of, status_text
from minictr.engine.health import read as read_health
from minictr.engine.logs import LOG_NAME, seconds_of
from minictr.engine.managed import directories, status_of
from minictr.errors import UsageError
from minictr.runtime.state import read_state

ZERO_TIME = "0001-01-01T00:00:00Z"
DOCKER_STATUS = {"creating": "created", "created": "created", "running": "running", "paused": "paused",
                 "stopped": "exited"}  # fmt: skip


def docker_status(state: dict[str, Any], status: str) -> str:
    """Docker's word for a status: a managed container being created is one set up again (stopped → creating)."""
    if status == "creating" and state.get("managed"):
        return "restarting"
    return DOCKER_STATUS.get(status, status)


def ago(stamp: str | None) -> str:
    """``3 seconds``, ``2 minutes``, ``About an hour``, as Docker words durations."""
    seconds = seconds_of(stamp)
    if seconds is None:
        return ""
    delta = max(0, int(time.time() - seconds))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if delta >= size:
            count = delta // size
            return (
                f"{count} {unit}{'s' if count > 1 else ''}"
                if count > 1
                else ("About an hour" if unit == "hour" else f"1 {unit}")
            )
    return "Less than a second" if delta < 1 else f"{delta} second{'s' if delta > 1 else ''}"


def command_of(state: dict[str, Any]) -> list[str]:
    """The container's program and arguments."""
    if state.get("spec"):
        return list(state["spec"].get("process", {}).get("args", []))
    return list(state.get("command") or [])


def inspect(directory: str) -> dict[str, Any]:
    """``docker inspect``'s shape for one container."""
    state = read_state(directory)
    status = status_of(state, directory)
    args = command_of(state)
    options = state.get("options", {})
    settings = state.get("lifecycle", {})
    process = state.get("spec", {}).get("process", {})
    return {
        "Id": state["id"],
        "Created": state.get("created", ""),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": docker_status(state, status),
            "Running": status in ("running", "paused"),
            "Paused": status == "paused",
            "Restarting": docker_status(state, status) == "restarting",
            "OOMKilled": bool(state.get("oom_killed")),
            "Dead": False,
            "Pid": state.get("pid", 0) if status in ("running", "paused") else 0,
            "ExitCode": state.get("exit_code") or 0,
            "Error": state.get("error", ""),
            "StartedAt": state.get("started_at") or ZERO_TIME,
            "FinishedAt": state.get("finished_at") or ZERO_TIME,
            **_health(state, directory),
        },
        "Image": state.get("image_id", ""),
        "Name": f"/{state.get('name') or state['id']}",
        "RestartCount": state.get("restart_count", 0),
        "LogPath": os.path.join(directory, LOG_NAME),
        "Config": {
            "Hostname": options.get("hostname") or state["id"][:12],
            "Domainname": options.get("domainname") or "",
            "User": options.get("user") or state.get("config", {}).get("User", ""),
            "Tty": bool(settings.get("tty")),
            "OpenStdin": bool(settings.get("interactive")),
            "Env": process.get("env", []),
            "Cmd": args,
            "Image": state.get("image", ""),
            "WorkingDir": process.get("cwd", ""),
            "Entrypoint": [options["entrypoint"]] if options.get("entrypoint") else None,
            "Labels": labels_of(state),
            "Healthcheck": config_of(state),
            "StopSignal": settings.get("stop_signal") or state.get("config", {}).get("StopSignal", "SIGTERM"),
            "StopTimeout": settings.get("stop_timeout"),
        },
        "HostConfig": _host_config(options, settings),
        "NetworkSettings": _network_settings(state, options),
        "Mounts": [_mount(volume) for volume in options.get("volumes", [])],
        "GraphDriver": {
            "Name": "overlay" if state.get("upperdir") else "copy",
            "Data": {
                "UpperDir": state.get("upperdir", ""),
                "LowerDir": ":".join(state.get("lowerdirs", [])),
                "MergedDir": os.path.join(directory, "rootfs"),
            },
        },
    }


def labels_of(state: dict[str, Any]) -> dict[str, str]:
    """The image's labels with the container's own (``--label``) over them, as Docker merges them."""
    return {**(state.get("config", {}).get("Labels") or {}), **(state.get("options", {}).get("labels") or {})}


def _health(state: dict[str, Any], directory: str) -> dict[str, Any]:
    """``State.Health`` of a container with a healthcheck: its status, failing streak and last results."""
    if config_of(state) is None:
        return {}
    found = read_health(directory)
    return {"Health": {"Status": found.get("Status", STARTING), "FailingStreak": found.get("FailingStreak", 0),
                       "Log": found.get("Log", [])}}  # fmt: skip


def _host_config(options: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "AutoRemove": bool(settings.get("auto_remove")),
        "RestartPolicy": settings.get("restart", {"Name": "no", "MaximumRetryCount": 0}),
        "NetworkMode": options.get("network") or "bridge", "Binds": list(options.get("volumes", [])),
        "PortBindings": list(options.get("publish", [])), "PublishAllPorts": bool(options.get("publish_all")),
        "ReadonlyRootfs": bool(options.get("read_only")), "Init": bool(options.get("init")),
        "Memory": options.get("memory"), "Cpus": options.get("cpus"), "PidsLimit": options.get("pids_limit"),
        "CgroupParent": options.get("cgroup_parent") or "", "Isolation": options.get("isolation", "full"),
        "LogConfig": {"Type": "json-file", "Config": {"max-size": str(settings.get("log_max_size", "")),
                                                      "max-file": str(settings.get("log_max_file", ""))}},
    }  # fmt: skip


def _network_settings(state: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    section = state.get("network") or {}
    networks = {}
    if section.get("address"):
        networks[section.get("network", "bridge")] = {
            "IPAddress": section["address"], "IPPrefixLen": section.get("prefixlen", 0),
            "Gateway": section.get("gateway", ""), "Aliases": section.get("aliases", []),
        }  # fmt: skip
    ports = {
        f"{p.get('container_port')}/{p.get('proto', 'tcp')}": [
            {"HostIp": p.get("host_ip", ""), "HostPort": str(p.get("host_port", ""))}
        ]
        for p in section.get("ports", [])
    }
    return {
        "IPAddress": section.get("address", ""),
        "Gateway": section.get("gateway", ""),
        "Networks": networks,
        "Ports": ports,
    }


def _mount(volume: str) -> dict[str, Any]:
    source, _, rest = volume.partition(":")
    destination, _, mode = rest.partition(":")
    return {"Type": "bind", "Source": source, "Destination": destination, "Mode": mode, "RW": mode != "ro"}


def ps_rows(state_root: str | None = None, all: bool = False, no_trunc: bool = False) -> list[dict[str, Any]]:
    """``docker ps`` rows (newest first): running containers, or every one with ``all``."""
    rows = []
    for directory in reversed(directories(state_root)):
        state = read_state(directory)
        status = status_of(state, directory)
        if (status == "creating" and not state.get("managed")) or (status not in ("running", "paused") and not all):
            continue
        command = " ".join(command_of(state))
        if not no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append(
            {
                "ID": state["id"],
                "Image": state.get("image", ""),
                "Command": f'"{command}"',
                "CreatedAt": state.get("created", ""),
                "RunningFor": f"{ago(state.get('created'))} ago" if state.get("created") else "",
                "Status": _status_text(state, status, directory),
                "State": docker_status(state, status),
                "Ports": _ports_text(state),
                "Names": state.get("name") or "",
            }
        )
    return rows


def _status_text(state: dict[str, Any], status: str, directory: str) -> str:
    if status in ("running", "paused"):
        health = status_text(directory) if config_of(state) else ""
        up = (f"Up {ago(state.get('started_at'))}" if state.get("started_at") else "Up") + health
        return f"{up} (Paused)" if status == "paused" else up
    if status == "stopped":
        code = state.get("exit_code")
        return f"Exited ({-1 if code is None else code}) {ago(state.get('finished_at'))} ago"
    if docker_status(state, status) == "restarting":
        return f"Restarting ({state.get('exit_code')}) {ago(state.get('finished_at'))} ago"
    return "Created"


def _ports_text(state: dict[str, Any]) -> str:
    ports = (state.get("network") or {}).get("ports", [])
    return ", ".join(
        f"{p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}->{p.get('container_port')}/{p.get('proto', 'tcp')}"
        for p in ports
    )


#: ``ps --format table`` headers, as Docker names the columns.
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS",
              "Names": "NAMES"}  # fmt: skip
_PLACEHOLDER = re.compile(r"\{\{\s*(json\s+)?\.(\w*)\s*\}\}")


def format_rows(rows: list[dict[str, Any]], template: str) -> list[str]:
    """``ps --format``: Docker's placeholders (``{{.ID}}``, ``{{.Names}}``, ``{{json .}}``…), ``\\t`` a tab.

    A ``table`` prefix adds a header line and aligns the tab-separated
    columns; ``table`` alone is the default table and ``json`` one object per line.
    """
    if template == "json":
        return [json.dumps(row) for row in rows]
    if template == "table":
        template = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    table = template.startswith("table")
    template = template[len("table") :].lstrip(" ") if table else template
    template = template.replace("\\t", "\t").replace("\\n", "\n")
    for _json, field in _PLACEHOLDER.findall(template):
        if field and field not in PS_HEADERS:
            raise UsageError(f"--format: no field {field!r} (known: {', '.join('.' + f for f in PS_HEADERS)})")

    def fill(row: dict[str, Any], header: bool) -> str:
        def value(match: re.Match[str]) -> str:
            field = match.group(2)
            if header:
                return PS_HEADERS.get(field, field.upper() or "")
            if not field:
                return json.dumps(row)
            return json.dumps(row[field]) if match.group(1) else str(row[field])

        return _PLACEHOLDER.sub(value, template)

    lines = [fill(row, False) for row in rows]
    if not table:
        return lines
    return _aligned([fill({}, True), *lines])


def _aligned(lines: list[str]) -> list[str]:
    """Tab-separated cells padded into columns three spaces apart (Docker's tabwriter settings)."""
    cells = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in cells:
        for index, cell in enumerate(row[:-1]):
            widths[index] = max(widths.get(index, 0), len(cell))
    padded = [[cell.ljust(widths[i] + 3) if i < len(row) - 1 else cell for i, cell in enumerate(row)] for row in cells]
    return ["".join(row).rstrip() for row in padded]
