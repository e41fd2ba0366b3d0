"""What both drivers share: where a container's cgroup directories go, files, creation and removal.

A :class:`Manager` owns one container's cgroup: a directory in each
hierarchy (v1: one per mounted hierarchy; v2: one in the unified tree). Its
life, as runc's managers have it::

    plan (paths only; recorded in state.json) -> create(resources) -> add(pid)
    -> stats() / update(resources) ... -> destroy() (kill what is left, rmdir)

The drivers (:mod:`.v1`, :mod:`.v2`) fill in how limits are written and
read. Everything is a plain file operation on cgroupfs: ``mkdir`` makes a
cgroup, writing a pid to ``cgroup.procs`` moves a process, ``rmdir`` removes
an empty cgroup.
"""

from __future__ import annotations

import errno
import os
import signal
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from minictr.kernel.cgroups.stats import Stats

from minictr.errors import CgroupError

#: Where ``minictr run`` puts containers in every hierarchy: ``/minictr/<id>``.
PARENT = "minictr"
#: Where ``minictr-oci`` puts them when the spec names no ``cgroupsPath``: ``/minictr-oci/<id>``.
OCI_PARENT = "minictr-oci"


class Manager:
    """One container's cgroup, on whatever layout this host has (see :func:`minictr.kernel.cgroups.new`)."""

    version = ""

    def __init__(self, dirs: dict[str, str], created: list[str]) -> None:
        #: hierarchy -> absolute directory of the container's cgroup in it
        self.dirs = dict(dirs)
        #: directories this manager made (or may make), deepest first: removed if empty by destroy()
        self.created = list(created)

    # --- recorded in state.json ------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """What state.json keeps, so that a later process can find and remove this cgroup."""
        return {"version": self.version, "dirs": self.dirs, "created": self.created}

    @property
    def path(self) -> str:
        """The main directory: the unified one on v2, the memory (or first) one on v1."""
        return self.dirs.get("unified") or self.dirs.get("memory") or next(iter(self.dirs.values()))

    def exists(self) -> bool:
        """True while every directory of this cgroup is still there (a read after removal gives zeros on v1)."""
        return all(os.path.isdir(d) for d in self.dirs.values())

    # --- life --------------------------------------------------------------------------------

    def create(self, resources: dict[str, Any]) -> None:
        """Make the directories and apply ``resources``; on any error remove what was made and raise."""
        self.check(resources)  # a controller the host lacks: refused before anything exists
        try:
            for attempt in range(5):
                try:
                    self._make()
                    break
                except FileNotFoundError:
                    if attempt == 4:
                        raise
                    time.sleep(0.01)  # another container removed a shared parent meanwhile: again
            self.apply(resources, creating=True)
        except BaseException:
            self.destroy()
            raise

    def _make(self) -> None:
        for directory in self.dirs.values():
            os.makedirs(directory, exist_ok=True)

    def check(self, resources: dict[str, Any]) -> None:
        """Raise :class:`~minictr.errors.UsageError` if this host cannot apply ``resources``."""

    def apply(self, resources: dict[str, Any], creating: bool = False) -> None:
        """Write ``resources`` (OCI ``linux.resources``) into the cgroup files (``creating``: also the device rules)."""
        raise NotImplementedError

    def update(self, resources: dict[str, Any]) -> None:
        """Change the limits of a running container (``minictr update``); refuse a memory limit below its use."""
        limit = resources.get("memory", {}).get("limit")
        if limit:
            from minictr.kernel.cgroups.resources import human

            used = self.stats().memory
            if used > limit:
                raise CgroupError(
                    f"--memory {human(limit)}: below the container's current memory usage ({human(used)})",
                    path=self.path,
                    value=str(limit),
                    flag="--memory",
                )
        self.apply(resources)

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this cgroup, in every hierarchy."""
        for directory in self.dirs.values():
            write(os.path.join(directory, "cgroup.procs"), str(pid))

    def join(self, pid: int) -> None:
        """Make the directories (no limits) and move ``pid`` in, in every hierarchy: for a cgroup other processes
        share, which is never killed. Made again if another process removed it meanwhile (as it went empty).
        """
        for attempt in range(5):
            try:
                self._make()
                self.add(pid)
                return
            except (FileNotFoundError, CgroupError) as exc:
                if attempt == 4 or (isinstance(exc, CgroupError) and exc.errno != errno.ENOENT):
                    raise
                time.sleep(0.01)

    def pids(self) -> list[int]:
        """The processes in this cgroup (``cgroup.procs``)."""
        try:
            return [int(n) for n in read(os.path.join(self.path, "cgroup.procs")).split()]
        except OSError:
            return []

    def stats(self) -> Stats:
        """Memory, CPU, pids and io accounting, read now."""
        raise NotImplementedError

    def oom_kills(self) -> int:
        """How many processes of this cgroup the OOM killer has killed."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL every process in the cgroup, until none is left (forks included)."""
        for _ in range(200):
            if not self.kill_once():
                return
            time.sleep(0.005)

    def kill_once(self) -> int:
        """SIGKILL the processes in the cgroup now; return how many there were."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def destroy(self) -> None:
        """Kill what is left, remove the cgroup directories, then the parents this manager made if empty.

        Safe to call more than once, and from another process after a crash.
        A process that is exiting still holds its cgroup for a moment
        (EBUSY), so removal is retried briefly.
        """
        if any(os.path.isdir(d) for d in self.dirs.values()):
            self.kill()
        for directory in [*self.dirs.values(), *self.created]:
            remove_dir(directory, patient=directory in self.dirs.values())


# --- files -------------------------------------------------------------------------------------


def read(path: str) -> str:
    """A cgroup file's content, stripped."""
    with open(path) as handle:
        return handle.read().strip()


def write(path: str, value: str, flag: str = "") -> None:
    """Write one value to a cgroup file; a refusal is a :class:`CgroupError` naming the file (and flag)."""
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as exc:
        shown = f"{flag}: " if flag else ""
        reason = {
            errno.EINVAL: "the kernel refused the value",
            errno.EBUSY: "the cgroup is busy",
            errno.ENOSPC: "no CPUs or memory nodes to run on",
            errno.ERANGE: "out of range",
            errno.ENOENT: "this host's kernel has no such file",
        }.get(exc.errno or 0, "")
        why = f"{reason} " if reason else ""
        raise CgroupError(
            f"{shown}{why}(writing {value!r} to {path}: {exc.strerror})",
            path=path,
            value=value,
            errno=exc.errno,
            flag=flag,
        ) from exc


def flat(text: str) -> dict[str, int]:
    """A flat keyed file (``key value`` per line: cpu.stat, memory.events) -> dict."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def remove_dir(directory: str, patient: bool = False) -> None:
    """rmdir a cgroup; gone already is fine, not empty (a shared parent) is fine, busy is retried if ``patient``."""
    for _ in range(200 if patient else 1):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY or not patient:
                return
            time.sleep(0.01)  # EBUSY: its last process is still exiting


def own_cgroup(hierarchy: str, proc_cgroup: str = "/proc/self/cgroup") -> str:
    """This process's cgroup in a v1 hierarchy (by controller name) or v2 (``""``), from /proc/self/cgroup."""
    with open(proc_cgroup) as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if hierarchy in controllers.split(",") or (hierarchy == controllers == ""):
                return path
    return "/"


def plan(mount: str, cgroups_path: str, own: str) -> tuple[str, list[str]]:
    """Where ``cgroups_path`` lands under ``mount``, and which of its directories do not exist yet.

    An absolute path is taken from the hierarchy's root (the root of our
    cgroup namespace); a relative one from our own cgroup there, as runc
    does (the OCI spec leaves it to the runtime). The directories that do
    not exist now are the ones this container creates and may remove; the
    default parents, ``minictr`` and ``minictr-oci``, always count as ours
    (each is removed when empty, by whichever container is last: not only
    by the one that happened to make it).
    """
    if ".." in cgroups_path.split("/"):
        raise CgroupError(f"cgroupsPath {cgroups_path!r}: '..' is not allowed", path=mount, value=cgroups_path)
    relative = cgroups_path if cgroups_path.startswith("/") else os.path.join(own, cgroups_path)
    parts = [p for p in os.path.normpath(relative).split("/") if p and p != "."]
    leaf = os.path.join(mount, *parts)
    created = []
    for depth in range(len(parts) - 1, 0, -1):
        ancestor = os.path.join(mount, *parts[:depth])
        if not os.path.isdir(ancestor) or (depth == 1 and parts[0] in (PARENT, OCI_PARENT)):
            created.append(ancestor)
    return leaf, created
