"""Is this process privileged enough to build containers? Proven by trying, not guessed from the uid.

A uid of 0 is not enough. A hosted session (a Docker container started
without ``--privileged``, a Kubernetes pod without ``privileged: true``) is
often root yet lacks ``CAP_SYS_ADMIN``, the capability behind ``mount``,
``unshare`` of most namespaces and ``pivot_root``; a seccomp profile or an
LSM may forbid ``unshare`` even when the capability is there. So
:func:`probe` reads the effective capability set from ``/proc/self/status``
and then lets a short-lived child process do what every container start
does first: unshare a mount namespace, make it private and mount a tmpfs.
The child's namespace dies with it, so the host sees nothing. The caller —
``minictr doctor``, a notebook kernel — never unshares or mounts itself.
"""

from __future__ import annotations

import os
import sys

CAP_SYS_ADMIN = 21  # include/uapi/linux/capability.h

#: What a root session without CAP_SYS_ADMIN should ask its host for.
PRIVILEGED_FIX = (
    "run the session privileged: `docker run --privileged`, Kubernetes "
    "`securityContext: {privileged: true}`, or a VM where you are root"
)


def effective_capabilities(status_path: str = "/proc/self/status") -> int:
    """The effective capability set (``CapEff``, a hexadecimal mask) of the process ``status_path`` describes."""
    with open(status_path, encoding="ascii") as handle:
        for line in handle:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    raise ValueError(f"no CapEff line in {status_path}")


def _child() -> None:
    """In the child: unshare a mount namespace, make / private, mount a tmpfs; print "ok" or the failed call."""
    from minictr.kernel import linux

    try:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # nothing below reaches the host
        linux.mount("tmpfs", "/", "tmpfs", 0, "size=64k")
    except OSError as exc:
        print(exc)
        return
    print("ok")


def try_mount_namespace(timeout: float = 10.0) -> str:
    """Let a child process unshare a mount namespace and mount a tmpfs there; "ok" or why it failed."""
    import subprocess

    import minictr

    parent = os.path.dirname(os.path.dirname(os.path.abspath(minictr.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [parent, os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-c", "from minictr.kernel.privilege import _child; _child()"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if done.stdout.strip():
        return done.stdout.strip()
    lines = done.stderr.strip().splitlines()  # the child died before it could say (its last line says why)
    return lines[-1] if lines else f"exit status {done.returncode}"


def probe() -> tuple[bool, str, str]:
    """``(privileged, detail, fix)``: may this process create containers as root, and if not, exactly why."""
    euid = os.geteuid()
    if euid != 0:
        return (
            False,
            f"euid {euid}: containers run rootless (your uid is root inside a user namespace); "
            "no cgroup limits, no bridge networks, no --uidmap, and the notebooks that need root "
            "are skipped",
            "run as root (sudo)",
        )
    caps = effective_capabilities()
    if not caps >> CAP_SYS_ADMIN & 1:
        return (
            False,
            f"euid 0, but CAP_SYS_ADMIN is not in this process's effective capabilities "
            f"(CapEff {caps:016x}), as in a container or pod that is not privileged: "
            "no mounts, no mount/pid/uts/ipc/net namespaces, no pivot_root",
            PRIVILEGED_FIX,
        )
    tried = try_mount_namespace()
    if tried != "ok":
        return (
            False,
            f"euid 0 with CAP_SYS_ADMIN, yet a child process could not make a mount namespace "
            f"and mount a tmpfs in it: {tried} (a seccomp profile or an LSM such as AppArmor "
            "forbids it)",
            PRIVILEGED_FIX + ", or without the seccomp/AppArmor profile",
        )
    return (True, "euid 0 with CAP_SYS_ADMIN; a child process made a mount namespace and mounted a tmpfs in it", "")
