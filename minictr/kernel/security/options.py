"""Docker's security flags -> the OCI spec: ``--privileged``, ``--cap-add/--cap-drop``, ``--security-opt``.

A default container gets Docker's 14 capabilities, no_new_privileges, the
default seccomp profile (:mod:`.profile`) and the masked and read-only
paths (:mod:`.paths`). ``--privileged`` gives all of it away: every
capability this host has, no filter, no masks, a writable /sys, every
device — the container can take the host over, and minictr says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from minictr.errors import UsageError
from minictr.kernel.security import capabilities, paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

PRIVILEGED_WARNING = (
    "--privileged: every capability, no seccomp filter, no masked paths: this container can take over the host"
)


@dataclass
class Security:
    """What the flags ask for, parsed."""

    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool | None = None  # None: the default (on, unless privileged)
    seccomp: str | None = None  # None: the default profile; "unconfined"; or a profile's path


def parse_security_opts(
    opts: list[str], privileged: bool = False, cap_add: Sequence[str] = (), cap_drop: Sequence[str] = ()
) -> Security:
    """``--security-opt`` values (``no-new-privileges[=true|false]``, ``seccomp=unconfined|FILE``) -> Security."""
    security = Security(privileged, list(cap_add), list(cap_drop))
    for opt in opts:
        key, sep, value = (opt if "=" in opt else opt.replace(":", "=", 1)).partition("=")  # Docker once used ":"
        if key == "no-new-privileges":
            if sep and value not in ("true", "false"):
                raise UsageError(f"--security-opt {opt!r}: no-new-privileges takes true or false")
            security.no_new_privileges = value != "false"
        elif key == "seccomp" and value:
            security.seccomp = value
        else:
            raise UsageError(
                f"--security-opt {opt!r}: minictr knows no-new-privileges[=true|false] and "
                "seccomp=unconfined|PROFILE.json"
            )
    return security


def _profile(source: str) -> dict[str, Any]:
    from minictr.kernel.security.profile import default_profile

    if source == "default":
        return default_profile()
    try:
        with open(source) as f:
            profile: dict[str, Any] = json.load(f)
            return profile
    except OSError as exc:
        raise UsageError(f"--security-opt seccomp={source}: {exc.strerror}") from exc
    except ValueError as exc:
        raise UsageError(f"--security-opt seccomp={source}: not JSON: {exc}") from exc


def capability_names(security: Security, user_namespace: bool = False) -> list[str]:
    """The capabilities the container gets: Docker's default or, privileged, all this host has; then the flags.

    In a user namespace of its own a privileged container gets every capability: they count only there.
    """
    if security.privileged:
        everything = capabilities.NAMES[: capabilities.last_cap() + 1]
        return capabilities.resolve(
            [], security.cap_drop, everything if user_namespace else tuple(capabilities.host_bounding())
        )
    return capabilities.resolve(security.cap_add, security.cap_drop)


def notes(security: Security, user_namespace: bool = False) -> list[str]:
    """What the user should be told: privileged gives the host away; capabilities the host cannot give."""
    warnings = [PRIVILEGED_WARNING] if security.privileged and not user_namespace else []
    if user_namespace:
        return warnings  # the user namespace's own capabilities: the host's bounding set does not limit them
    missing = capabilities.check_available(capabilities.spec_capabilities(capability_names(security)))
    if missing:
        warnings.append(f"this host's bounding set lacks {', '.join(missing)}: the container cannot have them")
    return warnings


def apply(spec: dict[str, Any], security: Security) -> None:
    """Add the security sections to a fully isolated ``spec``."""
    from minictr.kernel.security.profile import to_oci

    user_namespace = any(ns["type"] == "user" for ns in spec["linux"].get("namespaces", []))
    names = capability_names(security, user_namespace)
    spec["process"]["capabilities"] = capabilities.spec_capabilities(names)
    nnp = security.no_new_privileges
    spec["process"]["noNewPrivileges"] = (not security.privileged) if nnp is None else nnp
    source = security.seccomp or ("unconfined" if security.privileged else "default")
    if source != "unconfined":
        seccomp = to_oci(_profile(source), names)
        _check_names(seccomp, source)
        spec["linux"]["seccomp"] = seccomp
    if security.privileged:
        for mount in spec["mounts"]:
            if mount["destination"] == "/sys":
                mount["options"] = [o for o in mount["options"] if o != "ro"]
    else:
        spec["linux"]["maskedPaths"] = list(paths.MASKED)
        spec["linux"]["readonlyPaths"] = list(paths.READONLY)


def _check_names(section: dict[str, Any], source: str) -> None:
    """Fail now, naming the name, rather than in the child: every syscall name must be known to libseccomp."""
    from minictr.kernel.security.seccomp import resolve

    for rule in section["syscalls"]:
        for name in rule["names"]:
            try:
                resolve(name)
            except UsageError as exc:
                raise UsageError(f"--security-opt seccomp={source}: {exc}") from None


#: Docker's --ulimit names -> OCI process.rlimits types
RLIMITS = {
    "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
    "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE",
    "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
    "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK", "as": "RLIMIT_AS",
}  # fmt: skip


def parse_ulimit(text: str) -> dict[str, Any]:
    """Docker's ``--ulimit NAME=SOFT[:HARD]`` (-1: unlimited) -> an OCI ``process.rlimits`` entry."""
    name, _, values = text.partition("=")
    if name not in RLIMITS or not values:
        raise UsageError(f"--ulimit {text!r}: NAME=SOFT[:HARD] with NAME one of {', '.join(RLIMITS)}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft, hard = int(soft_text), int(hard_text or soft_text)
    except ValueError:
        raise UsageError(f"--ulimit {text!r}: the limits must be numbers") from None
    unlimited = (1 << 64) - 1  # RLIM_INFINITY as the spec writes it
    soft, hard = (unlimited if v == -1 else v for v in (soft, hard))
    if soft > hard:
        raise UsageError(f"--ulimit {text!r}: the soft limit is above the hard one")
    return {"type": RLIMITS[name], "soft": soft, "hard": hard}


def parse_tmpfs(text: str) -> dict[str, Any]:
    """Docker's ``--tmpfs PATH[:OPTIONS]`` -> an OCI tmpfs mount (nosuid, nodev, noexec unless the options say)."""
    path, _, options = text.partition(":")
    if not path.startswith("/"):
        raise UsageError(f"--tmpfs {text!r}: the path must be absolute")
    extra = [o for o in options.split(",") if o]
    defaults = [o for o in ("nosuid", "nodev", "noexec") if o.removeprefix("no") not in extra]
    return {"destination": path, "type": "tmpfs", "source": "tmpfs", "options": defaults + extra}


def apply_limits(spec: dict[str, Any], tmpfs: list[str], ulimits: list[str], oom_score_adj: int | None) -> None:
    """``--tmpfs``, ``--ulimit`` and ``--oom-score-adj`` into the spec (mounts, rlimits, oomScoreAdj)."""
    spec["mounts"].extend(parse_tmpfs(t) for t in tmpfs)
    if ulimits:
        spec["process"]["rlimits"] = [parse_ulimit(u) for u in ulimits]
    if oom_score_adj is not None:
        if not -1000 <= oom_score_adj <= 1000:
            raise UsageError(f"--oom-score-adj {oom_score_adj}: choose from -1000 to 1000")
        spec["process"]["oomScoreAdj"] = oom_score_adj


def for_exec(container_spec: dict[str, Any], exec_spec: dict[str, Any]) -> None:
    """``minictr exec``: the new process gets the container's capabilities, no_new_privs and filter."""
    process = container_spec.get("process", {})
    for key in ("capabilities", "noNewPrivileges", "rlimits"):
        if key in process:
            exec_spec["process"][key] = process[key]
    if container_spec.get("linux", {}).get("seccomp"):
        exec_spec["linux"]["seccomp"] = container_spec["linux"]["seccomp"]
