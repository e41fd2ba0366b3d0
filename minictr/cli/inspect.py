"""Looking into running containers from the command line: ``stats``, ``top``, ``port``.

minictr stats [--no-stream] [CONTAINER...]   CPU, memory and pids, from each container's cgroup
minictr top CONTAINER                        its processes, as the host numbers them
minictr port CONTAINER                       its published ports
"""

from __future__ import annotations

import argparse
import os
import sys
import time

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from typing import Any


def add_commands(commands: Any) -> None:
    """Add ``stats``, ``top`` and ``port`` to the subparsers ``commands``."""
    stats = commands.add_parser("stats", help="CPU, memory and pids of running containers (from their cgroups)")
    stats.add_argument("--no-stream", action="store_true", help="print one reading and exit")
    stats.add_argument("containers", nargs="*", metavar="CONTAINER", help="default: every running container")
    stats.set_defaults(handler=cmd_stats)
    top = commands.add_parser("top", help="the processes of a running container")
    top.add_argument("container", metavar="CONTAINER")
    top.set_defaults(handler=cmd_top)
    port = commands.add_parser("port", help="the published ports of a container")
    port.add_argument("container", metavar="CONTAINER")
    port.set_defaults(handler=cmd_port)


def _size(number: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if number < 1024 or unit == "GiB":
            return f"{number:.4g}{unit}" if unit != "B" else f"{int(number)}B"
        number /= 1024
    return ""


def stats_rows(state_root: str | None, containers: list[str], interval: float = 0.5) -> list[dict[str, str]]:
    """One ``docker stats`` row per container: two readings ``interval`` apart give the CPU share."""
    from minictr.engine.container import cgroup_of
    from minictr.engine.container_view import ps_rows
    from minictr.kernel.cgroups.stats import cpu_between

    names = containers or [row["ID"] for row in ps_rows(state_root)]
    managers = {name: cgroup_of(name, state_root) for name in names}
    before = {name: manager.stats() for name, manager in managers.items()}
    time.sleep(interval)
    rows = []
    for name, manager in managers.items():
        after = manager.stats()
        limit = after.memory_limit or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        rows.append({
            "CONTAINER": name, "CPU %": f"{cpu_between(before[name], after) * 100:.2f}%",
            "MEM USAGE / LIMIT": f"{_size(after.memory)} / {_size(limit)}",
            "MEM %": f"{after.memory / limit * 100:.2f}%", "PIDS": str(after.pids),
        })  # fmt: skip
    return rows


def cmd_stats(args: argparse.Namespace) -> int:
    """``minictr stats [--no-stream]``: until ^C, a fresh table each second."""
    from minictr.cli.images import print_table

    while True:
        rows = stats_rows(args.root, args.containers)
        if not args.no_stream:
            sys.stdout.write("\033[2J\033[H")  # clear the screen, as docker stats does
        print_table(rows) if rows else print("CONTAINER   CPU %   MEM USAGE / LIMIT   MEM %   PIDS")
        sys.stdout.flush()
        if args.no_stream:
            return 0
        time.sleep(0.5)


def cmd_top(args: argparse.Namespace) -> int:
    """``minictr top``: PID, PPID and command of every process in the container's cgroup."""
    from minictr.cli.images import print_table
    from minictr.engine.container import cgroup_of

    rows = []
    for pid in sorted(cgroup_of(args.container, args.root).pids()):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                ppid = handle.read().rsplit(")", 1)[1].split()[1]
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command = handle.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # it ended meanwhile
        rows.append({"PID": str(pid), "PPID": ppid, "CMD": command})
    print_table(rows)
    return 0


def cmd_port(args: argparse.Namespace) -> int:
    """``minictr port``: ``80/tcp -> 0.0.0.0:8080``, one line per published port."""
    from minictr.engine.managed import resolve
    from minictr.runtime.state import read_state

    for port in (read_state(resolve(args.container, args.root)).get("network") or {}).get("ports", []):
        print(
            f"{port['container_port']}/{port.get('proto', 'tcp')} -> "
            f"{port.get('host_ip') or '0.0.0.0'}:{port['host_port']}"
        )
    return 0
