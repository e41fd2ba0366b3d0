"""Multi-stage builds: a Dockerfile cut into stages at each FROM, and which of them a target needs.

ARGs before the first FROM are *global*: they may be used in FROM lines, and
inside a stage only once redeclared (``ARG NAME``), as in Docker. A stage is
named by ``FROM … AS name`` (case-insensitive) or by its number; a later
stage may start FROM it or ``COPY --from`` it. Only the target stage (the
last, or ``--target``) and the stages it needs are built, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from minictr.engine.build.dockerfile import Instruction, Lexer
from minictr.errors import BuildError


@dataclass
class Stage:
    """One FROM and the instructions up to the next."""

    index: int
    name: str
    source: Instruction
    base: str
    base_stage: int | None = None
    platform: str | None = None
    body: list[Instruction] = field(default_factory=list)
    needs: set[int] = field(default_factory=set)


def split_stages(instructions: list[Instruction], build_args: dict[str, str]) -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs (name -> value) and the stages of a parsed Dockerfile."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "ARG" and not stages:
            for word in Lexer(global_args, instruction).words(instruction.value):
                name, equals, default = word.partition("=")
                value = build_args.get(name, default if equals else None)
                if value is not None:
                    global_args[name] = value
            continue
        if instruction.keyword == "FROM":
            stages.append(_stage(instruction, len(stages), stages, global_args))
            continue
        stage = stages[-1]
        stage.body.append(instruction)
        source = instruction.flags.get("from") if instruction.keyword == "COPY" else None
        if source is not None:
            found = _find(stages[:-1], source)
            if found is not None:
                stage.needs.add(found)
            elif source.isdigit() or source.lower() == stage.name:
                raise instruction.error(f"--from={source}: no earlier stage has that name or number")
    return global_args, stages


def _stage(instruction: Instruction, index: int, stages: list[Stage], global_args: dict[str, str]) -> Stage:
    words = Lexer(global_args, instruction).words(instruction.value)
    if len(words) == 3 and words[1].lower() == "as":
        base, name = words[0], words[2].lower()
    elif len(words) == 1:
        base, name = words[0], ""
    else:
        raise instruction.error("is FROM [--platform=P] IMAGE [AS NAME]")
    if not base:
        raise instruction.error("names no image (an ARG without a value?)")
    if name and any(s.name == name for s in stages):
        raise instruction.error(f"the stage name {name!r} is used twice")
    stage = Stage(index, name, instruction, base, platform=instruction.flags.get("platform"))
    stage.base_stage = _find(stages, base)
    if stage.base_stage is not None:
        stage.needs.add(stage.base_stage)
    return stage


def _find(stages: list[Stage], name: str) -> int | None:
    for stage in stages:
        if (stage.name and stage.name == name.lower()) or (name.isdigit() and int(name) == stage.index):
            return stage.index
    return None


def needed(stages: list[Stage], target: Stage) -> list[int]:
    """The indices of the stages ``target`` needs, itself included, in build order."""
    wanted: set[int] = set()
    pending = [target.index]
    while pending:
        index = pending.pop()
        if index not in wanted:
            wanted.add(index)
            pending.extend(stages[index].needs)
    if not stages:
        raise BuildError("no stages")
    return sorted(wanted)
