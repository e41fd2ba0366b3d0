"""Looking into containers from the command line: ``ps``, ``logs``, ``inspect``, ``stats``, ``top``, ``port``.

minictr ps [-a] [-q] [--no-trunc] [--format json|table|TEMPLATE] [--filter KEY=VALUE]
minictr logs [-f] [--tail N] [-t] [--since TIME] CONTAINER
minictr inspect CONTAINER...                 Docker's JSON
minictr stats [--no-stream] [CONTAINER...]   CPU, memory and pids, from each container's cgroup
minictr top CONTAINER                        its processes, as the host numbers them
minictr port CONTAINER                       its published ports

``ps``, ``logs`` and ``inspect`` are added with the lifecycle verbs
(:mod:`minictr.cli.containers`), in the places ``--help`` lists them, and
under ``container`` too; :func:`add_commands` adds the other three.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
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


def add_logs(commands: Any) -> None:
    """Add ``logs`` to the subparsers ``commands``."""
    logs = commands.add_parser("logs", help="show a container's output")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output while the container runs")
    logs.add_argument("-n", "--tail", default="all", metavar="N", help="only the last N lines (default all)")
    logs.add_argument("-t", "--timestamps", action="store_true", help="show each chunk's time")
    logs.add_argument("--since", metavar="TIME", help="only output since TIME (RFC 3339, or relative: 10s, 5m, 2h)")
    logs.add_argument("container", metavar="CONTAINER")
    logs.set_defaults(handler=cmd_logs)


def add_inspect(commands: Any) -> None:
    """Add ``inspect`` (of containers) to the subparsers ``commands``."""
    inspect = commands.add_parser("inspect", help="show containers as JSON (Docker's shape)")
    inspect.add_argument("containers", nargs="+", metavar="CONTAINER")
    inspect.set_defaults(handler=cmd_inspect)


def ps_arguments(parser: argparse.ArgumentParser) -> None:
    """``ps``'s options (also ``container ls``'s)."""
    parser.add_argument("-a", "--all", action="store_true", help="stopped and created containers too")
    parser.add_argument("-q", "--quiet", action="store_true", help="only ids")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten the command")
    parser.add_argument(
        "--format",
        default="table",
        metavar="json|table|TEMPLATE",
        help="json: one object per line; a template of {{.ID}} {{.Names}} {{.Status}} {{.Image}} "
        "{{.Command}} {{.Ports}}…, with a 'table' prefix: a header and aligned columns",
    )
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="id=, name=, status=created|running|exited, ancestor=IMAGE (repeatable: all must hold)",
    )
    parser.set_defaults(handler=cmd_ps)


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


def cmd_ps(args: argparse.Namespace) -> int:
    """``minictr ps [-a] [-q] [--no-trunc] [--format json]``."""
    from minictr.engine.container_view import format_rows, ps_rows

    rows = [row for row in ps_rows(args.root, all=args.all or bool(args.filter), no_trunc=args.no_trunc)
            if all(_matches(row, f) for f in args.filter)]  # fmt: skip
    if args.quiet:
        print("\n".join(row["ID"] for row in rows)) if rows else None
    else:
        for line in format_rows(rows, args.format):
            print(line)
    return 0


def _matches(row: dict[str, Any], text: str) -> bool:
    """``ps --filter``: Docker's keys id (prefix), name (substring), status, ancestor (the image)."""
    from minictr.errors import UsageError

    key, _, value = text.partition("=")
    checks: dict[str, Callable[[], bool]] = {
        "id": lambda: row["ID"].startswith(value), "name": lambda: value in row["Names"],
        "status": lambda: row["State"] == value, "ancestor": lambda: row["Image"] == value,
    }  # fmt: skip
    if key not in checks:
        raise UsageError(f"--filter {text!r}: filter by id=, name=, status= or ancestor=")
    return checks[key]()


def cmd_logs(args: argparse.Namespace) -> int:
    """``minictr logs [-f] [--tail N] [-t]``: stdout entries to stdout, stderr entries to stderr."""
    from minictr.engine import logs
    from minictr.engine.managed import resolve, status_of
    from minictr.errors import UsageError
    from minictr.runtime.state import read_state

    if args.tail != "all" and not args.tail.isdigit():
        raise UsageError(f"--tail {args.tail!r}: a number of lines, or all")
    directory = resolve(args.container, args.root)
    entries, offset = logs.read_entries(directory)
    if args.since:
        since = logs.since(args.since)
        entries = [entry for entry in entries if entry.get("time", "") >= since]
    for entry in logs.tail(entries, None if args.tail == "all" else int(args.tail)):
        write_entry(entry, args.timestamps)
    if args.follow:
        for entry in logs.follow(directory, lambda: status_of(read_state(directory), directory) == "running", offset):
            write_entry(entry, args.timestamps)
    return 0


def write_entry(entry: dict[str, Any], timestamps: bool) -> None:
    """One log entry, to stdout or stderr as the container wrote it (``-t``: its time first)."""
    stream = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
    text = entry.get("log", "")
    if timestamps:
        text = f"{entry.get('time', '')} {text}"
    stream.write(text)
    stream.flush()


def cmd_inspect(args: argparse.Namespace) -> int:
    """``minictr inspect``: a JSON array, as Docker prints it."""
    from minictr.engine.container_view import inspect
    from minictr.engine.managed import resolve

    print(json.dumps([inspect(resolve(c, args.root)) for c in args.containers], indent=2))
    return 0
