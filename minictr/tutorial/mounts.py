"""02 · mount namespace: reading mountinfo, and the exercise ``pivot_into(new_root)`` with its check."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from minictr.tutorial.checking import Verdict, listing, printed_by, raised, run_in_child, source_of
from minictr.tutorial.common import brief


def mount_points(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) for each line of a ``/proc/<pid>/mountinfo`` text."""
    table = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" in fields:
            table.append((fields[4], fields[fields.index("-") + 1]))
    return table


def propagation(mountinfo_line: str) -> str:
    """The propagation of one mountinfo line: ``shared``, ``slave``, ``shared+slave``, ``unbindable`` or ``private``.

    It is in the optional fields between the mount options and ``-``:
    ``shared:N`` (peer group N), ``master:N`` (receives from group N).
    """
    fields = mountinfo_line.split()
    optional = fields[6 : fields.index("-")] if "-" in fields else []
    kinds = [
        {"shared": "shared", "master": "slave", "unbindable": "unbindable"}.get(tag.split(":")[0], "")
        for tag in optional
    ]
    return "+".join(kind for kind in kinds if kind) or "private"


# --- exercise: pivot_into ------------------------------------------------------------------------


def check_pivot_into(function: Callable[[str], Any], rootfs: str) -> None:
    """Run ``function(new_root)`` in a child process; print ✔ or precisely what is wrong (see
    :func:`judge_pivot_into`).
    """
    judge_pivot_into(function, rootfs).show()


def _pivot_check(
    source: str, name: str, rootfs: str, new_root: str
) -> dict[str, object]:  # only builtins in annotations: it travels as source to a bare child
    """(Runs in the check's child.) Prepare a private mount namespace and a copy of ``rootfs``, run the
    learner's function on it, and report what the process sees afterwards."""
    import subprocess

    from minictr.kernel import linux
    from minictr.kernel import rootfs as mounts
    from minictr.tutorial.checking import run_learner

    linux.unshare(linux.CLONE_NEWNS)  # a mount table of our own, a copy of the host's
    mounts.make_private("/")  # nothing below may propagate back to the host
    linux.mount("tmpfs", new_root, "tmpfs", 0, "mode=755")  # a mount point, as pivot_root wants
    copied = subprocess.run(["cp", "-a", rootfs + "/.", new_root], capture_output=True, text=True)
    if copied.returncode:
        return {"setup_error": f"copying the rootfs failed: {copied.stderr.strip()}"}
    linux.mount("proc", os.path.join(new_root, "proc"), "proc")  # to read mountinfo afterwards
    report: dict[str, Any] = {"expected": sorted(os.listdir(new_root)), "host": sorted(os.listdir("/"))}
    report.update(run_learner(source, name, new_root))  # its "error", if it raised
    report["root"] = sorted(os.listdir("/"))
    try:
        report["cwd"] = os.getcwd()
    except OSError as exc:
        report["cwd_error"] = f"{type(exc).__name__} ({exc.strerror})"
    try:
        with open("/proc/self/mountinfo") as handle:
            report["mounts"] = [line.split()[4] for line in handle]
    except OSError as exc:
        report["mounts_error"] = f"{type(exc).__name__}: {exc}"
    try:  # 01's escape: does '..' lead anywhere above this root? (only in the copy: it makes a directory)
        if not set(report["expected"]) <= set(report["root"]) or report["root"] == report["host"]:
            raise RuntimeError("the root is not the copy")
        os.makedirs("/.check-escape", exist_ok=True)
        os.chroot("/.check-escape")
        for _ in range(64):
            os.chdir("..")
        os.chroot(".")
        report["escaped"] = sorted(name for name in os.listdir("/") if name != ".check-escape")
    except (OSError, RuntimeError) as exc:
        report["escape_error"] = f"{type(exc).__name__}: {exc}"
    return report


def judge_pivot_into(function: Callable[[str], Any], rootfs: str) -> Verdict:
    """Run ``function(new_root)`` in a child process with a mount namespace of its own, and check it.

    The child makes ``/`` private, mounts a tmpfs holding a copy of ``rootfs``
    (with a /proc) and calls ``function`` on it. Afterwards ``/`` must list the
    copy and nothing else (no leftover put_old directory), the mount table
    must hold only the new root and its /proc (the old root unmounted), the
    working directory must be ``/``, and 01's escape must find only the new
    root. Nothing of this reaches the host: the child's mounts die with it.
    """
    name = function.__name__
    source = source_of(function)
    new_root = os.path.join(os.path.dirname(rootfs.rstrip("/")), "exercise-root")
    os.makedirs(new_root, exist_ok=True)
    try:
        report = run_in_child(_pivot_check, source, name, rootfs, new_root, timeout=30)
    finally:
        try:
            os.rmdir(new_root)  # an empty directory: the tmpfs on it lived in the child's namespace only
        except OSError:
            pass
    printed = printed_by(report)

    def wrong(message: str) -> Verdict:
        return Verdict(False, printed + "✘ " + message)

    if "error" in report:  # the check itself failed
        return wrong(f"the check could not run: {report['error']['type']}: {report['error']['message']}")
    state = report.get("value") or {}
    if "setup_error" in state:
        return wrong(f"the check could not prepare a root: {state['setup_error']}")
    expected, host = state["expected"], state["host"]
    if "error" in state:
        error = state["error"]
        message = raised(name, error)
        text, number = error["message"], error.get("errno")
        if error["type"] == "AttributeError" and "pivot_root" in text:
            hint = (
                "Python's os has no pivot_root: use linux.pivot_root(new_root, put_old) "
                "(from minictr.kernel import linux)."
            )
        elif "pivot_root(" in text and number == 2:
            hint = "put_old must exist: make the directory (os.makedirs) under new_root before pivot_root."
        elif "pivot_root(" in text and number == 22:
            hint = (
                "pivot_root's rules: put_old must be at or under new_root, and both must be directories\n"
                "  (new_root here is a mount point already, and the mount tree is private)."
            )
        elif "umount2(" in text and new_root in text:
            hint = (
                f"after pivot_root, {new_root} means nothing any more: / is the new root,\n"
                "  so the old root is at '/' + the name of put_old (e.g. '/.oldroot')."
            )
        elif "umount2(" in text and number == 16:
            hint = (
                "the old root is busy: mounts below it (its /proc, /dev…) and maybe your working directory.\n"
                "  umount2(put_old, linux.MNT_DETACH) detaches the whole tree at once."
            )
        elif "umount2(" in text and number == 22:
            hint = "umount2 needs the mount point of the old root: '/' + the name of put_old (e.g. '/.oldroot')."
        elif "rmdir" in text or number == 39:
            hint = "the old root must be unmounted (umount2 with MNT_DETACH) before its directory can go."
        else:
            hint = ""
        return Verdict(False, printed + message + ("\n  " + hint if hint else ""))
    root = state["root"]
    if root == host and root != expected:
        return wrong(
            f"after {name}(new_root), / is still the host's root ({brief(root)}).\n"
            "  Call linux.pivot_root(new_root, put_old), with put_old a directory under new_root."
        )
    missing = [entry for entry in expected if entry not in root]
    if missing:
        return wrong(
            f"after {name}(new_root), / lists {listing(root)}\n"
            f"  but new_root holds {listing(expected)}: make new_root itself the new root."
        )
    mounts = state.get("mounts")
    if mounts is None:
        return wrong(f"after {name}(new_root), /proc/self/mountinfo cannot be read ({state.get('mounts_error')}).")
    others = [point for point in mounts if point not in ("/", "/proc")]
    if others:
        top = min(others, key=len)
        below = [point for point in others if point != top and point.startswith(top.rstrip("/") + "/")]
        return wrong(
            f"/ is the new root, but the old root is still mounted at {top}"
            + (" (with its own mounts below it)" if below else "")
            + ":\n"
            "  every file of the host is still reachable there. After pivot_root, detach it:\n"
            f"  linux.umount2({top!r}, linux.MNT_DETACH)."
        )
    escaped = state.get("escaped")
    extra = [entry for entry in root if entry not in expected]
    if extra:
        return wrong(
            f"the old root is unmounted, but its directory is still there: /{extra[0]}.\n"
            f"  Remove it (os.rmdir('/{extra[0]}')) once the old root is detached."
        )
    cwd, cwd_error = state.get("cwd"), state.get("cwd_error")
    if cwd_error or cwd != "/":
        seen = f"os.getcwd() fails with {cwd_error}" if cwd_error else f"the working directory is {cwd!r}"
        way_out = escaped is not None and escaped == host and host != expected
        return wrong(
            f"the root is right, but {seen}:\n"
            "  the working directory is still in the old root"
            + (", detached but not gone" if cwd_error else "")
            + (". From there, '..' climbs to the host's /." if way_out else ".")
            + "\n  pivot_root does not move it: os.chdir('/') after pivot_root."
        )
    if escaped is not None and escaped == host and host != expected:
        return wrong(
            "/ lists the rootfs and the mount table looks right, but 01's escape still reaches the host's /.\n"
            "  chroot only hides the old root: it is still mounted in this namespace, above the new root,\n"
            "  and mountinfo does not show what lies outside the root. pivot_root moves the old root\n"
            "  below the new one, where it can be unmounted."
        )
    if escaped != expected:
        return wrong(f"the root and working directory look right, but the escape leads to {listing(escaped or [])}.")
    return Verdict(
        True,
        printed + f"✔ Correct: after {name}(new_root), / is the copy of the rootfs, the old root is\n"
        "  unmounted and its directory gone, the working directory is '/', and\n"
        "  01's escape finds nothing above the new root.",
    )


SOLUTIONS = {
    "pivot_into": '''
        def pivot_into(new_root):
            """Make new_root (a mount point) the root of this mount namespace; detach and remove the old root."""
            from minictr.kernel import linux
            put_old = os.path.join(new_root, ".oldroot")
            os.makedirs(put_old, exist_ok=True)            # pivot_root wants put_old at or under new_root
            linux.pivot_root(new_root, put_old)             # new_root becomes /, the old root moves to /.oldroot
            os.chdir("/")                                   # pivot_root leaves the working directory where it was
            linux.umount2("/.oldroot", linux.MNT_DETACH)    # detach the old root and every mount below it
            os.rmdir("/.oldroot")                           # and remove the empty directory
    ''',
}
