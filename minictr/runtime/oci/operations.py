"""What one does to a container that exists: exec, ps, pause/resume, update, events, list.

``exec`` enters the container's namespaces through the same child as
``create`` (``join``), in its cgroup; ``pause``/``resume`` use the cgroup
freezer (v1 ``freezer.state``, v2 ``cgroup.freeze``).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError
from minictr.runtime.oci import lifecycle, store
from minictr.runtime.oci.freezer import freeze
from minictr.runtime.state import Status


def exec_process(
    root: str,
    container_id: str,
    process: dict[str, Any],
    *,
    detach: bool = False,
    pid_file: str | None = None,
    console_socket: str | None = None,
    preserve_fds: int = 0,
) -> int:
    """Run ``process`` (an OCI ``process`` object) in the running container; its exit status, or 0 when detached."""
    from minictr.runtime.process import spawn

    state = store.load(root, container_id)
    if state.status not in (Status.CREATED, Status.RUNNING):  # runc joins a created container's namespaces too
        raise UsageError(f"cannot exec in a {state.status.value} container")
    if process.get("terminal") and not console_socket:
        raise UsageError("cannot allocate tty if runc will detach without setting console socket")
    spec = lifecycle.container_spec(state)
    spec.pop("hooks", None)
    spec["process"] = process
    place = None
    if state.cgroup and os.geteuid() == 0:
        from minictr.kernel import cgroups

        place = cgroups.load(state.cgroup).add
    console = lifecycle._connect(console_socket) if console_socket else None
    preserved = tuple(range(3, 3 + preserve_fds))
    try:
        child = spawn(spec, die_with_parent=not detach, join=state.pid, cgroup=place, extra={"leave_init": detach},
                      pass_fds=preserved, console=console.fileno() if console else None)  # fmt: skip
    finally:
        if console is not None:
            console.close()
    child.start()
    if pid_file:
        lifecycle.write_pid_file(pid_file, child.pid)
    return 0 if detach else child.wait()


def exec_args(
    root: str,
    container_id: str,
    args: list[str],
    *,
    env: list[str],
    cwd: str | None,
    user: str | None,
    tty: bool,
    caps: list[str],
) -> dict[str, Any]:
    """The ``process`` for ``exec ID CMD…``: the container's own, with these args and the flags' changes."""
    state = store.load(root, container_id)
    process = dict(lifecycle.container_spec(state).get("process") or {})
    process["args"] = args
    process["terminal"] = tty
    process["env"] = _merge_env(process.get("env") or [], env)
    if cwd:
        process["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"--user {user}: expected UID[:GID] as numbers")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if caps:
        sets = dict(process.get("capabilities") or {})
        for name in ("bounding", "effective", "permitted"):
            sets[name] = sorted(set(sets.get(name) or []) | set(caps))
        process["capabilities"] = sets
    return process


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    """``base`` with the variables of ``extra`` set (a later NAME=VALUE wins)."""
    merged = {item.split("=", 1)[0]: item for item in base}
    merged.update({item.split("=", 1)[0]: item for item in extra})
    return list(merged.values())


def ps(root: str, container_id: str) -> list[int]:
    """Host pids of the container's processes."""
    return lifecycle.processes(store.load(root, container_id))


def command_line(pid: int) -> str:
    """A process's command line, for the ps table."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def pause(root: str, container_id: str, paused: bool) -> None:
    """``pause`` (``paused``) or ``resume`` the container; a created one resumes to created, as in runc."""
    state = store.load(root, container_id)
    if paused and state.status not in (Status.CREATED, Status.RUNNING):
        raise UsageError("container not running")  # runc's words, as for kill
    if not paused and state.status is not Status.PAUSED:
        raise UsageError("container not paused")
    if paused:
        state.extra["paused_from"] = state.status.value
        new = state.moved_to(Status.PAUSED)
    else:
        new = state.moved_to(Status(state.extra.pop("paused_from", Status.RUNNING.value)))
    freeze(state, paused)
    store.save(root, new)


def update(root: str, container_id: str, resources: dict[str, Any]) -> None:
    """Change the container's cgroup limits (OCI ``linux.resources``)."""
    state = store.load(root, container_id)
    if state.status is Status.STOPPED:
        raise UsageError(f"container {container_id} is stopped")
    if not state.cgroup:
        raise UsageError(f"container {container_id} has no cgroup: nothing to update")
    from minictr.kernel import cgroups

    cgroups.load(state.cgroup).update(resources)
    spec = state.spec or {}
    linux = spec.setdefault("linux", {})
    merged = linux.setdefault("resources", {})
    for key, value in resources.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    store.save(root, state)


def stats_event(root: str, container_id: str) -> dict[str, Any]:
    """One ``events --stats`` record: ``{"type": "stats", "id", "data": {...}}``."""
    state = store.load(root, container_id)
    if not state.cgroup:
        raise UsageError(f"container {container_id} has no cgroup: no statistics")
    from minictr.kernel import cgroups

    readings = cgroups.load(state.cgroup).stats()
    return {"type": "stats", "id": container_id, "data": readings.as_dict()}


def listing(root: str) -> list[dict[str, Any]]:
    """``list --format json``: one object per container."""
    out = []
    for state in store.all_states(root):
        oci = state.oci_state(store.bundle(state))
        owner = "root" if os.geteuid() == 0 else str(os.geteuid())
        out.append({"ociVersion": oci["ociVersion"], "id": state.id, "pid": oci.get("pid", 0), "status": oci["status"],
                    "bundle": oci["bundle"], "rootfs": (state.spec or {}).get("root", {}).get("path", ""),
                    "created": state.extra.get("created", ""), "owner": owner})  # fmt: skip
    return out


def dump(value: Any) -> str:
    """JSON as runc prints it."""
    return json.dumps(value)
