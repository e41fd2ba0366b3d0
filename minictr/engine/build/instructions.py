"""The instructions that only change the image config: ENV, LABEL, EXPOSE, VOLUME, USER, CMD, ENTRYPOINT…

Each takes the stage's :class:`Config` view and one instruction, and writes
the config as Docker does (OCI image spec "config" properties, plus
Docker's ``Shell`` and ``Healthcheck``, which Docker-spec tools read):

- ``ENV`` and ``LABEL`` take ``K=V`` pairs (``ENV K V`` too, the old form);
- ``EXPOSE 80 53/udp 8000-8002`` -> ``ExposedPorts {"80/tcp": {}, …}``;
- ``CMD``/``ENTRYPOINT`` in shell form run through the current ``SHELL``;
  setting ENTRYPOINT drops a Cmd inherited from the base image, as Docker does;
- ``HEALTHCHECK [--interval=…] CMD …`` or ``NONE``, durations in nanoseconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from minictr.engine.build.dockerfile import Instruction, Lexer, json_list, key_values

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class Config:
    """The ``config`` object of an image config being built, with what the stage set itself."""

    values: dict[str, Any]
    cmd_set: bool = False  #: CMD came from this stage (ENTRYPOINT then keeps it)
    args: dict[str, str] = field(default_factory=dict)  #: the ARGs in effect, name -> value

    @property
    def env(self) -> dict[str, str]:
        """Env as a dict (later entries win)."""
        return dict(item.partition("=")[::2] for item in self.values.get("Env") or [])

    def lexer(self, where: Instruction) -> Lexer:
        """Words expanded from the ARGs and ENV in effect (ENV wins, as in Docker)."""
        return Lexer({**self.args, **self.env}, where)

    @property
    def shell(self) -> list[str]:
        """The shell that runs shell-form commands."""
        return list(self.values.get("Shell") or DEFAULT_SHELL)

    def command(self, instruction: Instruction) -> list[str]:
        """An exec-form array as it is, a shell-form command through the shell."""
        form = instruction.exec_form()
        return form if form is not None else [*self.shell, instruction.value]


def apply(config: Config, instruction: Instruction) -> str:
    """Apply a config-only instruction; return how the history shows it."""
    keyword = instruction.keyword
    handler = _HANDLERS[keyword]
    shown = handler(config, instruction)
    return f"{keyword} {shown}"


def _env(config: Config, instruction: Instruction) -> str:
    pairs = key_values(config.lexer(instruction).words(instruction.value), instruction)
    env = config.env
    for name, value in pairs:
        env[name] = value
    config.values["Env"] = [f"{k}={v}" for k, v in env.items()]
    return " ".join(f"{k}={v}" for k, v in pairs)


def _label(config: Config, instruction: Instruction) -> str:
    pairs = key_values(config.lexer(instruction).words(instruction.value), instruction)
    config.values["Labels"] = {**(config.values.get("Labels") or {}), **dict(pairs)}
    return " ".join(f"{k}={v}" for k, v in pairs)


def _expose(config: Config, instruction: Instruction) -> str:
    ports = dict(config.values.get("ExposedPorts") or {})
    words = config.lexer(instruction).words(instruction.value)
    for word in words:
        match = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?", word.lower())
        if not match:
            raise instruction.error(f"{word!r} is not PORT[-PORT][/tcp|udp|sctp]")
        first, last, protocol = int(match.group(1)), int(match.group(2) or match.group(1)), match.group(3) or "tcp"
        if not 0 < first <= last <= 65535:
            raise instruction.error(f"{word!r}: ports go from 1 to 65535")
        ports.update({f"{port}/{protocol}": {} for port in range(first, last + 1)})
    config.values["ExposedPorts"] = ports
    return " ".join(words)


def _volume(config: Config, instruction: Instruction) -> str:
    form = instruction.exec_form()
    lexer = config.lexer(instruction)
    paths = [lexer.expand(p) for p in form] if form is not None else lexer.words(instruction.value)
    if not paths or any(not p for p in paths):
        raise instruction.error("needs a path")
    config.values["Volumes"] = {**(config.values.get("Volumes") or {}), **{p: {} for p in paths}}
    return json.dumps(paths) if form is not None else " ".join(paths)


def _user(config: Config, instruction: Instruction) -> str:
    user = config.lexer(instruction).expand(instruction.value)
    config.values["User"] = user
    return user


def _cmd(config: Config, instruction: Instruction) -> str:
    config.values["Cmd"] = config.command(instruction)
    config.cmd_set = True
    return json.dumps(config.values["Cmd"])


def _entrypoint(config: Config, instruction: Instruction) -> str:
    config.values["Entrypoint"] = config.command(instruction)
    if not config.cmd_set:
        config.values.pop("Cmd", None)  # Docker: an ENTRYPOINT resets a Cmd the base image gave
    return json.dumps(config.values["Entrypoint"])


def _shell(config: Config, instruction: Instruction) -> str:
    config.values["Shell"] = json_list(instruction, "SHELL")
    return json.dumps(config.values["Shell"])


def _stopsignal(config: Config, instruction: Instruction) -> str:
    signal = config.lexer(instruction).expand(instruction.value)
    if not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|\d+", signal):
        raise instruction.error(f"{signal!r} is not a signal name or number")
    config.values["StopSignal"] = signal
    return signal


def _maintainer(config: Config, instruction: Instruction) -> str:
    config.values["_author"] = instruction.value  # moved to the top-level "author" when the image is written
    return instruction.value


_HEALTH_FLAGS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
}


def _healthcheck(config: Config, instruction: Instruction) -> str:
    words = instruction.value.split(None, 1)
    kind = words[0].upper()
    if kind == "NONE":
        if instruction.flags:
            raise instruction.error("HEALTHCHECK NONE takes no options")
        config.values["Healthcheck"] = {"Test": ["NONE"]}
        return "NONE"
    if kind != "CMD" or len(words) < 2:
        raise instruction.error("is HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE")
    check = Instruction("CMD", words[1], instruction.line)
    form = check.exec_form()
    health: dict[str, Any] = {"Test": ["CMD", *form] if form is not None else ["CMD-SHELL", words[1]]}
    for flag, value in instruction.flags.items():
        if flag == "retries":
            if not value.isdigit():
                raise instruction.error(f"--retries={value}: not a number")
            health["Retries"] = int(value)
        elif flag in _HEALTH_FLAGS:
            health[_HEALTH_FLAGS[flag]] = duration_ns(value, instruction)
        else:
            raise instruction.error(f"unknown option --{flag}")
    config.values["Healthcheck"] = health
    return instruction.value


def duration_ns(text: str, where: Instruction) -> int:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds, as ``run --health-*`` reads it."""
    from minictr.engine.health import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise where.error(str(exc)) from exc


_HANDLERS = {
    "ENV": _env, "LABEL": _label, "EXPOSE": _expose, "VOLUME": _volume, "USER": _user, "CMD": _cmd,
    "ENTRYPOINT": _entrypoint, "SHELL": _shell, "STOPSIGNAL": _stopsignal, "MAINTAINER": _maintainer,
    "HEALTHCHECK": _healthcheck,
}  # fmt: skip

#: The instructions :func:`apply` handles.
CONFIG_ONLY = frozenset(_HANDLERS)
