"""05 · user namespace: rootless minictr from a root notebook, and the exercises ``parse_id_map`` and ``to_host``."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from minictr.tutorial.checking import Verdict, printed_by, raised, returned_none, run_in_child
from minictr.tutorial.common import HostLacks, leftovers, package_parent, remove_tree, run_shown, workdir
from minictr.tutorial.processes import alive, stat_fields, wait_until


class RootlessUser:
    """minictr as an unprivileged user (``nobody``, uid 65534 by default): rootless containers from a root notebook.

    That user cannot read this kernel's Python environment (it may live in a
    private home), so ``home`` gets a copy of the minictr package and state
    and data roots that the user owns; minictr runs there with a Python the
    user can run, under ``setpriv``. :meth:`clean` kills what is left and
    removes ``home``.
    """

    def __init__(self, home: str, uid: int = 65534, gid: int = 65534) -> None:
        self.home, self.uid, self.gid = home, uid, gid
        self.state_root = os.path.join(home, "state")
        self.data_root = os.path.join(home, "data")
        self.library = os.path.join(home, "lib")
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise HostLacks("The rootless cells need setpriv (util-linux) to run minictr as another user.")
        self.clean()
        for path in (self.home, self.library):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o755)
        tutorial_dir = os.path.dirname(workdir("-"))
        parent = os.path.dirname(self.home)
        while parent.startswith(tutorial_dir):  # the tutorial's own directories: let the user through
            os.chmod(parent, 0o755)
            parent = os.path.dirname(parent)
        while parent != os.path.dirname(parent):  # the others must let it through already
            if not os.stat(parent).st_mode & 0o001:
                raise HostLacks(f"The rootless cells need {parent} to be searchable by other users (chmod o+x).")
            parent = os.path.dirname(parent)
        shutil.copytree(
            os.path.join(package_parent(), "minictr"),
            os.path.join(self.library, "minictr"),
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        for directory, _, files in os.walk(self.library):
            os.chmod(directory, 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        for path in (self.state_root, self.data_root):
            os.makedirs(path)
            os.chown(path, uid, gid)
        self.prefix = [
            setpriv,
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"HOME={self.data_root}",
            "LC_ALL=C.UTF-8",
            f"PYTHONPATH={self.library}",
            f"MINICTR_ROOT={self.state_root}",
            f"MINICTR_DATA_ROOT={self.data_root}",
        ]
        self.python = self._find_python()
        try:
            import pwd

            self.name = pwd.getpwuid(uid).pw_name
        except KeyError:
            self.name = f"uid {uid}"

    def _find_python(self) -> str:
        """A Python >= 3.11 this user can run, and from which it can import the copied package."""
        candidates = [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3") or ""]
        for python in dict.fromkeys(c for c in candidates if c):
            test = [*self.prefix, python, "-c", "import sys, minictr; sys.exit(sys.version_info < (3, 11))"]
            if subprocess.run(test, capture_output=True, timeout=30).returncode == 0:
                return python
        raise HostLacks(
            f"The rootless cells need a Python 3.11 or newer that uid {self.uid} can run "
            f"(tried {', '.join(dict.fromkeys(c for c in candidates if c))})."
        )

    def minictr(self, *args: str, timeout: float = 120) -> None:
        """Run ``minictr ARGS...`` as this user, and print what a terminal would show."""
        run_shown(
            f"{self.name}$ minictr " + shlex.join(args),
            [*self.prefix, self.python, "-m", "minictr.cli", *args],
            timeout,
        )

    def containers(self) -> list[str]:
        """The ids of this user's detached containers (those with a state in the user's state root)."""
        base = os.path.join(self.state_root, "containers")
        return sorted(
            name
            for name in (os.listdir(base) if os.path.isdir(base) else [])
            if os.path.exists(os.path.join(base, name, "state.json"))
        )

    def pid_of(self, container_id: str) -> int:
        """The host pid of PID 1 of one of this user's detached containers."""
        with open(os.path.join(self.state_root, "containers", container_id, "state.json")) as handle:
            return int(json.load(handle)["pid"])

    def clean(self, timeout: float = 10) -> list[str]:
        """Kill this user's containers that still run, remove ``home``; return what is left (empty: nothing)."""
        containers = os.path.join(self.state_root, "containers")
        for name in os.listdir(containers) if os.path.isdir(containers) else []:
            try:
                with open(os.path.join(containers, name, "state.json")) as handle:
                    state = json.load(handle)
                pid = int(state["pid"])
                if stat_fields(pid)[19] != state.get("start"):
                    continue  # that pid is another process now
                os.kill(pid, signal.SIGKILL)
                wait_until(functools.partial(_ended, pid), timeout, f"the end of container {name}")
            except (OSError, ValueError, KeyError, IndexError):
                continue  # no state, or the container is gone already
        remove_tree(self.home)
        return leftovers(self.home)


# --- exercises: parse_id_map and to_host -----------------------------------------------------------

_PADDED = "         0     100000      65536\n"

#: (text of a uid_map, the list parse_id_map should return)
_ID_MAP_CASES: list[tuple[str, list[tuple[int, int, int]]]] = [
    (_PADDED, [(0, 100000, 65536)]),
    ("         0       1000          1\n         1     100000      65536\n", [(0, 1000, 1), (1, 100000, 65536)]),
    ("", []),
]

_ONE = [(0, 100000, 65536)]
_TWO = [(0, 1000, 1), (1, 100000, 65536)]

#: (uid, mapping, expected host uid, why)
_TO_HOST_CASES: list[tuple[int, list[tuple[int, int, int]], int | None, str]] = [
    (0, _ONE, 100000, "uid 0 inside is the first id of the range: 100000 outside"),
    (1000, _ONE, 101000, "an id inside the range moves by (outside - inside): 1000 inside is 101000 outside"),
    (65535, _ONE, 165535, "65535 is the last id of a range of 65536 ids that starts at 0"),
    (
        65536,
        _ONE,
        None,
        "a line 'inside outside count' maps inside … inside+count-1; 65536 is just past the range, so it is not mapped",
    ),
    (
        100000,
        _ONE,
        None,
        "100000 is where the range lands on the host; uid 100000 *inside* is not mapped "
        "(to_host goes from inside to outside)",
    ),
    (0, _TWO, 1000, "with two lines, uid 0 is in the first one (0 1000 1): 1000 outside"),
    (5, _TWO, 100004, "with two lines, uid 5 is in the second one (1 100000 65536): 100000 + (5 - 1)"),
    (7, [], None, "an empty map maps nothing"),
]


def _ended(pid: int) -> bool:
    """True once ``pid`` has ended (a zombie has)."""
    return not alive(pid)


def check_id_maps(parse_id_map: Callable[[str], Any], to_host: Callable[[int, Any], Any]) -> None:
    """Run both functions in child processes; print ✔ or precisely what is wrong with each."""
    judge_id_maps(parse_id_map, to_host).show()


def _as_entries(value: Any) -> list[Any] | None:
    """A parse_id_map result as a list of tuples, or None when it is not a list of sequences."""
    if not isinstance(value, list) or not all(isinstance(entry, list) for entry in value):
        return None
    return [tuple(entry) for entry in value]


def _judge_parse(function: Callable[[str], Any]) -> tuple[bool, str]:
    name = function.__name__
    printed = ""
    for text, expected in _ID_MAP_CASES:
        report = run_in_child(function, text)
        printed = printed or printed_by(report)
        call = f"{name}({text!r})"
        if "error" in report:
            error = report["error"]
            hint = ""
            if error["type"] == "ValueError" and (
                "unpack" in error["message"] or "invalid literal" in error["message"]
            ):
                hint = (
                    f"\n  The kernel pads the columns with spaces ({_PADDED.rstrip()!r}): line.split() with no "
                    "argument splits on any run of whitespace."
                )
            return False, printed + raised(name, error).replace(f"{name}(...)", call, 1) + hint
        value, kind = report.get("value"), report.get("type")
        if value is None:
            return False, printed + returned_none(call)
        entries = _as_entries(value)
        if kind not in ("list", "tuple") or entries is None:
            return False, printed + (
                f"✘ {call} returned {value!r} (a {kind}); expected a list of (inside, outside, "
                f"count) tuples, such as {expected!r}"
            )
        if entries == expected:
            continue
        if len(entries) != len(expected):
            return False, printed + (
                f"✘ {call} returned {len(entries)} entries; expected {len(expected)}, one per line: {expected!r}"
            )
        wrong = next(entry for entry, right in zip(entries, expected, strict=True) if entry != right)
        right = expected[entries.index(wrong)]
        if len(wrong) != 3:
            why = "each entry is three numbers: (inside, outside, count)"
        elif any(isinstance(item, str) for item in wrong):
            why = "those are strings: convert each column with int()"
        elif sorted(wrong) == sorted(right):
            why = (
                "the columns are in the order inside, outside, count ('0 100000 65536': uid 0 inside is 100000 outside)"
            )
        else:
            why = "read the three columns of each line"
        return False, printed + f"✘ {call} gave the entry {wrong!r}; expected {right!r}: {why}."
    return True, printed + f"✔ {name} reads the kernel's padded columns, one entry per line (and [] for an empty map)."


def _judge_to_host(function: Callable[[int, Any], Any]) -> tuple[bool, str]:
    name = function.__name__
    printed = ""
    for uid, mapping, expected, why in _TO_HOST_CASES:
        report = run_in_child(function, uid, [list(entry) for entry in mapping])
        printed = printed or printed_by(report)
        call = f"{name}({uid}, {mapping!r})"
        if "error" in report:
            return False, printed + raised(name, report["error"]).replace(f"{name}(...)", call, 1)
        value, kind = report.get("value"), report.get("type")
        if value == expected and kind in ("int", "NoneType"):
            continue
        if isinstance(value, str):
            return False, printed + f"✘ {call} returned the string {value!r}; return an int (or None)."
        got = "None" if value is None else repr(value)
        return False, printed + f"✘ {call} returned {got}; expected {expected}: {why}."
    return True, printed + (
        f"✔ {name} maps an id inside to the host, through the right line, and gives None for ids no line maps."
    )


def judge_id_maps(parse_id_map: Callable[[str], Any], to_host: Callable[[int, Any], Any]) -> Verdict:
    """Check ``parse_id_map(text)`` on uid_map texts, and ``to_host(uid, mapping)`` on mappings (each in a child)."""
    parse_ok, parse_message = _judge_parse(parse_id_map)
    host_ok, host_message = _judge_to_host(to_host)
    if parse_ok and host_ok:
        return Verdict(True, parse_message + "\n" + host_message + "\n✔ Correct: both functions are right.")
    return Verdict(False, parse_message + "\n" + host_message)


SOLUTIONS = {
    "parse_id_map": '''
        def parse_id_map(text):
            """'0 100000 65536' lines (as in /proc/<pid>/uid_map) -> [(inside, outside, count), ...]."""
            mapping = []
            for line in text.splitlines():
                inside, outside, count = line.split()  # split() with no argument: the columns are padded
                mapping.append((int(inside), int(outside), int(count)))
            return mapping
    ''',
    "to_host": '''
        def to_host(uid, mapping):
            """The host uid that `uid` inside is, through `mapping`; None when no line maps it."""
            for inside, outside, count in mapping:
                if inside <= uid < inside + count:  # a line maps inside ... inside+count-1
                    return outside + (uid - inside)
            return None
    ''',
}
