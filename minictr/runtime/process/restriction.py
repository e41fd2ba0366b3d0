"""What the process may do from here on, in runc's order (notebook 09).

Resource limits and the OOM score, masked paths, the capability bounding set,
seccomp (early when the filter must be loaded before no_new_privs), the user
and its groups, capabilities, no_new_privs, and seccomp at the end. The
mechanisms live in :mod:`minictr.kernel.security`; these are the child's steps.
"""

from __future__ import annotations

import errno
import os

from minictr.kernel import linux
from minictr.kernel.security import capabilities, paths, seccomp
from minictr.runtime.process.setup import Setup, StepFailed, run_own


def _rlim(value: int) -> int:
    """An OCI rlimit value for setrlimit: 2**64-1 (the spec's unlimited) is RLIM_INFINITY."""
    import resource

    return resource.RLIM_INFINITY if value >= (1 << 63) else value


def set_user(setup: Setup) -> None:
    """Become the spec's user: supplementary groups, then gid, then uid (the other way round fails)."""
    user = setup.spec.get("process", {}).get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    if (uid, gid) == (os.getuid(), os.getgid()) and not user.get("additionalGids"):
        return
    os.setgroups(user.get("additionalGids", []))
    os.setgid(gid)
    os.setuid(uid)


def set_rlimits(setup: Setup) -> None:
    """``process.rlimits`` (``--ulimit``): set while the standard library is still in reach."""
    limits = setup.spec.get("process", {}).get("rlimits")
    if limits:
        import resource

        for limit in limits:
            try:
                resource.setrlimit(getattr(resource, limit["type"]), (_rlim(limit["soft"]), _rlim(limit["hard"])))
            except (ValueError, OSError) as exc:  # raising a hard limit needs CAP_SYS_RESOURCE
                raise StepFailed("rlimits", f"error setting rlimit {limit['type']}: {exc}", errno.EPERM) from exc


def set_oom_score_adj(setup: Setup) -> None:
    """``process.oomScoreAdj`` (``--oom-score-adj``): how eagerly the OOM killer picks this container."""
    value = setup.spec.get("process", {}).get("oomScoreAdj")
    if value is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))


def mask_paths(setup: Setup) -> None:
    """``linux.maskedPaths``/``readonlyPaths``: hide /proc/kcore and friends, make /proc/sys read-only."""
    if setup.own_mounts:
        paths.apply(setup.linux.get("maskedPaths", []), setup.linux.get("readonlyPaths", []))


def _load_filter(setup: Setup) -> None:
    """Install the BPF program the parent compiled from ``linux.seccomp`` (or compile it here)."""
    compiled = setup.options.get("seccomp_program")
    program = bytes.fromhex(compiled) if compiled else seccomp.program(setup.linux["seccomp"])
    seccomp.install(program, setup.linux["seccomp"].get("flags"))


def drop_bounding(setup: Setup) -> None:
    """Shrink the bounding set first: it needs CAP_SETPCAP, which the spec may not keep."""
    caps = setup.spec.get("process", {}).get("capabilities")
    if caps is not None and "drop_bounding" in setup.own:
        run_own(setup, "drop_bounding", list(caps.get("bounding", [])))  # a learner's, given the names to keep
    elif caps is not None:
        capabilities.drop_bounding(caps)


def load_seccomp_early(setup: Setup) -> None:
    """Without no_new_privs only CAP_SYS_ADMIN may load a filter: do it while we still have it."""
    if setup.linux.get("seccomp") and not setup.spec.get("process", {}).get("noNewPrivileges"):
        _load_filter(setup)


def keep_capabilities(setup: Setup) -> None:
    """Changing uid away from 0 empties the permitted set unless PR_SET_KEEPCAPS says otherwise."""
    if "capabilities" in setup.spec.get("process", {}):
        capabilities.keep_across_setuid(True)


def set_capabilities(setup: Setup) -> None:
    """``process.capabilities``: effective, permitted, inheritable, ambient (bounding is done)."""
    if "capabilities" in setup.spec.get("process", {}):
        capabilities.keep_across_setuid(False)
        capabilities.apply(setup.spec["process"]["capabilities"])


def no_new_privs(setup: Setup) -> None:
    """``process.noNewPrivileges``: no execve may raise privileges again (setuid bits, file capabilities)."""
    if setup.spec.get("process", {}).get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


def load_seccomp(setup: Setup) -> None:
    """The syscall filter, last, right before exec: everything before it may use any call."""
    if setup.linux.get("seccomp") and setup.spec.get("process", {}).get("noNewPrivileges"):
        _load_filter(setup)
