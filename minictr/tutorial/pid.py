"""04 · PID namespace: PID 1 and its duties seen through /proc, and the exercise ``count_zombies(pid)``."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from minictr.tutorial.checking import Verdict, printed_by, raised, returned_none, run_in_child
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


# --- exercise: count_zombies ---------------------------------------------------------------------

#: A process with zombie children: it forks them (each named as told), never waits, and
#: prints their pids (the living child's first); it reaps them all when stdin closes.
_ZOMBIE_MAKER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def child(name, seconds):
    pid = os.fork()
    if pid == 0:
        libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: the name /proc/<pid>/stat and ps show
        time.sleep(seconds)
        os._exit(0)
    return pid
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
living = child(sys.argv[1], 60)
dead = [child(name, 0) for name in sys.argv[2:]]
deadline = time.monotonic() + 10
while any(state(pid) != "Z" for pid in dead) and time.monotonic() < deadline:
    time.sleep(0.01)
print(" ".join(map(str, [living] + dead)), flush=True)
sys.stdin.read()
os.kill(living, 9)
for _ in range(1 + len(dead)):
    os.wait()
"""


def _zombie_maker(living: str, dead: list[str]) -> tuple[subprocess.Popen[str], list[int]]:
    """Start a process with one living child named ``living`` and a zombie child per name in ``dead``."""
    maker = subprocess.Popen(
        [sys.executable, "-S", "-s", "-E", "-c", _ZOMBIE_MAKER, living, *dead],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert maker.stdout is not None
    import select

    ready, _, _ = select.select([maker.stdout], [], [], 15)
    line = maker.stdout.readline() if ready else ""
    if not line:
        _end_maker(maker)
        raise RuntimeError("the test process with zombie children did not start")
    return maker, [int(pid) for pid in line.split()]


def _end_maker(maker: subprocess.Popen[str]) -> None:
    try:
        if maker.stdin:
            maker.stdin.close()
        maker.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        maker.kill()
        maker.wait()


def check_count_zombies(function: Callable[[int], int]) -> None:
    """Run ``function(pid)`` in a child process for test processes; print ✔ or precisely what is wrong."""
    judge_count_zombies(function).show()


def judge_count_zombies(function: Callable[[int], int]) -> Verdict:
    """Check ``function(pid)`` counts the zombie children of ``pid``, and nothing else.

    Three test processes run meanwhile: one with 3 zombie children and a
    living one, one with 2 zombies (a decoy: their zombies are not the first
    one's), and one whose 3 zombies are named ``zombie child``, with a space
    (a naive split of ``/proc/<n>/stat`` misreads them).
    """
    name = function.__name__
    makers: list[subprocess.Popen[str]] = []
    try:
        plain, plain_pids = _zombie_maker("alive", ["zombie"] * 3)
        makers.append(plain)
        decoy, _ = _zombie_maker("alive", ["zombie"] * 2)
        makers.append(decoy)
        spaced, _ = _zombie_maker("still alive", ["zombie child"] * 3)
        makers.append(spaced)
        printed = ""

        def ask(pid: int) -> tuple[Any, Verdict | None]:
            nonlocal printed
            report = run_in_child(function, pid)
            printed = printed or printed_by(report)
            if "error" in report:
                error = report["error"]
                hint = ""
                if error["type"] in ("FileNotFoundError", "ProcessLookupError"):
                    hint = (
                        "\n  Processes come and go while you read /proc: skip an entry whose file has vanished "
                        "(try: ... except OSError: continue)."
                    )
                return None, Verdict(False, printed + raised(name, error) + hint)
            value, kind = report.get("value"), report.get("type")
            if value is None:
                return None, Verdict(False, printed + returned_none(f"{name}(pid)"))
            if kind != "int":
                return None, Verdict(
                    False, printed + f"✘ {name}(pid) returned a {kind} ({value!r}); expected a number (int)."
                )
            return value, None

        got, verdict = ask(plain.pid)
        if verdict:
            return verdict
        if got != 3:
            if got == 0:
                why = (
                    "  A zombie's state is Z: the third field of /proc/<n>/stat ('4214 (sleep) Z 4213 ...'),\n"
                    "  or the State: line of /proc/<n>/status. Its parent is the fourth field (PPid: in status):\n"
                    "  compare it, as a number, with pid."
                )
            elif got == 4:
                why = "  4 is all its children: the living one is not a zombie. Count only those in state Z."
            elif got > 4:
                why = (
                    "  That counts zombies that are not its children (other processes have zombies too):\n"
                    "  count only those whose parent (PPid) is pid."
                )
            else:
                why = "  Look at every process in /proc: its state (Z) and its parent (PPid)."
            return Verdict(
                False,
                printed + f"✘ {name}(pid) returned {got} for a test process that has 3 zombie "
                f"children (and 1 living child).\n" + why,
            )
        got, verdict = ask(decoy.pid)
        if verdict:
            return verdict
        if got != 2:
            return Verdict(
                False,
                printed + f"✘ {name}(pid) was right for one test process but returned {got} for "
                "another, which has 2 zombie children: does it use its argument pid?",
            )
        got, verdict = ask(spaced.pid)
        if verdict:
            return verdict
        if got != 3:
            return Verdict(
                False,
                printed + f"✘ {name}(pid) returned {got} for a process whose 3 zombie children are "
                "named 'zombie child' — with a space.\n"
                "  In /proc/<n>/stat the name, in parentheses, may hold spaces and ')':\n"
                "  split the line after its last ')' (stat.rsplit(')', 1)[1].split()), "
                "or read /proc/<n>/status.",
            )
        got, verdict = ask(plain_pids[0])
        if verdict:
            return verdict
        if got != 0:
            return Verdict(False, printed + f"✘ {name}(pid) returned {got} for a process that has no children at all.")
        return Verdict(
            True,
            printed + f"✔ Correct: {name}(pid) counts the zombie children of pid — 3, 2, 3 and 0 for "
            "the four test processes —\n  whatever their names.",
        )
    finally:
        for maker in makers:
            _end_maker(maker)


SOLUTIONS = {
    "count_zombies": '''
        def count_zombies(pid):
            """How many children of process `pid` are zombies (state Z), read from /proc."""
            count = 0
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        stat = handle.read()
                except OSError:
                    continue  # it exited while we looked
                # "4214 (sleep) Z 4213 ...": the name may hold spaces and ')', so split after the last ')'
                state, parent = stat.rsplit(")", 1)[1].split()[:2]
                if state == "Z" and int(parent) == pid:
                    count += 1
            return count
    ''',
}
