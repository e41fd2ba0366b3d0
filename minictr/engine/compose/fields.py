"""The value checks of a compose file: each takes a value and its path in the file, and returns it normalised.

A wrong value raises :class:`~minictr.errors.ComposeError` whose message
starts with the path (``services.web.ports[0]: …``), so the one line the CLI
prints says where to look.
"""

from __future__ import annotations

import os
import re
import shlex
from typing import Any

from minictr.errors import ComposeError

#: [IP:][HOST[-HOST]:]CONTAINER[/PROTO], as ``minictr run -p`` takes it (no ranges)
PORT = re.compile(r"^(?:(?:\d{1,3}(?:\.\d{1,3}){3}:)?(?:\d{1,5})?:)?\d{1,5}(?:/(?:tcp|udp))?$")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", type(None): "empty"}.get(
        type(value), type(value).__name__
    )


def mapping(value: Any, where: str) -> dict[str, Any]:
    """A mapping (``None``: an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ComposeError(f"{where}: must be a mapping, not {_kind(value)}")
    return value


def sequence(value: Any, where: str) -> list[Any]:
    """A list (``None``: an empty one)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{where}: must be a list, not {_kind(value)}")
    return value


def string(value: Any, where: str) -> str:
    """A string; numbers are taken as their text, as YAML users expect (``expose: [80]``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ComposeError(f"{where}: must be a string, not {_kind(value)}")
    return str(value)


def boolean(value: Any, where: str) -> bool:
    """A YAML boolean."""
    if not isinstance(value, bool):
        raise ComposeError(f"{where}: must be true or false, not {value!r}")
    return value


def count(value: Any, where: str) -> int:
    """A whole number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ComposeError(f"{where}: must be a whole number >= 0, not {value!r}")
    return value


def string_map(value: Any, where: str, allow_none: bool = False) -> dict[str, Any]:
    """``{K: V}`` or ``["K=V", "K"]`` (a bare K is None when ``allow_none``)."""
    if isinstance(value, list):
        found: dict[str, Any] = {}
        for index, item in enumerate(value):
            key, equals, text = string(item, f"{where}[{index}]").partition("=")
            if not equals and not allow_none:
                raise ComposeError(f"{where}[{index}]: expected KEY=VALUE, not {item!r}")
            found[key] = text if equals else None
        return found
    found = {}
    for key, item in mapping(value, where).items():
        found[str(key)] = None if item is None and allow_none else string(item, f"{where}.{key}")
    return found


def labels(value: Any, where: str) -> dict[str, str]:
    """Labels, as a mapping or a list of ``K=V``."""
    return {key: text or "" for key, text in string_map(value, where, allow_none=True).items()}


def words(value: Any, where: str) -> list[str]:
    """A command: a list of words, or one string split as a shell would split it."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(f"{where}: {exc}") from exc
    return [string(item, f"{where}[{index}]") for index, item in enumerate(sequence(value, where))]


def duration(value: Any, where: str) -> float:
    """A Compose duration (``10s``, ``1m30s``, ``500ms``) in seconds."""
    text = string(value, where)
    parts = DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ComposeError(f"{where}: {text!r} is not a duration such as 10s, 1m30s or 500ms")
    return sum(float(number) * SECONDS[unit] for number, unit in parts)


def port(value: Any, where: str) -> str:
    """A published port, short (``"8080:80"``) or long syntax, as ``minictr run -p`` spells it."""
    if isinstance(value, dict):
        unknown = set(value) - {"target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"}
        if unknown:
            raise ComposeError(f"{where}.{sorted(unknown)[0]}: not a port key")
        target = string(value.get("target"), f"{where}.target")
        text = ":".join(str(part) for part in (value.get("host_ip"), value.get("published")) if part)
        text = f"{text}:{target}" if text else target
        if value.get("host_ip") and not value.get("published"):
            text = f"{value['host_ip']}::{target}"
        value = f"{text}/{value['protocol']}" if value.get("protocol") else text
    text = string(value, where)
    if not PORT.match(text):
        raise ComposeError(
            f"{where}: {text!r} is not [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp] (ranges are not supported)"
        )
    return text


def mount(value: Any, directory: str, where: str) -> dict[str, Any]:
    """A service volume, short (``data:/var/lib/x:ro``, ``./src:/app``) or long syntax, normalised.

    Returns ``{"type": volume|bind|tmpfs, "source", "target", "read_only"}``;
    a relative bind source is taken from the compose file's directory.
    """
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            raise ComposeError(f"{where}: {value!r} is not SOURCE:TARGET[:ro|rw] or TARGET")
        source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        value = {"type": kind, "source": source, "target": target, "read_only": parts[2:] == ["ro"]}
    body = mapping(value, where)
    unknown = set(body) - {"type", "source", "target", "read_only", "volume", "bind", "tmpfs"}
    if unknown:
        raise ComposeError(f"{where}.{sorted(unknown)[0]}: not supported")
    kind = string(body.get("type"), f"{where}.type")
    if kind not in ("volume", "bind", "tmpfs"):
        raise ComposeError(f"{where}.type: {kind!r}: choose volume, bind or tmpfs")
    target = string(body.get("target"), f"{where}.target")
    if not target.startswith("/"):
        raise ComposeError(f"{where}: the target {target!r} must be an absolute path")
    source = string(body["source"], f"{where}.source") if body.get("source") else ""
    if kind == "bind":
        if not source:
            raise ComposeError(f"{where}.source: a bind mount needs a source")
        source = os.path.normpath(os.path.join(directory, os.path.expanduser(source)))
    read_only = boolean(body.get("read_only", False), f"{where}.read_only")
    return {"type": kind, "source": source, "target": target, "read_only": read_only}


def service_networks(value: Any, where: str) -> dict[str, list[str]]:
    """``networks: [a]`` or ``networks: {a: {aliases: [...]}}``; none given: the project's default network."""
    if value is None:
        return {"default": []}
    if isinstance(value, list):
        return {string(item, f"{where}[{index}]"): [] for index, item in enumerate(value)}
    found = {}
    for name, body in mapping(value, where).items():
        body = mapping(body, f"{where}.{name}")
        unknown = set(body) - {"aliases"}
        if unknown:
            raise ComposeError(f"{where}.{name}.{sorted(unknown)[0]}: not supported (aliases is)")
        found[str(name)] = [
            string(a, f"{where}.{name}.aliases[{i}]")
            for i, a in enumerate(sequence(body.get("aliases"), f"{where}.{name}.aliases"))
        ]
    return found


def depends_on(value: Any, where: str) -> dict[str, str]:
    """``depends_on: [db]`` or ``depends_on: {db: {condition: service_healthy}}`` -> service -> condition."""
    if isinstance(value, list):
        return {string(item, f"{where}[{index}]"): "service_started" for index, item in enumerate(value)}
    found = {}
    for name, body in mapping(value, where).items():
        body = mapping(body, f"{where}.{name}")
        condition = string(body.get("condition", "service_started"), f"{where}.{name}.condition")
        if condition not in CONDITIONS:
            raise ComposeError(f"{where}.{name}.condition: {condition!r}: choose {', '.join(CONDITIONS)}")
        found[str(name)] = condition
    return found


def healthcheck(value: Any, where: str) -> dict[str, Any]:
    """``healthcheck:`` as Docker's config keeps it: Test, Interval, Timeout, StartPeriod (seconds), Retries."""
    body = mapping(value, where)
    unknown = set(body) - {"test", "interval", "timeout", "start_period", "start_interval", "retries", "disable"}
    if unknown:
        raise ComposeError(f"{where}.{sorted(unknown)[0]}: not a healthcheck key")
    if boolean(body.get("disable", False), f"{where}.disable"):
        return {"Test": ["NONE"]}
    test = body.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    test = words(test, f"{where}.test")
    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE") or (test[0] != "NONE" and len(test) < 2):
        raise ComposeError(f"{where}.test: a string, or a list starting with CMD, CMD-SHELL or NONE")
    health: dict[str, Any] = {"Test": test}
    for key, name in (("interval", "Interval"), ("timeout", "Timeout"), ("start_period", "StartPeriod")):
        if body.get(key) is not None:
            health[name] = duration(body[key], f"{where}.{key}")
    if body.get("retries") is not None:
        health["Retries"] = count(body["retries"], f"{where}.retries")
    return health


def restart(value: Any, where: str) -> str:
    """``no``, ``always``, ``on-failure[:N]`` or ``unless-stopped``."""
    text = "no" if value is False else string(value, where)
    name, _, tries = text.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped") or (
        tries and (name != "on-failure" or not tries.isdigit())
    ):
        raise ComposeError(f"{where}: {text!r}: choose no, always, on-failure[:N] or unless-stopped")
    return text


def interpolate(value: Any, variables: dict[str, str], where: str) -> Any:
    """Strings in ``value`` with ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$`` replaced."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables, f"{where}.{key}".lstrip(".")) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables, f"{where}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg, current = match.group("op") or "", match.group("arg") or "", variables.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset else current or ""
        if op.endswith("?"):
            if unset:
                raise ComposeError(f"{where}: {arg or f'variable {name} is not set'}")
            return current or ""
        if op.endswith("+"):
            return "" if unset else arg
        return current or ""

    return VARIABLE.sub(replace, value)
