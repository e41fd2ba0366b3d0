"""``minictr build``: a Dockerfile into an OCI image in the store, step by step, with a layer cache.

A build is a list of *stages* (one per FROM); the target stage and the
stages it needs (its FROM, its ``COPY --from``) are built, each from its base:

- config-only instructions (ENV, LABEL, CMD…) change the config and add an
  ``empty_layer`` history entry (:mod:`.instructions`);
- RUN runs in a real minictr container of the image so far
  (:func:`minictr.engine.container.run`, build arguments in its environment); the
  container's overlay *upper* directory — what it changed, whiteouts
  included — becomes the step's layer, written by commit's code;
- COPY/ADD (and a WORKDIR that must make its directory) lay out their files
  in a staging directory that becomes the layer (:mod:`.copying`).

The image a stage grows is a :class:`~.image_state.State`. Every layer
step is first looked up in the cache (:mod:`.cache`): a hit reuses the layer
and its time without running anything, so a rebuild with nothing changed
gives the very same image. Progress is one line per step,
``STEP n/N: INSTRUCTION``, ``CACHED`` on a hit, RUN's output streamed between.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from minictr import paths
from minictr.engine.build import copying
from minictr.engine.build.cache import LayerCache, chain
from minictr.engine.build.context import is_directory_in
from minictr.engine.build.dockerfile import Instruction, Lexer, describe, parse
from minictr.engine.build.image_state import EPOCH, State, now
from minictr.engine.build.instructions import CONFIG_ONLY, apply
from minictr.engine.build.stages import Stage, needed, split_stages
from minictr.engine.container_root import get_image, image_store, overlay_supported, unpacked_rootfs
from minictr.engine.images.commit import store_image, store_layer
from minictr.engine.images.store import Image
from minictr.errors import BuildError, ContainerError, HostError, MinictrError
from minictr.runtime.state import alive, start_time


@dataclass
class BuildOptions:
    """What ``minictr build`` was asked for, beyond the context."""

    tags: list[str] = field(default_factory=list)
    dockerfile: str | None = None  #: default: CONTEXT/Dockerfile
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str | None = None  #: for RUN: bridge (the default, as Docker), none, host
    platform: str | None = None


class Builder:
    """One build: the store, the cache, the context, and the stages built so far."""

    def __init__(self, context: str, options: BuildOptions, data_root: str | None, state_root: str | None,
                 progress: Callable[[str], None]) -> None:  # fmt: skip
        self.context, self.options, self.progress = context, options, progress
        self.data_root, self.state_root = data_root, state_root
        self.store = image_store(data_root)
        self.cache = LayerCache(self.store)
        self.built: dict[int, tuple[State, Image]] = {}
        self.step, self.total = 0, 0
        self.consumed: set[str] = set()
        self.global_args: dict[str, str] = {}
        self.stage_names: dict[int, str] = {}
        self.work = ""
        self.capture = False  #: RUN output through ``progress`` rather than straight to this process's stdout

    # --- stages ---------------------------------------------------------------------------------------

    def build(self, instructions: list[Instruction]) -> Image:
        """Build the target stage (and what it needs); tag it; return it."""
        global_args, stages = split_stages(instructions, self.options.build_args)
        self.global_args = global_args
        self.consumed.update(set(global_args) & set(self.options.build_args))  # used by FROM lines
        self.stage_names = {stage.index: stage.name for stage in stages}
        target = self._target(stages)
        order = needed(stages, target)
        self.total = sum(1 + len(stages[i].body) for i in order)
        for index in order:
            self._build_stage(stages[index])
        state, image = self.built[target.index]
        unused = sorted(set(self.options.build_args) - self.consumed)
        if unused:
            self.progress(f"warning: build arguments never used: {', '.join(unused)}")
        for tag in self.options.tags:
            image = store_image(self.store, state.final(), state.layers, tag)
        return image

    def _target(self, stages: list[Stage]) -> Stage:
        if not self.options.target:
            return stages[-1]
        for stage in stages:
            if stage.name == self.options.target.lower():
                return stage
        raise BuildError(f"--target {self.options.target}: no stage has that name (FROM … AS NAME)")

    def _build_stage(self, stage: Stage) -> None:
        state = self._from(stage)
        for instruction in stage.body:
            self._instruction(state, instruction)
        self.built[stage.index] = (state, store_image(self.store, state.final(), state.layers))

    def _from(self, stage: Stage) -> State:
        self._announce(stage.source)
        base = stage.base
        if base.lower() == "scratch":
            from minictr.engine.images import oci
            from minictr.runtime.spec import DEFAULT_PATH

            config: dict[str, Any] = {
                **oci.host_platform(),
                "config": {"Env": [DEFAULT_PATH]},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
            return State(config, [], chain("scratch", config["architecture"]), EPOCH)
        if stage.base_stage is not None:
            built, _image = self.built[stage.base_stage]
            state = State(copy.deepcopy(built.config), list(built.layers), built.key, built.created)
            state.settings.args = {}
            return state
        try:
            image = get_image(
                self.store, base, stage.platform or self.options.platform, "always" if self.options.pull else "missing"
            )
        except (MinictrError, OSError) as exc:
            raise stage.source.error(f"{base}: {exc}") from None
        config = copy.deepcopy(image.config)
        if (config.get("config") or {}).get("OnBuild"):
            raise stage.source.error(f"{base} has ONBUILD triggers, which minictr build does not run")
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        config.setdefault("history", [])
        return State(config, image.layers, chain(image.manifest_digest, "FROM"), config.get("created") or EPOCH)

    def _announce(self, instruction: Instruction, cached: bool = False) -> None:
        self.step += 1
        text = " ".join(instruction.original.split())
        self.progress(f"STEP {self.step}/{self.total}: {text}{' CACHED' if cached else ''}")

    # --- instructions ---------------------------------------------------------------------------------

    def _instruction(self, state: State, instruction: Instruction) -> None:
        keyword = instruction.keyword
        if keyword in CONFIG_ONLY:
            self._announce(instruction)
            shown = apply(state.settings, instruction)
            state.key = chain(state.key, [describe(instruction), shown])
            state.record(shown)
        elif keyword == "ARG":
            self._announce(instruction)
            self._arg(state, instruction)
        elif keyword == "RUN":
            self._run(state, instruction)
        elif keyword == "WORKDIR":
            self._workdir(state, instruction)
        else:
            self._copy(state, instruction)

    def _arg(self, state: State, instruction: Instruction) -> None:
        shown = []
        for word in Lexer({**self.global_args, **state.settings.args}, instruction).words(instruction.value):
            name, equals, default = word.partition("=")
            if name in self.options.build_args:
                value: str | None = self.options.build_args[name]
                self.consumed.add(name)
            else:
                value = default if equals else self.global_args.get(name)
            if value is not None:
                state.settings.args[name] = value
            shown.append(f"{name}={value}" if value is not None else name)
        state.key = chain(state.key, ["ARG", shown])
        state.record("ARG " + " ".join(shown))

    def _run(self, state: State, instruction: Instruction) -> None:
        unsupported = sorted(set(instruction.flags) - {"network"})
        if unsupported:
            raise instruction.error(f"--{unsupported[0]}: RUN options other than --network are not supported")
        network = instruction.flags.get("network", "default")
        if network not in ("default", "none", "host"):
            raise instruction.error(f"--network={network}: choose default, none or host")
        argv = state.settings.command(instruction)
        args = dict(state.settings.args)
        self.consumed.update(args)
        shown = (
            "RUN "
            + (f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in sorted(args.items())) + " " if args else "")
            + " ".join(argv)
        )
        key = chain(state.key, {"RUN": argv, "args": sorted(args.items()), "network": network})
        run_network = self.options.network if network == "default" else network
        self._layer_step(
            state, instruction, key, shown, lambda: self._execute(state, instruction, argv, args, run_network)
        )

    def _execute(
        self, state: State, instruction: Instruction, argv: list[str], args: dict[str, str], network: str | None
    ) -> str:
        from minictr.engine.container import run
        from minictr.engine.run_options import RunOptions

        upper = os.path.join(self.work, f"upper-{self.step}")
        defined = state.settings.env
        options = RunOptions(
            env=[f"{k}={v}" for k, v in args.items() if k not in defined], entrypoint="", network=network,
            workdir=state.settings.values.get("WorkingDir") or None, keep_upper=upper,
        )  # fmt: skip
        try:
            finished = run(
                state.image(), argv, options, data_root=self.data_root, state_root=self.state_root, capture=self.capture
            )
        except ContainerError as exc:
            raise instruction.error(str(exc)) from None
        for line in (finished.stdout + finished.stderr).decode("utf-8", "replace").splitlines():
            self.progress(line)  # captured (a notebook, or a caller's progress): shown when the step ends
        if finished.exit_code != 0:
            raise instruction.error(f"the command returned a non-zero code: {finished.exit_code}")
        return upper

    def _workdir(self, state: State, instruction: Instruction) -> None:
        path = state.settings.lexer(instruction).expand(instruction.value)
        path = os.path.normpath(os.path.join(state.settings.values.get("WorkingDir") or "/", path))
        state.settings.values["WorkingDir"] = path
        lowers = self._lowers(state)
        if is_directory_in(lowers, path):
            self._announce(instruction)
            state.key = chain(state.key, ["WORKDIR", path])
            state.record(f"WORKDIR {path}")
            return
        key = chain(state.key, {"WORKDIR": path})
        self._layer_step(
            state,
            instruction,
            key,
            f"WORKDIR {path}",
            lambda: self._staged(lambda d: copying.make_directory(d, path, lowers)),
        )

    def _copy(self, state: State, instruction: Instruction) -> None:
        source_root = None
        if "from" in instruction.flags:
            source_root = self._source_root(instruction)
        lowers = self._lowers(state)
        plan = copying.plan(instruction, state.settings, self.context, source_root, lowers, self.work)
        description = {"copy": plan.shown, "flags": sorted(instruction.flags.items()), "sources": plan.digest}
        self._layer_step(state, instruction, chain(state.key, description), plan.shown,
                         lambda: self._staged(lambda d: copying.stage(plan, d, lowers)))  # fmt: skip

    def _source_root(self, instruction: Instruction) -> str:
        """The files ``COPY --from=NAME`` reads: a stage built before, or an image (flattened once)."""
        name = instruction.flags["from"]
        for index, (_state, image) in self.built.items():
            if self.stage_names.get(index) == name.lower() or str(index) == name:
                return unpacked_rootfs(self.store, image)
        try:
            image = get_image(self.store, name, self.options.platform)
        except (MinictrError, OSError) as exc:
            raise instruction.error(f"--from={name}: {exc}") from None
        return unpacked_rootfs(self.store, image)

    def _lowers(self, state: State) -> list[str]:
        from minictr.engine.images.layers import unpack_layers

        return unpack_layers(self.store, state.image())

    def _staged(self, fill: Callable[[str], None]) -> str:
        directory = os.path.join(self.work, f"staging-{self.step}")
        os.makedirs(directory)
        os.chmod(directory, 0o755)
        fill(directory)
        return directory

    def _layer_step(
        self, state: State, instruction: Instruction, key: str, shown: str, produce: Callable[[], str]
    ) -> None:
        """A step that makes a layer: from the cache when it has the key, else made now and remembered."""
        entry = None if self.options.no_cache else self.cache.get(key)
        self._announce(instruction, cached=entry is not None)
        if entry is None:
            directory = produce()
            entry = {"created": now(), "created_by": shown}
            if os.listdir(directory):
                entry["layer"], entry["diff_id"] = store_layer(self.store, directory)
            shutil.rmtree(directory, ignore_errors=True)
            self.cache.put(key, entry)
        state.key = key
        state.record(shown, entry)


def build(context: str, options: BuildOptions | None = None, *, data_root: str | None = None,
          state_root: str | None = None, progress: Callable[[str], None] | None = None) -> Image:  # fmt: skip
    """Build the Dockerfile in ``context`` (or ``options.dockerfile``) into the store; return the image.

    ``progress`` receives one line per step (default: print them). RUN's
    output goes to this process's stdout and stderr as it comes; with a
    ``progress`` of the caller's, or where stdout is not a file (a notebook),
    it is captured and passed to ``progress`` line by line when the step ends.
    """
    options = options or BuildOptions()
    capture = progress is not None or not _stdout_is_a_file()
    progress = progress or (lambda line: print(line, flush=True))
    if os.geteuid() != 0 or not overlay_supported():
        raise HostError("minictr build needs root and overlayfs (each RUN's changes are its overlay's upper directory)")
    if not os.path.isdir(context):
        raise BuildError(f"the build context {context} is not a directory")
    dockerfile = options.dockerfile or os.path.join(context, "Dockerfile")
    try:
        with open(dockerfile, "rb") as handle:
            instructions = parse(handle.read(), os.path.basename(dockerfile))
    except OSError as exc:
        raise BuildError(f"cannot read the Dockerfile {dockerfile}: {exc.strerror}") from None
    started = time.monotonic()
    builder = Builder(context, options, data_root, state_root, progress)
    with _work_directory(state_root) as work, builder.store.in_use():
        builder.work, builder.capture = work, capture
        image = builder.build(instructions)
    progress(f"Successfully built {image.id[7:19]} in {time.monotonic() - started:.2f} s")
    for tag in options.tags:
        progress(f"Successfully tagged {tag}")
    return image


def _stdout_is_a_file() -> bool:
    """True when this process's stdout is file descriptor 1 (a terminal, a pipe), not a notebook's stream."""
    import sys

    try:
        return sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _work_directory(state_root: str | None) -> Iterator[str]:
    """``<state root>/builds/<pid>-<start>``: the steps' upper and staging directories (the upper's filesystem).

    Directories of builds whose process is gone (``kill -9``) are removed first.
    """
    base = os.path.join(state_root or paths.state_root(), "builds")
    os.makedirs(base, exist_ok=True)
    for name in os.listdir(base):
        pid, _, start = name.partition("-")
        if not (pid.isdigit() and alive(int(pid), start)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    work = os.path.join(base, f"{os.getpid()}-{start_time(os.getpid())}")
    os.makedirs(work, exist_ok=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
