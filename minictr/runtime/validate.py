"""Checking an OCI runtime-spec config before anything acts on it.

The runtime calls :func:`validate` on every spec before it spawns a process
(:func:`minictr.runtime.process.parent.spawn`), so a bad value is refused in the
caller with the field's name instead of failing half-way through the
container's set-up. Every problem found is listed in one
:class:`~minictr.errors.SpecError`::

    >>> validate({"ociVersion": "1.2.0", "root": {"path": "rootfs"},
    ...           "linux": {"namespaces": [{"type": "foo"}]}}, run=False)
    Traceback (most recent call last):
    ...
    minictr.errors.SpecError: invalid OCI runtime spec: linux.namespaces[0].type: unknown namespace "foo"

The rules are the runtime specification's (config.md, config-linux.md) and a
few of runc's (a hostname needs a new uts namespace, id mappings a user
namespace). This module checks the spec's own fields; the Linux section's
checks live in :mod:`minictr.runtime.validate_linux`. Nothing here touches the host.
"""

from __future__ import annotations

import re

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import SpecError
from minictr.runtime.validate_fields import Checker, child, show
from minictr.runtime.validate_linux import check_linux, namespace_entries

#: The capabilities by number (linux/capability.h): ``CAPABILITIES[21] == "CAP_SYS_ADMIN"``.
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
    "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip

#: The capability sets of ``process.capabilities``.
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

#: The resources ``process.rlimits`` may limit (setrlimit(2)).
RLIMITS = frozenset({
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS", "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING", "RLIMIT_STACK",
})  # fmt: skip

# SemVer 2.0.0 with major 1: what ociVersion must be for a runtime of spec 1.x ("1.0.2-dev" too)
_VERSION = re.compile(r"1\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")

# an environment variable's name: anything but "=" and NUL, not empty (POSIX leaves the rest to applications)
_ENV = re.compile(r"[^=\x00]+=[^\x00]*")


def validate(spec: Any, *, run: bool = True) -> None:
    """Raise :class:`SpecError` listing every problem of ``spec``; return None when it has none.

    ``run`` says the spec will be run (``process.args`` must name a program);
    a spec only being created may leave its process out.
    """
    found = problems(spec, run=run)
    if found:
        raise SpecError(found)


def problems(spec: Any, *, run: bool = True) -> list[str]:
    """Every problem of ``spec``, each ``field.path: what is wrong`` (empty when it is valid)."""
    check = Checker()
    if check.typed(spec, "config", dict) is None:
        return check.problems
    _check_version(check, spec)
    root = check.member(spec, "root", "", dict, required=True)
    if root is not None:
        if check.member(root, "path", "root", str, required=True) == "":
            check.add("root.path", "must not be empty")
        check.member(root, "readonly", "root", bool)
    process = check.member(spec, "process", "", dict, required=run)
    if process is not None:
        _check_process(check, process, run)
    _check_mounts(check, spec)
    _check_names(check, spec)
    check.string_map(spec, "annotations", "")
    linux = check.member(spec, "linux", "", dict)
    if linux is not None:
        check_linux(check, linux)
    return check.problems


def _check_version(check: Checker, spec: dict[str, Any]) -> None:
    version = check.member(spec, "ociVersion", "", str, required=True)
    if version is not None and not _VERSION.fullmatch(version):
        check.add("ociVersion", f"{show(version)} is not a 1.x version (1.MINOR.PATCH)")


def _check_names(check: Checker, spec: dict[str, Any]) -> None:
    """hostname and domainname: strings, set only in a new uts namespace (else the host's would change)."""
    entries = namespace_entries(spec.get("linux"))
    new_uts = any(entry.get("type") == "uts" and not entry.get("path") for _, entry in entries)
    for key in ("hostname", "domainname"):
        if check.member(spec, key, "", str) and not new_uts:
            check.add(key, "needs a new uts namespace (linux.namespaces creates none)")


def _check_process(check: Checker, process: dict[str, Any], run: bool) -> None:
    """The program and how it runs: args, cwd, env, user, rlimits, capabilities."""
    check.array(process, "args", "process", str)
    if run and "args" not in process:
        check.add("process.args", "required")
    elif run and process["args"] == []:
        check.add("process.args", "must name the program to run (it is empty)")
    cwd = check.member(process, "cwd", "process", str, required=True)
    if cwd is not None:
        check.absolute(cwd, "process.cwd")
    for where, entry in check.array(process, "env", "process", str):
        if not _ENV.fullmatch(entry):
            check.add(where, f"{show(entry)} is not NAME=VALUE")
    for key in ("terminal", "noNewPrivileges"):
        check.member(process, key, "process", bool)
    for key in ("apparmorProfile", "selinuxLabel"):
        check.member(process, key, "process", str)
    check.integer(process, "oomScoreAdj", "process", -1000, 1000)
    user = check.member(process, "user", "process", dict)
    if user is not None:
        _check_user(check, user)
    _check_rlimits(check, process)
    _check_capabilities(check, process)


def _check_user(check: Checker, user: dict[str, Any]) -> None:
    for key in ("uid", "gid"):
        check.integer(user, key, "process.user", 0, required=True)
    check.integer(user, "umask", "process.user", 0, 0o777)
    for where, gid in check.array(user, "additionalGids", "process.user", int):
        if gid < 0:
            check.add(where, f"must be an integer >= 0, not {gid}")


def _check_rlimits(check: Checker, process: dict[str, Any]) -> None:
    """Known RLIMIT_* types, each once, with soft <= hard."""
    seen: set[str] = set()
    for where, entry in check.objects(process, "rlimits", "process"):
        check.unique_type(entry, where, RLIMITS, seen, "resource limit")
        soft = check.integer(entry, "soft", where, 0, required=True)
        hard = check.integer(entry, "hard", where, 0, required=True)
        if soft is not None and hard is not None and soft > hard:
            check.add(where, f"soft limit {soft} is above the hard limit {hard}")


def _check_capabilities(check: Checker, process: dict[str, Any]) -> None:
    capabilities = check.member(process, "capabilities", "process", dict)
    for name in capabilities or {}:
        path = child("process.capabilities", name)
        if name not in CAPABILITY_SETS:
            check.add(path, f"unknown capability set (known: {', '.join(CAPABILITY_SETS)})")
            continue
        for where, capability in check.array(capabilities, name, "process.capabilities", str):
            if capability not in CAPABILITIES:
                check.add(where, f"unknown capability {show(capability)}")


def _check_mounts(check: Checker, spec: dict[str, Any]) -> None:
    """Each mount: an absolute destination; type and source strings; options an array of strings."""
    for where, mount in check.objects(spec, "mounts", ""):
        destination = check.member(mount, "destination", where, str, required=True)
        if destination is not None:
            check.absolute(destination, child(where, "destination"))
        check.member(mount, "type", where, str)
        check.member(mount, "source", where, str)
        check.array(mount, "options", where, str)
