"""The exercises that are steps of the runtime: ``init`` (04), ``new_user`` (05), ``join_cgroup`` (07),
``drop_bounding`` (09).

Each is checked the only honest way: in a container. The learner's function
takes the place of the runtime's own code at its step
(:func:`minictr.tutorial.steps.run_with`), a small shell probe looks at what
the container got, and the same probe runs in a container the runtime made
by itself. The verdict says where the two differ, and what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minictr.kernel.security import capabilities
from minictr.tutorial.checking import Verdict
from minictr.tutorial.steps import run_with, taught

#: Both containers' view, side by side: (the runtime's, yours), each "exit status N" and the lines printed.
Pair = tuple[dict[str, str], dict[str, str]]


def side_by_side(function: Callable[..., Any], command: str, steps: list[str], **options: Any) -> Pair:
    """Run ``sh -c command`` in a container built with the learner's ``function``, and in the runtime's own.

    Returns what each printed as ``key: value`` lines, plus ``exit status``;
    the learner's side is ``{"error": ...}`` when its container did not run.
    """
    from minictr.errors import MinictrError

    def seen(functions: list[Callable[..., Any]]) -> dict[str, str]:
        try:
            done = run_with(functions, ["sh", "-c", command], steps=steps, **options)
        except MinictrError as exc:
            return {"error": str(exc)}
        lines = done.stdout.decode(errors="replace").splitlines()
        found = dict(line.split(": ", 1) for line in lines if ": " in line)
        found["exit status"] = str(done.exit_code)
        if done.exit_code and done.stderr.strip():
            found["stderr"] = done.stderr.decode(errors="replace").strip().splitlines()[-1]
        return found

    return seen([]), seen([function])


def compare(function: Callable[..., Any], command: str, steps: list[str], **options: Any) -> None:
    """Print what ``sh -c command`` shows in the runtime's container and in one built with ``function``."""
    theirs, mine = side_by_side(function, command, steps, **options)
    print(_table(theirs, mine, f"your {function.__name__}()"))


def _table(theirs: dict[str, str], mine: dict[str, str], yours: str) -> str:
    if "error" in mine:
        return f"the container built with {yours} did not run: {mine['error']}"
    rows = [f"{'':24}{'the runtime':30} {yours}"]
    for key in dict.fromkeys([*theirs, *mine]):
        if key == "stderr":
            continue
        left, right = theirs.get(key, "-"), mine.get(key, "-")
        rows.append(f"{key:24}{left[:29]:30} {'same' if left == right else right}")
    if "stderr" in mine and mine.get("exit status") != theirs.get("exit status"):
        rows.append(f"{'(your stderr)':24}{mine['stderr']}")
    return "\n".join(rows)


def _verdict(theirs: dict[str, str], mine: dict[str, str], yours: str, hints: list[tuple[str, str]]) -> Verdict:
    """✔ when both containers printed the same; else the table and the hint of the first key that differs."""
    table = _table(theirs, mine, f"your {yours}()")
    if "error" in mine:
        return Verdict(False, f"✘ {table}")
    differ = [key for key in dict.fromkeys([*theirs, *mine]) if key != "stderr" and theirs.get(key) != mine.get(key)]
    if not differ:
        return Verdict(True, table + f"\n✔ Correct: the container built with your {yours}() is the runtime's.")
    hint = next((text for key, text in hints if key in differ), "")
    return Verdict(False, table + f"\n✘ your container differs from the runtime's in: {', '.join(differ)}.\n{hint}")


# --- 04: init ------------------------------------------------------------------------------------------

#: Make three orphans, wait (at most 5 s) until PID 1 has reaped them, count what is left; wait (at most
#: 5 s) for PID 1 to catch SIGTERM, send it, and say so if the program is still alive a second later.
INIT_PROBE = (
    "left() { for f in /proc/[0-9]*/status; do [ $f != /proc/$$/status ] && grep -qs '^PPid:\\s1$' $f "
    "&& echo $f; done; }; "
    'sh -c "sleep 0 & sleep 0 & sleep 0 &"; i=0; '
    'while [ -n "$(left)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; '
    'echo "children of PID 1 left: $(left | wc -l)"; i=0; '
    "while [ $(( 0x$(sed -n 's/^SigCgt:\\s*//p' /proc/1/status) & 16384 )) = 0 ] && [ $i -lt 50 ]; "
    "do sleep 0.1; i=$((i+1)); done; "
    "kill -TERM 1; sleep 1; echo 'after SIGTERM to PID 1: still running'"
)

INIT_HINTS = [
    (
        "children of PID 1 left",
        "  Orphans are left as zombies: PID 1 must wait for *any* child, not only the program.\n"
        "  os.wait() in a loop reaps whichever child ends; stop when the one that ended is the program.",
    ),
    (
        "after SIGTERM to PID 1",
        "  SIGTERM sent to PID 1 never reached the program: the kernel drops a signal PID 1 has no handler for.\n"
        "  Install one, signal.signal(signal.SIGTERM, handler), that passes it on: os.kill(program, signum).",
    ),
    (
        "exit status",
        "  Return the program's exit status as a shell shows it: os.waitstatus_to_exitcode(status)\n"
        "  (a program killed by signal N gives -N, which the runtime reports as 128 + N).",
    ),
]


def judge_init(function: Callable[[int], Any]) -> Verdict:
    """Run :data:`INIT_PROBE` with the learner's ``init(program)`` as PID 1 and with ``minictr-init``; compare."""
    theirs, mine = side_by_side(function, INIT_PROBE, taught("04"), init=True)
    return _verdict(theirs, mine, function.__name__, INIT_HINTS)


def check_init(function: Callable[[int], Any]) -> None:
    """Print the verdict of :func:`judge_init`."""
    judge_init(function).show()


# --- 05: new_user ----------------------------------------------------------------------------------------

USER_PROBE = (
    'echo "id: $(id)"; echo "uid_map: $(tr -s " " < /proc/self/uid_map)"; '
    'echo "gid_map: $(tr -s " " < /proc/self/gid_map)"'
)

USER_HINTS = [
    ("uid_map", "  The maps differ: have them written (write_maps()) right after unshare(CLONE_NEWUSER)."),
    (
        "id",
        "  Become root of the new namespace once the maps exist: os.setresgid(0, 0, 0), then os.setresuid(0, 0, 0).",
    ),
]


def judge_new_user(function: Callable[[Callable[[], None]], Any]) -> Verdict:
    """Run :data:`USER_PROBE` in a ``--userns private`` container entered by the learner's ``new_user``; compare."""
    theirs, mine = side_by_side(function, USER_PROBE, taught("05"), userns="private")
    if "error" in mine:
        message = mine["error"]
        if "uid_map" in message or "gid_map" in message:
            message += (
                "\n  The maps of the user namespace you are in cannot be written: the host's are fixed."
                "\n  Make a user namespace of your own first: linux.unshare(linux.CLONE_NEWUSER)."
            )
        elif "Invalid argument" in message:
            message += (
                "\n  Until its maps are written, uid 0 does not exist in the new namespace: call write_maps() first."
            )
        return Verdict(False, f"✘ the container built with your {function.__name__}() did not run: {message}")
    return _verdict(theirs, mine, function.__name__, USER_HINTS)


def check_new_user(function: Callable[[Callable[[], None]], Any]) -> None:
    """Print the verdict of :func:`judge_new_user`."""
    judge_new_user(function).show()


# --- 07: join_cgroup -----------------------------------------------------------------------------------

#: Under a 16 MiB memory limit and a limit of 6 processes: a 64 MiB buffer, then ten processes at once.
CGROUP_LIMITS = {"memory": "16m", "pids_limit": 6}
CGROUP_PROBE = (
    'dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo "dd of 64 MiB: exit status $?"; '
    'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; echo "ten processes: started"'
)

CGROUP_HINTS = [
    (
        "dd of 64 MiB",
        "  The memory limit did not apply: the process is not in the container's memory cgroup.\n"
        "  Write its pid (str(os.getpid())) to cgroup.procs in *every* directory of paths.",
    ),
    (
        "ten processes",
        "  The pids limit did not apply: the process is not in the container's pids cgroup.\n"
        "  Write its pid (str(os.getpid())) to cgroup.procs in *every* directory of paths.",
    ),
]


def judge_join_cgroup(function: Callable[[list[str]], Any]) -> Verdict:
    """Run :data:`CGROUP_PROBE` under limits in a container the learner's ``join_cgroup`` placed; compare."""
    theirs, mine = side_by_side(function, CGROUP_PROBE, taught("07"), network="none", **CGROUP_LIMITS)
    return _verdict(theirs, mine, function.__name__, CGROUP_HINTS)


def check_join_cgroup(function: Callable[[list[str]], Any]) -> None:
    """Print the verdict of :func:`judge_join_cgroup`."""
    judge_join_cgroup(function).show()


# --- 09: drop_bounding -----------------------------------------------------------------------------------

BOUNDING_PROBE = "grep -E '^Cap(Bnd|Prm|Eff)' /proc/self/status | tr -d '\\t' | sed 's/:/: /'"


def judge_drop_bounding(function: Callable[[list[str]], Any]) -> Verdict:
    """Compare the capability sets of a container whose bounding set the learner's function shrank."""
    theirs, mine = side_by_side(function, BOUNDING_PROBE, taught("09"), network="none")
    verdict = _verdict(theirs, mine, function.__name__, [])
    if verdict.ok or "error" in mine or "CapBnd" not in mine:
        return verdict
    kept = capabilities.decode(int(mine["CapBnd"], 16))
    wanted = capabilities.decode(int(theirs["CapBnd"], 16))
    extra, missing = [n for n in kept if n not in wanted], [n for n in wanted if n not in kept]
    said = []
    if extra:
        more = f" … ({len(extra)})" if len(extra) > 5 else ""
        said.append(f"  Still in the bounding set: {', '.join(extra[:5])}{more}:\n"
                    "  a set-user-ID or file-capability program could gain them back.")  # fmt: skip
    if missing:
        said.append(f"  Dropped but in keep: {', '.join(missing)}.")
    numbers = [capabilities.NUMBERS[name] for name in extra]
    if extra and not missing and len(extra) == 1:
        said.append("  Off by one? The kernel's last capability is /proc/sys/kernel/cap_last_cap, and it counts.")
    elif extra and not missing and min(numbers) >= 32:
        said.append("  Numbers above 31 count too: go up to the kernel's last one, /proc/sys/kernel/cap_last_cap.")
    return Verdict(False, verdict.message + "\n".join(said))


def check_drop_bounding(function: Callable[[list[str]], Any]) -> None:
    """Print the verdict of :func:`judge_drop_bounding`."""
    judge_drop_bounding(function).show()


SOLUTIONS = {
    "init": '''
        def init(program):
            """PID 1: pass SIGTERM and SIGINT on to program, reap every child; return program's exit status."""
            import signal
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda number, frame: os.kill(program, number))
            while True:
                pid, status = os.wait()  # any child: the program, or an orphan PID 1 inherited
                if pid == program:
                    return os.waitstatus_to_exitcode(status)
    ''',
    "new_user": '''
        def new_user(write_maps):
            """Enter a user namespace of its own, have its maps written, and become root in it."""
            from minictr.kernel import linux
            linux.unshare(linux.CLONE_NEWUSER)
            write_maps()  # the parent writes /proc/<pid>/uid_map and gid_map, from outside
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
    ''',
    "join_cgroup": '''
        def join_cgroup(paths):
            """Move this process into the container's cgroup: each of paths is one of its directories."""
            for path in paths:
                with open(os.path.join(path, "cgroup.procs"), "w") as procs:
                    procs.write(str(os.getpid()))  # its pid as this process sees it: the kernel translates
    ''',
    "drop_bounding": '''
        def drop_bounding(keep):
            """Drop from the bounding set every capability whose name is not in keep (e.g. "CAP_CHOWN")."""
            from minictr.kernel import linux
            from minictr.kernel.security.capabilities import NAMES
            with open("/proc/sys/kernel/cap_last_cap") as f:
                last = int(f.read())
            for number in range(last + 1):
                if NAMES[number] not in keep:
                    linux.prctl(linux.PR_CAPBSET_DROP, number)
    ''',
}
