"""01 · chroot: the exercise ``enter_root(new_root)``, its check and its reference solution.

(Named so, not ``chroot``, to be told apart from :mod:`minictr.runtime.chroot`, which it checks against.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from minictr.tutorial.checking import Verdict, listing, printed_by, raised, run_in_child, source_of


def interfaces(proc_net_dev: str) -> list[str]:
    """The network interface names in the text of a ``/proc/net/dev`` file, sorted."""
    return sorted(line.split(":", 1)[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line)


def check_enter_root(function: Callable[[str], Any], new_root: str) -> None:
    """Run ``function(new_root)`` in a child process; print ✔ or precisely what is wrong (see
    :func:`judge_enter_root`).
    """
    judge_enter_root(function, new_root).show()


def _enter_root_check(
    source: str, name: str, new_root: str
) -> dict[str, object]:  # only builtins in annotations: it travels as source to a bare child
    """(Runs in the check's child.) Run the learner's function, then report what the process sees of
    its root: ``/``, its working directory, and where ``..`` leads from there."""
    from minictr.tutorial.checking import run_learner

    state = run_learner(source, name, new_root)
    try:
        state["root"] = sorted(os.listdir("/"))
    except OSError as exc:
        state["root_error"] = f"{type(exc).__name__}: {exc}"
    try:
        state["cwd"] = os.getcwd()
    except OSError as exc:
        state["cwd_error"] = f"{type(exc).__name__} ({exc.strerror})"
    try:
        for _ in range(64):
            os.chdir("..")
        state["climbed"] = sorted(os.listdir("."))
    except OSError as exc:
        state["climbed_error"] = f"{type(exc).__name__}: {exc}"
    return state


def judge_enter_root(function: Callable[[str], Any], new_root: str) -> Verdict:
    """Run ``function(new_root)`` in a child process (as root) and check it made ``new_root`` its root.

    Afterwards ``/`` must list what ``new_root`` holds, and the working
    directory must be ``/`` — inside the new root. The classic bug (``chroot``
    without ``chdir``) leaves the working directory outside the root, from
    where ``..`` climbs to the host's ``/``; the verdict says so.
    """
    name = function.__name__
    expected = sorted(os.listdir(new_root))
    host = sorted(os.listdir("/"))
    report = run_in_child(_enter_root_check, source_of(function), name, new_root)
    printed = printed_by(report)

    def wrong(message: str) -> Verdict:
        return Verdict(False, printed + "✘ " + message)

    state = report.get("value") or {}
    error = report.get("error") or state.get("error")  # the child's end (a timeout, a crash), or the function's
    if error:
        extra = (
            "\n  chroot(2) needs root (CAP_SYS_CHROOT): run the notebook as root."
            if error["type"] == "PermissionError"
            else ""
        )
        return Verdict(False, printed + raised(name, error) + extra)
    root = state.get("root")
    if root is None:
        return wrong(f"after {name}(new_root), / cannot be listed: {state.get('root_error')}")
    if root == host and root != expected:
        return wrong(
            f"after {name}(new_root), / still shows the host's root ({listing(root)}).\n"
            "  The root directory did not change: call os.chroot(new_root)."
        )
    if root != expected:
        return wrong(
            f"after {name}(new_root), / shows {listing(root)}\n"
            f"  but new_root holds {listing(expected)}: chroot into new_root itself."
        )
    cwd, cwd_error = state.get("cwd"), state.get("cwd_error")
    if cwd_error or not (cwd or "").startswith("/"):
        seen = f"fails with {cwd_error}" if cwd_error else f"returns {cwd!r}"
        climbed = state.get("climbed")
        outside = climbed == host and climbed != expected
        return wrong(
            "the root changed — / now lists the rootfs — but the working directory is still outside it.\n"
            f"  os.getcwd() {seen}: the kernel cannot name that directory from the new root.\n"
            + ("  From there, chdir('..') climbs to the host's / — the escape above, handed over.\n" if outside else "")
            + "  chroot(2) changes the root directory only, never the working directory:\n"
            "  move the working directory into the new root as well."
        )
    if cwd != "/":
        return wrong(f"the root is right, but the working directory is {cwd!r}; it should be '/'.")
    if state.get("climbed") != expected:
        return wrong(
            f"the root and working directory look right, but '..' from / leads to "
            f"{listing(state.get('climbed') or [])}."
        )
    return Verdict(
        True,
        printed + f"✔ Correct: after {name}(new_root), / lists the rootfs, the working directory "
        "is '/',\n  and chdir('..') stops at the new root.",
    )


SOLUTIONS = {
    "enter_root": '''
        def enter_root(new_root):
            """Make new_root this process's root directory, and stand inside it."""
            os.chroot(new_root)  # the root moves; the working directory does not
            os.chdir("/")        # so move it into the new root as well
    ''',
}
