"""The runtime-spec's hooks: programs run at fixed points of a container's life, its state on their stdin.

=================  ==========================================  ==========================
phase              when                                        where (namespaces)
=================  ==========================================  ==========================
prestart           create, namespaces made, before pivot_root   the runtime's (deprecated)
createRuntime      the same moment                              the runtime's
createContainer    the same moment                              the container's
startContainer     start, just before the program               the container's
poststart          start, once the program runs                 the runtime's
poststop           delete                                       the runtime's
=================  ==========================================  ==========================

A hook that fails (or outlives its ``timeout``) before the program runs
fails the container; poststart and poststop failures are only logged, as
the specification says. The child imports this module before it pivots.
"""

from __future__ import annotations

import json
import os
import subprocess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import ContainerError

#: The phases in the order a container meets them.
PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class HookError(ContainerError):
    """A hook failed, timed out or could not be run."""


def run(hooks: dict[str, Any], phase: str, state: dict[str, Any]) -> None:
    """Run the hooks of ``phase`` (from the spec's ``hooks``) in order, each with ``state`` as JSON on stdin."""
    for number, hook in enumerate(hooks.get(phase) or []):
        run_one(hook, phase, number, state)


def run_one(hook: dict[str, Any], phase: str, number: int, state: dict[str, Any]) -> None:
    """Run one hook; raise :class:`HookError` naming the phase, the hook and what went wrong."""
    path = hook["path"]
    args = hook.get("args") or [path]
    env = dict(item.split("=", 1) for item in hook["env"] if "=" in item) if "env" in hook else dict(os.environ)
    where = f"error running {phase} hook #{number}: {path}"
    try:
        done = subprocess.run(args, executable=path, input=json.dumps(state).encode(), env=env, capture_output=True,
                              timeout=hook.get("timeout"), cwd="/", check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise HookError(f"{where}: timeout after {hook['timeout']} s", step=phase) from None
    except OSError as exc:
        raise HookError(f"{where}: {exc.strerror}", step=phase, errno=exc.errno) from exc
    if done.returncode != 0:
        out, err = done.stdout.decode(errors="replace").strip(), done.stderr.decode(errors="replace").strip()
        raise HookError(f"{where}: exit status {done.returncode}, stdout: {out}, stderr: {err}", step=phase)
