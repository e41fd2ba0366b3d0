"""The recipe a container is made by, in the steps the notebooks teach: chosen per container.

The child (:mod:`.child`) runs a flat list of small functions. Most belong to
one idea of the curriculum, and do nothing unless the spec asks for that
idea; this module names the ideas — the *steps* — and which of the child's
functions carry each out::

    chroot → mount → uts → ipc → pid → user → network → cgroup → security
     (01)    (02)   (03)  (03)  (04)  (05)    (06)      (07)     (09)

A container built with the steps ``("chroot", "mount")`` gets a root of its
own and a mount namespace, and shares everything else with the host; the
engine turns the steps into the spec (``RunOptions(steps=...)``), so the
child needs to know nothing of them.

Some steps can be carried out by a learner's own function, the exercise of
the notebook that taught them (:data:`OWN_STEPS`): its source travels with
the config and is defined in the child, where it runs in place of the
runtime's code — the only way a function reaches a process that is a fresh
interpreter. Imported by the child: standard library only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

#: The steps, in the order the notebooks teach them.
STEPS = ("chroot", "mount", "uts", "ipc", "pid", "user", "network", "cgroup", "security")

#: Where each step is taught.
NOTEBOOK = {"chroot": "01", "mount": "02", "uts": "03", "ipc": "03", "pid": "04", "user": "05", "network": "06",
            "cgroup": "07", "security": "09"}  # fmt: skip

#: What each step does, in a few words.
PURPOSE = {
    "chroot": "a root directory of its own",
    "mount": "a mount namespace; pivot_root; /proc, /dev, /sys",
    "uts": "its own hostname and domain name",
    "ipc": "its own System V and POSIX IPC",
    "pid": "its own process ids; a PID 1 (and --init)",
    "user": "its own uids and gids, mapped",
    "network": "its own network stack",
    "cgroup": "a cgroup: limits and accounting",
    "security": "capabilities, no_new_privs, seccomp, masked paths",
}

#: The namespace each step creates (OCI namespace types).
NAMESPACE = {"mount": "mount", "uts": "uts", "ipc": "ipc", "pid": "pid", "user": "user", "network": "network",
             "cgroup": "cgroup"}  # fmt: skip

#: The child's functions (by name) that carry out each step; the others run in every container.
FUNCTIONS = {
    "chroot": ("mount_overlay", "enter_root"),
    "mount": ("private_mounts", "bind_root", "mount_spec_mounts", "create_devices", "readonly_root"),
    "uts": ("set_hostname",),
    "ipc": (),
    "pid": ("fork_init",),
    "user": ("enter_user_namespace",),
    "network": ("loopback_up",),
    "cgroup": ("join_cgroup",),
    "security": ("mask_paths", "drop_bounding", "load_seccomp_early", "keep_capabilities", "set_capabilities",
                 "no_new_privs", "load_seccomp"),
}  # fmt: skip

#: Exercise functions that may take the place of the runtime's own code: name -> (step, what it replaces).
OWN_STEPS = {
    "enter_root": ("chroot", "os.chroot(root) in enter_root (a container without the mount step)"),
    "pivot_into": ("mount", "rootfs.pivot_into(root) in enter_root"),
    "new_uts": ("uts", "set_hostname (after the runtime's own unshare: a mistake never renames the host)"),
    "init": ("pid", "run_init's loop: PID 1 reaping and passing signals on (a container run with --init)"),
    "new_user": ("user", "enter_user_namespace: unshare, the parent writes the maps, root inside"),
    "join_cgroup": ("cgroup", "the parent placing the child in its cgroup (the runtime then unshares its namespace)"),
    "drop_bounding": ("security", "drop_bounding: the capabilities the container may never regain"),
}


#: The child's function each of those takes the place of (run_init is the pid step's with --init).
REPLACES = {
    "enter_root": "enter_root",
    "pivot_into": "enter_root",
    "new_uts": "set_hostname",
    "init": "run_init",
    "new_user": "enter_user_namespace",
    "join_cgroup": "join_cgroup",
    "drop_bounding": "drop_bounding",
}


def doers(step: str, own: Iterable[str] = ()) -> list[str]:
    """Who carries out ``step``: the child's functions, a learner's (``own``) in place of the one it replaces."""
    names = list(FUNCTIONS[step])
    for name in own:
        if OWN_STEPS[name][0] == step:
            mine, replaced = f"your {name}()", REPLACES[name]
            names = [mine if n == replaced else n for n in names] if replaced in names else [*names, mine]
    return names


def step_of(function: str) -> str:
    """The step a function of the child belongs to ("" for those every container runs)."""
    return next((step for step, names in FUNCTIONS.items() if function in names), "")


def choose(steps: Iterable[str] | None) -> tuple[str, ...]:
    """The steps asked for, checked and in the recipe's order; None means all of them.

    Raises ValueError naming an unknown step, or when ``chroot`` is missing:
    every container needs a root of its own.
    """
    if steps is None:
        return STEPS
    chosen = set(steps)
    unknown = sorted(chosen - set(STEPS))
    if unknown:
        raise ValueError(f"no step called {', '.join(unknown)} (the steps: {', '.join(STEPS)})")
    if "chroot" not in chosen:
        raise ValueError("every container needs the chroot step (a root of its own)")
    return tuple(step for step in STEPS if step in chosen)


def check_own(own: dict[str, Any], steps: tuple[str, ...]) -> None:
    """ValueError unless every function in ``own`` replaces a step that these steps actually run."""
    for name in own:
        if name not in OWN_STEPS:
            raise ValueError(f"{name!r} cannot replace a step of the runtime (these can: {', '.join(OWN_STEPS)})")
        step = OWN_STEPS[name][0]
        if step not in steps:
            raise ValueError(f"{name} carries out the {step} step, which this container does not have")
        if name == "enter_root" and "mount" in steps:
            raise ValueError("enter_root is for a container without the mount step: there pivot_into enters the root")


def define(name: str, source: str) -> Callable[..., Any]:
    """(In the child.) Define the function whose ``source`` is given, and return it.

    It sees ``os`` without an import, as in the notebooks; other modules it
    imports must be loaded before the root changes (``minictr.kernel.linux`` is).
    """
    import os

    namespace: dict[str, Any] = {"__name__": "__own_step__", "os": os}
    exec(compile(source, f"<{name}>", "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


def table(steps: Iterable[str] | None, own: Iterable[str] = ()) -> str:
    """The recipe as text: every step, whether this container has it, and who carries it out."""
    chosen = choose(steps)
    lines = []
    for step in STEPS:
        mark = "✔" if step in chosen else "·"
        by = ", ".join(doers(step, own)) or "(unshare only)"
        lines.append(f"{mark} {step:9} {NOTEBOOK[step]}  {by if step in chosen else '-'}")
    return "\n".join(lines)
