"""04 · PID namespace: PID 1 and its duties seen through /proc.

The exercise, ``init``, is a step of the runtime: :mod:`.step_exercises`.
"""

from __future__ import annotations

import signal

from minictr.tutorial.processes import branch, children, stat_fields, status, tree


def caught_signals(pid: int) -> list[str]:
    """The signals ``pid`` has installed a handler for (the ``SigCgt:`` mask of ``/proc/<pid>/status``)."""
    mask = int(status(pid)["SigCgt"], 16)
    names = []
    for number in range(1, 65):
        if mask & (1 << (number - 1)):
            try:
                names.append(signal.Signals(number).name)
            except ValueError:
                names.append(f"signal {number}")
    return names


def zombies(pid: int) -> list[int]:
    """The children of ``pid`` that are zombies: they exited, and ``pid`` has not waited for them yet."""
    found = []
    for child in children(pid):
        try:
            if stat_fields(child)[0] == "Z":
                found.append(child)
        except (OSError, IndexError):
            continue
    return found


def pid_table(pid: int) -> str:
    """``pid`` and its descendants: name, pid on the host, pid inside its own pid namespace, state.

    The inner pid is the last number of the ``NSpid:`` line of
    ``/proc/<pid>/status``, which lists a process's pid in every pid
    namespace it belongs to, outermost first; "-" when it is in ours only.
    """

    def row(current: int, depth: int) -> tuple[str, str, str, str] | None:
        try:
            info = status(current)
        except OSError:
            return None  # it exited while we looked
        numbers = info.get("NSpid", str(current)).split()
        name = branch(depth) + info.get("Name", "?")
        return (name, numbers[0], numbers[-1] if len(numbers) > 1 else "-", info.get("State", "?"))

    rows = [("process", "host pid", "pid inside", "state"), *tree(pid, row)]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}   {b:>{widths[1]}}   {c:<{widths[2]}}   {d}" for a, b, c, d in rows)


SOLUTIONS: dict[str, str] = {}  # the exercise, init(program), is a step: minictr.tutorial.step_exercises
