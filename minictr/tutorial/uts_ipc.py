"""03 · UTS and IPC namespaces: the exercise ``new_uts(hostname, domainname)``, its check and its solution."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from minictr.tutorial.checking import Verdict, printed_by, raised, run_in_child, source_of


def check_new_uts(
    function: Callable[[str, str], Any], hostname: str = "exercise", domainname: str = "example.org"
) -> None:
    """Run ``function(hostname, domainname)`` in a child process; print ✔ or precisely what is wrong."""
    judge_new_uts(function, hostname, domainname).show()


def _uts_check(
    source: str, name: str, hostname: str, domainname: str
) -> dict[str, object]:  # only builtins in annotations: it travels as source to a bare child
    """(Runs in the check's child.) Stand in a throwaway UTS namespace, run the learner's function,
    and report the names inside and in the namespace it started in."""
    from minictr.kernel import linux
    from minictr.tutorial.checking import run_learner

    def names() -> list[str]:
        with open("/proc/sys/kernel/domainname") as handle:
            return [os.uname().nodename, handle.read().strip()]

    linux.unshare(linux.CLONE_NEWUTS)  # the stand-in for the host's UTS namespace: a wrong answer renames only it
    start = os.open("/proc/self/ns/uts", os.O_RDONLY)
    report: dict[str, Any] = {"before": names(), "start_ns": os.readlink("/proc/self/ns/uts")}
    report.update(run_learner(source, name, hostname, domainname))  # its "error", if it raised
    report["ns"] = os.readlink("/proc/self/ns/uts")
    report["inside"] = names()
    linux.setns(start, linux.CLONE_NEWUTS)  # back where it started: did anything change there?
    report["start_after"] = names()
    return report


def judge_new_uts(
    function: Callable[[str, str], Any], hostname: str = "exercise", domainname: str = "example.org"
) -> Verdict:
    """Run ``function(hostname, domainname)`` in a child and check it made a UTS namespace of its own, so named.

    The child first moves into a throwaway UTS namespace that stands in for the
    host's, so a function that renames the namespace it is in (the classic
    mistake: sethostname without unshare) renames only that stand-in — and the
    verdict says what it would have done to the host.
    """
    name = function.__name__
    report = run_in_child(_uts_check, source_of(function), name, hostname, domainname)
    printed = printed_by(report)

    def wrong(message: str) -> Verdict:
        return Verdict(False, printed + "✘ " + message)

    if "error" in report:
        return wrong(f"the check could not run: {report['error']['type']}: {report['error']['message']}")
    state = report.get("value") or {}
    before, after, inside = state["before"], state["start_after"], state["inside"]
    own = state["ns"] != state["start_ns"]
    renamed = after != before
    if "error" in state:
        error = state["error"]
        hint = ""
        if error["type"] == "AttributeError" and "unshare" in error["message"]:
            hint = "Python 3.11's os has no unshare (3.12 adds one): use linux.unshare(linux.CLONE_NEWUTS)."
        elif error["type"] == "AttributeError" and "sethostname" in error["message"]:
            hint = "os has no sethostname: use linux.sethostname(name) and linux.setdomainname(name)."
        return Verdict(
            False,
            printed
            + raised(name, error)
            + ("\n  " + hint if hint else "")
            + (
                "\n  And before that, it renamed the namespace it started in — on a host, the host's."
                if renamed
                else ""
            ),
        )
    if renamed and not own:
        return wrong(
            f"{name} renamed the UTS namespace it was in to {after[0]!r}"
            + (f" (domain {after[1]!r})" if after[1] != before[1] else "")
            + ".\n"
            "  Run in a notebook, that namespace is the host's: every process on it would see the new name.\n"
            "  (The check ran it in a throwaway namespace, so nothing happened.)\n"
            "  Give the process a UTS namespace of its own first: linux.unshare(linux.CLONE_NEWUTS)."
        )
    if renamed:
        return wrong(
            f"{name} made a UTS namespace of its own, but too late: the namespace it started in\n"
            f"  (on a host, the host's) was renamed to {after[0]!r} first. unshare before setting the names."
        )
    if not own:
        return wrong(
            f"{name} stayed in the UTS namespace it started in (and changed nothing):\n"
            "  call linux.unshare(linux.CLONE_NEWUTS), then set the names."
        )
    if inside[0] != hostname:
        return wrong(
            f"the process has a UTS namespace of its own, but its hostname is {inside[0]!r}, not {hostname!r}:\n"
            "  the new namespace starts as a copy of the old names; set it with linux.sethostname(hostname)."
        )
    if inside[1] != domainname:
        return wrong(
            f"the hostname is right, but the NIS domain name is {inside[1]!r}, not {domainname!r}:\n"
            "  set it with linux.setdomainname(domainname)."
        )
    return Verdict(
        True,
        printed + f"✔ Correct: {name} made a UTS namespace of its own, named {hostname!r} in domain\n"
        f"  {domainname!r}, and the namespace it started in kept its names.",
    )


SOLUTIONS = {
    "new_uts": '''
        def new_uts(hostname, domainname):
            """Give this process a UTS namespace of its own, named hostname in NIS domain domainname."""
            from minictr.kernel import linux
            linux.unshare(linux.CLONE_NEWUTS)   # a new UTS namespace: a copy of the old names
            linux.sethostname(hostname)         # from now on, these change only the new one
            linux.setdomainname(domainname)
    ''',
}
