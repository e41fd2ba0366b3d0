"""09 · Security: capability tables, the escape attempts, the seccomp rule behind a refusal
(the exercise, ``drop_bounding``, is in :mod:`.step_exercises`)."""

from __future__ import annotations

import subprocess

from minictr.kernel.security import capabilities
from minictr.tutorial.common import MINICTR

#: Escape attempts a busybox shell can make: name -> command. Each prints nothing when it worked.
#: None of them changes the host: files are opened for appending and closed unwritten, the module is
#: garbage, the mount vanishes with the container.
ATTEMPTS = {
    "write /proc/sys/kernel/core_pattern": ": >> /proc/sys/kernel/core_pattern",
    "mount a filesystem": "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m",
    "load a kernel module": "head -c 64 /dev/zero > /tmp/x.ko && insmod /tmp/x.ko",
    "open /dev/kmsg (mknod)": "mknod /tmp/kmsg c 1 11 && head -c 0 /tmp/kmsg",
    "a user namespace": "unshare -U true",
    "rename the host(name)": "hostname renamed",
    "read the host's keys (/proc/keys)": "grep -q . /proc/keys",
}


def run_capture(*args: str) -> subprocess.CompletedProcess[str]:
    """``minictr ARGS`` with its output captured (not shown)."""
    return subprocess.run([*MINICTR, *args], capture_output=True, text=True, timeout=120)


def status_lines(*flags: str) -> dict[str, str]:
    """The Cap*, NoNewPrivs and Seccomp lines of /proc/self/status in a container run with ``flags``."""
    done = run_capture("run", "--rm", "--network", "none", *flags, "busybox", "cat", "/proc/self/status")
    wanted = ("Cap", "NoNewPrivs", "Seccomp")
    return {
        k: v.strip() for k, _, v in (line.partition(":") for line in done.stdout.splitlines()) if k.startswith(wanted)
    }


def capability_table(lines: dict[str, str]) -> None:
    """Print each capability set of a status dict, decoded (at most 8 names a line)."""
    for key in ("CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"):
        names = [n.removeprefix("CAP_").lower() for n in capabilities.decode(lines[key])]
        shown = ", ".join(names[:8]) + (f" … (+{len(names) - 8} more)" if len(names) > 8 else "")
        print(f"{key} {lines[key]}  {len(names):2} capabilities: {shown or '-'}")


def attempt_results(*flags: str) -> dict[str, str]:
    """Run every :data:`ATTEMPTS` in one container with ``flags``; name -> "ok" or the error it printed."""
    script = "; ".join(
        f'out=$( ({command}) 2>&1) && echo "{name}=ok" || echo "{name}=$out"' for name, command in ATTEMPTS.items()
    )
    done = run_capture("run", "--rm", "--network", "none", *flags, "busybox", "sh", "-c", script)
    results = {}
    for line in done.stdout.splitlines():
        name, _, answer = line.partition("=")
        results[name] = answer.strip().split(": ")[-1] if answer.strip() else "refused"
    return results


def escape_table(default: dict[str, str], privileged: dict[str, str]) -> None:
    """Print attempt -> what a default container got -> what a privileged one got."""
    width = max(len(name) for name in ATTEMPTS)
    print(f"{'attempt':{width}}  {'default':34}  --privileged")
    for name in ATTEMPTS:
        print(f"{name:{width}}  {default.get(name, '?')[:34]:34}  {privileged.get(name, '?')[:40]}")


def seccomp_rules_for(name: str, caps: list[str] | None = None) -> list[str]:
    """The rules of the default profile that mention syscall ``name``, and whether each applies to ``caps``."""
    from minictr.kernel.security.profile import _applies, default_profile

    caps = list(capabilities.DEFAULT) if caps is None else caps
    found = []
    for rule in default_profile()["syscalls"]:
        if name in rule.get("names", []):
            conditions = {k: v for k, v in rule.items() if k in ("args", "includes", "excludes", "errnoRet")}
            applies = "applies" if _applies(rule, set(caps), "amd64") else "does not apply"
            found.append(f"{rule['action']} {conditions or ''} -> {applies} to Docker's 14 capabilities")
    profile = default_profile()
    found.append(f"otherwise: {profile['defaultAction']} with errno {profile['defaultErrnoRet']} (EPERM)")
    return found


def filter_excerpt(name: str, context: int = 2) -> str:
    """The lines of the compiled default filter (libseccomp's pseudo-code) that test syscall ``name``."""
    from minictr.kernel.security import profile, seccomp

    flt = seccomp.Filter(profile.to_oci(profile.default_profile(), list(capabilities.DEFAULT)))
    try:
        pfc = flt.export("pfc").decode().splitlines()
        size = len(flt.export("bpf")) // 8
    finally:
        flt.close()
    lines = [f"(the whole filter: {size} BPF instructions; {len(pfc)} lines of pseudo-code)"]
    for i, line in enumerate(pfc):
        if f'"{name}"' in line:
            lines += pfc[max(0, i - 1) : i + context]
            break
    else:
        lines.append(f"{name} is not tested at all: it falls through to the default action")
    return "\n".join(lines)


SOLUTIONS: dict[str, str] = {}  # the exercise, drop_bounding(keep), is a step: minictr.tutorial.step_exercises
