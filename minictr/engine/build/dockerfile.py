"""Reading a Dockerfile: instructions with their line numbers, flags, words and variables.

The maintained ``dockerfile-parse`` package does the line work: comments,
the ``# escape=`` directive, line continuations, the instruction keyword and
its raw value, with the line it starts on. What it leaves raw, this module
reads as Docker's builder does:

- *flags* before the arguments (``COPY --chown=1:1 --from=build …``);
- *exec form* (a JSON array) or *shell form*;
- *words*: quotes, backslashes and variables (``$X``, ``${X}``,
  ``${X:-default}``, ``${X:+alt}``, ``${X-default}``, ``${X+alt}``), expanded
  from ENV and ARG — never inside single quotes, and never for RUN, CMD and
  ENTRYPOINT, whose shell does that itself.

Every error is a :class:`~minictr.errors.BuildError` naming the Dockerfile's
line, so the CLI prints ``Dockerfile:7: …`` and nothing else.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

from minictr.errors import BuildError

#: Every instruction the builder knows (ONBUILD is known, and refused with a reason).
INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
})  # fmt: skip

#: Instructions whose arguments get ENV/ARG variables expanded by the builder (Docker's list).
EXPANDED = frozenset(
    {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "ARG"}
)

_FLAG = re.compile(r"--([a-z][a-z-]*)(?:=(\S*))?(?:\s+|$)")
_HEREDOC = re.compile(r"<<-?\s*[\"']?[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Instruction:
    """One instruction: keyword, raw value (continuations joined), flags, and where it is."""

    keyword: str
    value: str
    line: int  #: 1-based line the instruction starts on
    flags: dict[str, str] = field(default_factory=dict)
    original: str = ""  #: as written (for history and progress)
    filename: str = "Dockerfile"

    def error(self, message: str) -> BuildError:
        """A one-line error naming this instruction's file and line."""
        return BuildError(f"{self.filename}:{self.line}: {self.keyword}: {message}")

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (``["a", "b"]``), or None for the shell form."""
        text = self.value.strip()
        if not text.startswith("["):
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            return None  # Docker, too, reads a malformed array as a shell command
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            return None
        return parsed


def parse(text: str | bytes, filename: str = "Dockerfile") -> list[Instruction]:
    """The instructions of a Dockerfile, checked for what a builder must refuse before it starts."""
    from dockerfile_parse import DockerfileParser

    data = text.encode() if isinstance(text, str) else text
    _check_trailing_continuation(data, filename)
    try:
        parser = DockerfileParser(fileobj=io.BytesIO(data), env_replace=False)
        structure = parser.structure
    except Exception as exc:  # the parser's own errors carry no common base class
        raise BuildError(f"{filename}: cannot be parsed: {exc}") from exc
    instructions = []
    for entry in structure:
        keyword = entry["instruction"].upper()
        if keyword == "COMMENT":
            continue
        line = entry["startline"] + 1
        value = entry["value"].strip()
        if keyword not in INSTRUCTIONS:
            raise BuildError(f"{filename}:{line}: unknown instruction: {entry['instruction']}")
        instruction = Instruction(keyword, value, line, original=entry["content"].strip(), filename=filename)
        if keyword == "ONBUILD":
            raise instruction.error("is not supported: write its instructions into the Dockerfile that needs them")
        if (
            keyword in ("RUN", "COPY", "ADD")
            and _HEREDOC.search(value.split("\n", 1)[0])
            and not instruction.exec_form()
        ):
            raise instruction.error("heredocs (<<EOF) are not supported; write the lines as a shell command")
        if keyword in ("FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"):
            instruction.flags, instruction.value = take_flags(value)
        if not instruction.value and keyword not in ("RUN",):
            raise instruction.error("needs at least one argument")
        if keyword == "RUN" and not instruction.value:
            raise instruction.error("needs a command")
        instructions.append(instruction)
    if not instructions:
        raise BuildError(f"{filename}: the Dockerfile has no instructions")
    first = next((i for i in instructions if i.keyword != "ARG"), None)
    if first is None or first.keyword != "FROM":
        where = first or instructions[-1]
        raise BuildError(
            f"{filename}:{where.line}: {where.keyword}: the first instruction must be FROM "
            "(only ARG may come before it)"
        )
    return instructions


def _check_trailing_continuation(data: bytes, filename: str) -> None:
    """A Dockerfile that ends inside a continued line is malformed (the parser would drop the instruction)."""
    lines = data.decode("utf-8", "replace").splitlines()
    escape = "\\"
    for line in lines:
        match = re.match(r"#\s*escape\s*=\s*(\S)", line.strip())
        if match:
            escape = match.group(1)
            break
        if line.strip() and not line.strip().startswith("#"):
            break
    content = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.strip().startswith("#")]
    if content and content[-1][1].rstrip().endswith(escape):
        raise BuildError(f"{filename}:{content[-1][0]}: the file ends inside a continued line (a trailing {escape})")


def take_flags(value: str) -> tuple[dict[str, str], str]:
    """Split leading ``--name=value`` flags off an instruction's value."""
    flags: dict[str, str] = {}
    rest = value
    while rest.startswith("--"):
        match = _FLAG.match(rest)
        if not match:
            break
        flags[match.group(1)] = match.group(2) if match.group(2) is not None else "true"
        rest = rest[match.end() :]
    return flags, rest.strip()


class Lexer:
    """Docker's word rules: quotes, backslash escapes and ``$`` variables, expanded from ``env``."""

    def __init__(self, env: dict[str, str], where: Instruction | None = None) -> None:
        self.env, self.where = env, where

    def words(self, text: str, expand: bool = True) -> list[str]:
        """Split ``text`` into words (spaces separate words outside quotes)."""
        words: list[str] = []
        current: list[str] = []
        quoted, i = False, 0
        while i < len(text):
            char = text[i]
            if char.isspace():
                if "".join(current) or quoted:  # an unquoted expansion to nothing is no word at all
                    words.append("".join(current))
                current, quoted = [], False
                i += 1
                continue
            quoted = quoted or char in "'\""
            if char == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    raise self._error("an unterminated single quote")
                current.append(text[i + 1 : end])
                i = end + 1
            elif char == '"':
                i = self._double_quoted(text, i + 1, current, expand)
            elif char == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 2
            elif char == "$" and expand:
                value, i = self._variable(text, i)
                current.append(value)
            else:
                current.append(char)
                i += 1
        if "".join(current) or quoted:
            words.append("".join(current))
        return words

    def expand(self, text: str) -> str:
        """``text`` with variables expanded and quotes removed, spaces kept (one word, as WORKDIR reads it)."""
        return " ".join(self.words(text)) if text.strip() else ""

    def _double_quoted(self, text: str, i: int, out: list[str], expand: bool) -> int:
        while i < len(text):
            char = text[i]
            if char == '"':
                return i + 1
            if char == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$':
                out.append(text[i + 1])
                i += 2
            elif char == "$" and expand:
                value, i = self._variable(text, i)
                out.append(value)
            else:
                out.append(char)
                i += 1
        raise self._error("an unterminated double quote")

    def _variable(self, text: str, i: int) -> tuple[str, int]:
        """Expand the variable at ``text[i] == '$'``; return its value and where reading goes on."""
        if i + 1 < len(text) and text[i + 1] == "{":
            end = text.find("}", i + 2)
            if end < 0:
                raise self._error("a ${ without its closing }")
            body = text[i + 2 : end]
            match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])(.*))?", body, re.S)
            if not match:
                raise self._error(f"bad substitution ${{{body}}}")
            name, operator, word = match.groups()
            return self._apply(name, operator, word or ""), end + 1
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])
        if not match:
            return "$", i + 1
        return self.env.get(match.group(0), ""), i + 1 + match.end()

    def _apply(self, name: str, operator: str | None, word: str) -> str:
        value = self.env.get(name)
        word = self.expand(word) if word else ""
        if operator == ":-":
            return value if value else word
        if operator == "-":
            return value if value is not None else word
        if operator == ":+":
            return word if value else ""
        if operator == "+":
            return word if value is not None else ""
        return value or ""

    def _error(self, what: str) -> BuildError:
        if self.where is None:
            return BuildError(what)
        return self.where.error(what)


def key_values(words: list[str], where: Instruction, legacy: bool = True) -> list[tuple[str, str]]:
    """``K=V`` words as pairs (ENV, LABEL); ENV's old form ``K V with spaces`` too when ``legacy``."""
    if words and "=" not in words[0] and legacy:
        if len(words) < 2:
            raise where.error(f"{words[0]} needs a value (NAME=VALUE)")
        return [(words[0], " ".join(words[1:]))]
    pairs = []
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise where.error(f"{word!r} is not NAME=VALUE")
        pairs.append((name, value))
    return pairs


def json_list(instruction: Instruction, what: str) -> list[str]:
    """The exec form an instruction must have (SHELL), or a one-line error."""
    form = instruction.exec_form()
    if form is None or not form:
        raise instruction.error(f'{what} must be a JSON array of strings, e.g. ["/bin/sh", "-c"]')
    return form


def describe(instruction: Instruction) -> dict[str, Any]:
    """A stable description of an instruction (part of the cache key)."""
    return {"keyword": instruction.keyword, "flags": sorted(instruction.flags.items()), "value": instruction.value}
