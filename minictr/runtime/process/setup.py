"""What the child's steps share: the parsed config (:class:`Setup`), the failure they raise
(:class:`StepFailed`), and a learner's own function run in place of a step (:func:`run_own`).

Imported by the child (:mod:`.child`) before its root changes: standard library only, and the recipe.
"""

from __future__ import annotations

import os

from minictr.runtime.process import recipe
from minictr.runtime.process.channel import Channel

TYPE_CHECKING = False  # the child imports only what it uses: typing is for checkers
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable
    from typing import Any


class StepFailed(Exception):
    """A set-up step failed; carries the step's name for the parent's message."""

    def __init__(self, step: str, message: str, err: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.errno = err


class Setup:
    """What the steps share: the spec, the channel, the overlay plan and where the root is."""

    def __init__(self, config: dict[str, Any], channel: Channel) -> None:
        self.channel = channel
        self.spec: dict[str, Any] = config["spec"]
        self.overlay: dict[str, Any] | None = config.get("overlay")
        self.options: dict[str, Any] = config.get("options", {})
        self.rootfs: str = os.path.abspath(self.spec["root"]["path"])
        self.linux: dict[str, Any] = self.spec.get("linux", {})
        entries = self.linux.get("namespaces", [])
        self.new = {ns["type"] for ns in entries if not ns.get("path")}
        self.joined = {ns["type"]: ns["path"] for ns in entries if ns.get("path")}
        self.root_method = "chroot"
        self.root_note = ""
        self.netlink: socket | None = None
        self.lifeline: int | None = None  # PID 1's end of a pipe only the waiting process writes to (fork_init)
        self.fifo: int | None = None  # the OCI exec fifo, held by O_PATH (handoff.open_exec_fifo)
        self.state: dict[str, Any] = {}  # the OCI state for the container's own hooks (handoff.runtime_hooks)
        self.own = {step: _define_own(step, given) for step, given in self.options.get("own_steps", {}).items()}

    @property
    def own_mounts(self) -> bool:
        """True when this container has a mount namespace of its own (then it pivots)."""
        return "mount" in self.new or "mount" in self.joined


def _define_own(step: str, given: dict[str, str]) -> Callable[..., Any]:
    """A learner's function for ``step``, defined from its source now, while a syntax error can still be told."""
    try:
        return recipe.define(given["name"], given["source"])
    except Exception as exc:  # the learner's code: anything may go wrong
        raise StepFailed(step, f"your {given['name']}() cannot be defined: {type(exc).__name__}: {exc}") from exc


def run_own(setup: Setup, step: str, *args: Any) -> Any:
    """Call the learner's function for ``step`` and return what it returns; what it raises names it and its line."""
    function = setup.own[step]
    try:
        return function(*args)
    except Exception as exc:
        line = innermost_line(exc, f"<{function.__name__}>")
        raise StepFailed(
            step, f"your {function.__name__}(){line} raised {type(exc).__name__}: {exc}", getattr(exc, "errno", None)
        ) from exc


def innermost_line(exc: BaseException, filename: str) -> str:
    """' line N' of the deepest frame in ``filename`` (the traceback module cannot load after chroot)."""
    tb, found = exc.__traceback__, ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            found = f" line {tb.tb_lineno}"
        tb = tb.tb_next
    return found
