"""``exec``: another program in a running container, as ``docker exec`` and ``runc exec`` do.

The runtime's child joins the container's namespaces (and its cgroup) and
root instead of making new ones (``spawn(join=PID)``), then takes the
process settings of the spec the container was started with, changed by
``exec``'s options (user, environment, working directory, terminal).
"""

from __future__ import annotations

import os
import subprocess

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any


from minictr.engine.console import spawn_streams
from minictr.engine.container import Finished
from minictr.engine.container_dir import find
from minictr.engine.container_spec import merge_env
from minictr.runtime.process.parent import spawn
from minictr.runtime.spec import default_spec


def exec_in(
    container: str,
    command: list[str],
    *,
    env: list[str] | None = None,
    workdir: str | None = None,
    state_root: str | None = None,
    capture: bool = False,
    stdio: dict[str, Any] | None = None,
    terminal: bool = False,
    user: str | None = None,
    detach: bool = False,
) -> Finished:
    """Run ``command`` inside the running container ``container`` (``minictr exec``).

    ``stdio`` and ``terminal`` as for :func:`run` (``exec -i``/``-t``).
    ``user`` (``-u NAME|UID[:GROUP|GID]``) is looked up in the container's own
    /etc/passwd and /etc/group. ``detach`` (``-d``) returns once the program
    runs; its output is discarded, as Docker does.
    """
    state = find(container, state_root)
    exec_spec = _exec_spec(state, command, env, workdir, user)
    pipe = subprocess.PIPE if capture else None
    place = None
    if state.get("cgroup") and os.geteuid() == 0:
        from minictr.kernel import cgroups

        place = cgroups.load(state["cgroup"]).add  # an exec'd program is limited like the rest
    streams, console = spawn_streams(stdio) if stdio is not None else ({"stdout": pipe, "stderr": pipe}, None)
    if detach:
        streams, console = dict.fromkeys(("stdin", "stdout", "stderr"), subprocess.DEVNULL), None
    exec_spec["process"]["terminal"] = terminal and not detach
    process = spawn(exec_spec, **streams, die_with_parent=not detach, join=state["pid"], cgroup=place)
    if console is not None:
        try:
            console.receive()  # the pty the program gets, from the container's devpts
        except BaseException:
            process.kill()
            raise
    if detach:
        process.start()
        return Finished(0, id=state["id"])
    from minictr.engine.console import forward_signals

    with forward_signals(process.kill):
        process.start()
        out, err, code = process.communicate()
    return Finished(code, out, err, state["id"])


def _exec_spec(state: dict[str, Any], command: list[str], env: list[str] | None, workdir: str | None,
               user: str | None) -> dict[str, Any]:  # fmt: skip
    """The spec of a program run in the container of ``state``: its root, its user and environment (and a ``user``
    looked up in its own /etc files), its security settings.
    """
    spec = state["spec"]
    process_spec = spec.get("process", {})
    ids = process_spec.get("user", {})
    uid, gid, extra = ids.get("uid", 0), ids.get("gid", 0), ids.get("additionalGids", [])
    if user:
        from minictr.engine.images.runconfig import resolve_user
        from minictr.engine.safe_tree import read_inside

        uid, gid, extra, _home = resolve_user(user, lambda path: read_inside(f"/proc/{state['pid']}/root", path))
    exec_spec = default_spec(
        f"/proc/{state['pid']}/root", command, env=merge_env(process_spec.get("env", []), env or []),
        cwd=workdir or process_spec.get("cwd", "/"), uid=uid, gid=gid,
    )  # fmt: skip
    if extra:
        exec_spec["process"]["user"]["additionalGids"] = extra
    from minictr.kernel.security.options import for_exec

    for_exec(spec, exec_spec)
    return exec_spec
