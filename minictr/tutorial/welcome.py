"""00 · welcome: the exercise ``my_namespaces(pid)``, its check and its reference solution."""

from __future__ import annotations

import os
from collections.abc import Callable

from minictr.tutorial.checking import Verdict, printed_by, raised, returned_none, run_in_child


def check_my_namespaces(function: Callable[[int], dict[str, str]]) -> None:
    """Run ``function(pid)`` in a child process; print ✔ or precisely what is
    wrong (see :func:`judge_my_namespaces`).
    """
    judge_my_namespaces(function).show()


def judge_my_namespaces(function: Callable[[int], dict[str, str]]) -> Verdict:
    """Run ``function(pid)`` in a child process for this kernel's pid, and compare with /proc.

    The right answer maps every entry of ``/proc/<pid>/ns`` to where its link
    points, exactly as :func:`minictr.kernel.linux.namespace_id` reads it.
    """
    from minictr.kernel.linux import namespace_id

    name = function.__name__
    pid = os.getpid()
    expected = {kind: namespace_id(pid, kind) for kind in sorted(os.listdir(f"/proc/{pid}/ns"))}
    report = run_in_child(function, pid)
    printed = printed_by(report)
    if "error" in report:
        return Verdict(False, printed + raised(name, report["error"]))
    value, kind_of = report.get("value"), report.get("type")
    example = next(iter(expected.items()))
    if value is None:
        return Verdict(False, printed + returned_none(f"{name}(pid)"))
    if kind_of != "dict":
        return Verdict(
            False,
            printed + f"✘ {name}(pid) returned a {kind_of}; expected a dict of kind -> link "
            f"target, such as {{{example[0]!r}: {example[1]!r}, ...}}",
        )
    problems = []
    got = {str(k): v for k, v in value.items()}
    absent = [k for k in expected if k not in got]
    extra = sorted(k for k in got if k not in expected)
    if absent:
        problems.append(f"missing {len(absent)} of {len(expected)} kinds: {', '.join(absent)}")
    if extra:
        oci = {"mount": "mnt", "network": "net"}
        hint = [f"{k!r} should be {oci[k]!r}" for k in extra if k in oci]
        problems.append(
            f"unexpected keys: {', '.join(map(repr, extra))}"
            + (
                " — use the file names in /proc/<pid>/ns (" + "; ".join(hint) + ")"
                if hint
                else " — the keys are the file names in /proc/<pid>/ns"
            )
        )
    for kind in expected:
        if kind not in got or got[kind] == expected[kind]:
            continue
        wrong, right = got[kind], expected[kind]
        number = right.split("[", 1)[1].rstrip("]")
        if isinstance(wrong, str) and wrong.endswith(f"/ns/{kind}"):
            why = "that is the path of the link itself; os.readlink(path) gives where it points"
        elif str(wrong) == number:
            why = f"that is only the number; expected the whole link target {right!r}"
        else:
            why = f"expected {right!r}, where the link /proc/<pid>/ns/{kind} points"
        problems.append(f"value for {kind!r} is {wrong!r}: {why}")
        break  # one wrong value explains the rest
    if problems:
        return Verdict(False, printed + f"✘ {name}(pid) is not right yet:\n" + "\n".join(f"  - {p}" for p in problems))
    return Verdict(
        True,
        printed + f"✔ Correct: {name}(pid) gives the same as minictr.kernel.linux.namespace_id(pid, kind) "
        "for every kind in /proc/<pid>/ns.",
    )


SOLUTIONS = {
    "my_namespaces": '''
        def my_namespaces(pid):
            """Map each namespace kind in /proc/<pid>/ns to where its link points."""
            directory = f"/proc/{pid}/ns"
            return {kind: os.readlink(os.path.join(directory, kind)) for kind in os.listdir(directory)}
    ''',
}
