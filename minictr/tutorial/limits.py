"""07 · cgroups: the trees drawn from this host, CPU races, a fork bomb, a disk of our own, and two exercises.

Everything runs through minictr (containers get their cgroups from it); the
notebook's kernel only reads cgroup files and /proc.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from minictr.tutorial.checking import Verdict, printed_by, raised, returned_none, run_in_child
from minictr.tutorial.pictures import _box, _svg, _text


def cgroup_lines(pid: int | str) -> list[str]:
    """``/proc/<pid>/cgroup``: one line per hierarchy, ``ID:CONTROLLERS:PATH`` (v2's line is ``0::PATH``)."""
    with open(f"/proc/{pid}/cgroup") as handle:
        return handle.read().splitlines()


def svg_cgroup_trees(layout: dict[str, Any]) -> str:
    """v1 (a tree per controller) beside v2 (one tree, controllers handed down), with this host's names."""
    v1 = sorted({os.path.basename(mount) for name, mount in layout["v1"].items() if not name.startswith("name=")})
    v2 = layout["v2"]["controllers"] or ["cpu", "memory", "pids", "io", "cpuset"]
    body = [
        _text(190, 20, "cgroup v1: one tree per controller", size=14, bold=True),
        _text(560, 20, "cgroup v2: one tree for all", size=14, bold=True),
    ]
    shown = v1[:6] or ["cpu", "memory", "pids"]
    for index, name in enumerate(shown):
        x = 10 + index * 62
        body.append(_box(x, 40, 56, 24, "#e9c46a", name, size=10))
        body.append(f'<line x1="{x + 28}" y1="64" x2="{x + 28}" y2="84" stroke="#444"/>')
        body.append(_box(x, 84, 56, 22, "#e8f1f8", "minictr", size=9))
        body.append(f'<line x1="{x + 28}" y1="106" x2="{x + 28}" y2="124" stroke="#444"/>')
        body.append(_box(x, 124, 56, 22, "#a8dadc", "&lt;id&gt;", size=9))
    more = len(v1) - len(shown)
    if more > 0:
        body.append(
            _text(
                190, 170, f"… and {more} more hierarchies, each with its own minictr/&lt;id&gt;", size=11, italic=True
            )
        )
    body.append(_text(190, 190, "the container's pid is written into every tree", size=11))
    body.append(_box(420, 40, 280, 24, "#e9c46a", "/  subtree_control: " + " ".join(v2[:5]), size=10))
    body.append('<line x1="560" y1="64" x2="560" y2="84" stroke="#444"/>')
    body.append(_box(450, 84, 220, 22, "#e8f1f8", "minictr  (no processes: only children)", size=10))
    body.append('<line x1="560" y1="106" x2="560" y2="124" stroke="#444"/>')
    body.append(_box(450, 124, 220, 22, "#a8dadc", "&lt;id&gt;  memory.max cpu.max pids.max", size=10))
    body.append(_text(560, 170, "a child may use only what its parent's", size=11))
    body.append(_text(560, 186, "subtree_control hands down", size=11))
    body.append('<line x1="395" y1="30" x2="395" y2="195" stroke="#bbb" stroke-dasharray="4,3"/>')
    return _svg(720, 200, body)


def busy(seconds: float) -> list[str]:
    """A busybox command that keeps one CPU busy for ``seconds`` (no forks: only shell built-ins)."""
    return ["timeout", str(seconds), "sh", "-c", "while :; do :; done"]


def sample_cpu(
    managers: dict[str, Any], seconds: float, interval: float = 0.25
) -> dict[str, list[tuple[float, float]]]:
    """CPUs used over time by each named cgroup, sampled every ``interval`` for ``seconds``."""
    from minictr.kernel.cgroups.monitor import cpu_series

    samples: dict[str, list[Any]] = {name: [] for name in managers}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for name, manager in managers.items():
            samples[name].append(manager.stats())
        time.sleep(interval)
    return {name: cpu_series(found) for name, found in samples.items()}


def average(points: list[tuple[float, float]]) -> float:
    """The mean value of a series (CPUs)."""
    return sum(v for _, v in points) / len(points) if points else 0.0


@contextlib.contextmanager
def loop_disk(directory: str, size_mib: int = 16) -> Iterator[str]:
    """A loop device over a file in ``directory``: a block device of our own to throttle; detached afterwards."""
    os.makedirs(directory, exist_ok=True)
    backing = os.path.join(directory, "disk.img")
    with open(backing, "wb") as handle:
        handle.truncate(size_mib << 20)
    device = subprocess.run(
        ["losetup", "--find", "--show", backing], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        os.unlink(backing)


def dd_rate(stderr: str, mib: float) -> float:
    """MiB/s from busybox ``time``'s "real 0m 3.02s" line for ``mib`` MiB copied."""
    found = re.search(r"real\s+(\d+)m\s*([\d.]+)s", stderr)
    if not found:
        raise ValueError(f"no timing in: {stderr!r}")
    return mib / max(int(found[1]) * 60 + float(found[2]), 0.001)


def fork_failures(manager: Any) -> int:
    """How often a fork was refused at the pids limit (``max`` in ``pids.events``, v1 and v2 alike)."""
    for directory in dict.fromkeys(manager.dirs.values()):
        path = os.path.join(directory, "pids.events")
        if os.path.exists(path):
            with open(path) as handle:
                return int(dict(line.split() for line in handle).get("max", 0))
    return 0


def cgroups_left() -> list[str]:
    """Cgroup directories still below a ``minictr`` parent, in any hierarchy (empty: clean)."""
    from minictr.doctor import cgroup_layout

    layout = cgroup_layout()
    found = []
    for mount in sorted({*layout["v1"].values(), *filter(None, [layout["v2"]["path"]])}):
        for directory, _, _ in os.walk(os.path.join(mount, "minictr")):
            found.append(directory)
    return found


# --- the exercise memory_usage (the other, join_cgroup, is a step: minictr.tutorial.step_exercises) ---------


def check_memory_usage(function: Callable[[int], int], pid: int, expected: Callable[[], int]) -> None:
    """Run ``function(pid)`` in a child process and compare with the container's own accounting."""
    judge_memory_usage(function, pid, expected).show()


def judge_memory_usage(function: Callable[[int], int], pid: int, expected: Callable[[], int]) -> Verdict:
    """``memory_usage(pid)`` must read the memory in use of the cgroup that ``pid`` is in (v1 or v2)."""
    name = function.__name__
    report = run_in_child(function, pid)
    printed = printed_by(report)
    if "error" in report:
        error = report["error"]
        hint = ""
        if error["type"] == "FileNotFoundError":
            hint = (
                "\n  On cgroup v1 the file is memory.usage_in_bytes under /sys/fs/cgroup/memory + the path of the "
                "'memory' line;\n  on v2 it is memory.current under /sys/fs/cgroup + the path of the '0::' line."
            )
        return Verdict(False, printed + raised(name, error) + hint)
    value = report.get("value")
    if value is None:
        return Verdict(False, printed + returned_none(f"{name}(pid)"))
    if not isinstance(value, int):
        return Verdict(
            False, printed + f"✘ {name}(pid) returned a {report.get('type')} ({value!r}); expected bytes as an int."
        )
    truth = expected()
    if abs(value - truth) > truth // 4:
        why = (
            "  That is far more than a small container uses: did you read the root cgroup (the whole host)?"
            if value > 8 * truth
            else "  Read the file of the cgroup named on the pid's line in /proc/<pid>/cgroup."
        )
        return Verdict(
            False,
            printed + f"✘ {name}(pid) returned {value} bytes; the container's cgroup says about {truth} bytes.\n" + why,
        )
    return Verdict(
        True,
        printed + f"✔ Correct: {name}(pid) finds the pid's cgroup in /proc/<pid>/cgroup and reads what "
        "the kernel charges it.",
    )


SOLUTIONS = {
    "memory_usage": '''
        def memory_usage(pid):
            """Bytes of memory charged to the cgroup that process `pid` is in (cgroup v1 or v2)."""
            with open(f"/proc/{pid}/cgroup") as handle:
                lines = [line.rstrip("\\n").split(":", 2) for line in handle]
            for _, controllers, path in lines:
                if "memory" in controllers.split(","):  # v1: its own memory hierarchy
                    with open(f"/sys/fs/cgroup/memory{path}/memory.usage_in_bytes") as usage:
                        return int(usage.read())
            path = next(path for number, _, path in lines if number == "0")  # v2: the unified tree
            with open(f"/sys/fs/cgroup{path}/memory.current") as usage:
                return int(usage.read())
    ''',
}
