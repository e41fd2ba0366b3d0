"""``minictr-oci``: runc's command line, one function per verb.

Global flags come before the verb (``minictr-oci --root R --log F
--log-format json create …``), as engines pass them. Errors are one line
on stderr and, with ``--log``, a ``{"level": "error", "msg": …}`` line in
the log file, which podman and containerd's shim read and show; the
wording of the common ones is runc's (engines map
``executable file not found`` to exit 127). The exit status is runc's
too: 1 for an error, the program's own status for ``run`` and ``exec``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

from minictr.argformat import ArgumentParser, RawDescriptionHelpFormatter
from minictr.errors import MinictrError, UsageError
from minictr.runtime.oci import lifecycle, operations, store

VERSION = "0.1.0"


class Log:
    """Where messages go: stderr, and the ``--log`` file in text or JSON lines."""

    def __init__(self, path: str | None, form: str, debug: bool) -> None:
        self.path, self.form, self.debug_on = path, form, debug

    def write(self, level: str, message: str) -> None:
        """Append one line to the log file (if any)."""
        if not self.path:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.form == "json":
            line = json.dumps({"level": level, "msg": message, "time": stamp})
        else:
            line = f'time="{stamp}" level={level} msg="{message}"'
        with open(self.path, "a") as handle:
            handle.write(line + "\n")

    def debug(self, message: str) -> None:
        """A debug line, only with ``--debug``."""
        if self.debug_on:
            self.write("debug", message)


# --- the verbs -------------------------------------------------------------------------------


def cmd_spec(args: argparse.Namespace, log: Log) -> int:
    """Write a starting config.json into the bundle (refusing to overwrite one)."""
    from minictr.runtime.oci.features import bundle_spec

    path = os.path.join(args.bundle or ".", "config.json")
    if os.path.exists(path):
        raise UsageError("File config.json exists. Remove it first")
    with open(path, "w") as handle:
        json.dump(bundle_spec(args.rootless), handle, indent=2)
        handle.write("\n")
    return 0


def cmd_create(args: argparse.Namespace, log: Log) -> int:
    """Set a container up; it waits for ``start``."""
    lifecycle.create(args.root, args.id, args.bundle or ".", pid_file=args.pid_file, console_socket=args.console_socket,
                     preserve_fds=args.preserve_fds, systemd_cgroup=args.systemd_cgroup)  # fmt: skip
    return 0


def cmd_start(args: argparse.Namespace, log: Log) -> int:
    """Let a created container's program run."""
    lifecycle.start(args.root, args.id)
    return 0


def cmd_run(args: argparse.Namespace, log: Log) -> int:
    """create + start; unless ``--detach``, wait for the program and delete the container."""
    from minictr.runtime.oci.run import run

    return run(args)


def cmd_state(args: argparse.Namespace, log: Log) -> int:
    """Print the runtime-spec's state of a container."""
    print(json.dumps(lifecycle.oci_state(args.root, args.id), indent=2))
    return 0


def cmd_kill(args: argparse.Namespace, log: Log) -> int:
    """Send a signal (default SIGTERM) to the container's first process, or to all with ``--all``."""
    lifecycle.kill(args.root, args.id, lifecycle.parse_signal(args.signal), args.all)
    return 0


def cmd_delete(args: argparse.Namespace, log: Log) -> int:
    """Remove a stopped container (a running one with ``--force``)."""
    lifecycle.delete(args.root, args.id, args.force)
    return 0


def cmd_list(args: argparse.Namespace, log: Log) -> int:
    """List the containers under ``--root``."""
    rows = operations.listing(args.root)
    if args.format == "json":
        print(json.dumps(rows))
        return 0
    print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} {'CREATED':<32} OWNER")
    for row in rows:
        print(
            f"{row['id']:<20} {row['pid']:<8} {row['status']:<10} {row['bundle']:<40} {row['created']:<32}"
            f" {row['owner']}"
        )
    return 0


def cmd_ps(args: argparse.Namespace, log: Log) -> int:
    """The container's processes: host pids (json) or a table."""
    pids = operations.ps(args.root, args.id)
    if args.format == "json":
        print(json.dumps(pids))
        return 0
    print(f"{'PID':<8} CMD")
    for pid in pids:
        print(f"{pid:<8} {operations.command_line(pid)}")
    return 0


def cmd_exec(args: argparse.Namespace, log: Log) -> int:
    """Run another process in a running container."""
    if args.process:
        with open(args.process) if args.process != "-" else sys.stdin as handle:
            process = json.load(handle)
    elif args.command:
        process = operations.exec_args(args.root, args.id, args.command, env=args.env, cwd=args.cwd, user=args.user,
                                       tty=args.tty, caps=args.cap)  # fmt: skip
    else:
        raise UsageError("exec needs --process FILE or a command to run")
    return operations.exec_process(args.root, args.id, process, detach=args.detach, pid_file=args.pid_file,
                                   console_socket=args.console_socket, preserve_fds=args.preserve_fds)  # fmt: skip


def cmd_features(args: argparse.Namespace, log: Log) -> int:
    """Print the runtime-spec's features document."""
    from minictr.runtime.oci.features import features

    print(json.dumps(features(), indent=2))
    return 0


def cmd_pause(args: argparse.Namespace, log: Log) -> int:
    """Freeze every process of the container."""
    operations.pause(args.root, args.id, True)
    return 0


def cmd_resume(args: argparse.Namespace, log: Log) -> int:
    """Thaw a paused container."""
    operations.pause(args.root, args.id, False)
    return 0


def cmd_update(args: argparse.Namespace, log: Log) -> int:
    """Change a container's limits: ``--resources FILE|-`` (OCI LinuxResources JSON) and flags."""
    resources: dict[str, Any] = {}
    if args.resources:
        with open(args.resources) if args.resources != "-" else sys.stdin as handle:
            resources = json.load(handle)
    if args.memory is not None:
        resources.setdefault("memory", {})["limit"] = args.memory
    if args.pids_limit is not None:
        resources.setdefault("pids", {})["limit"] = args.pids_limit
    for flag, key in (("cpu_quota", "quota"), ("cpu_period", "period"), ("cpu_shares", "shares")):
        if getattr(args, flag) is not None:
            resources.setdefault("cpu", {})[key] = getattr(args, flag)
    if not resources:
        raise UsageError("update: nothing to change (give --resources or a limit flag)")
    operations.update(args.root, args.id, resources)
    return 0


def cmd_events(args: argparse.Namespace, log: Log) -> int:
    """Print the container's statistics as JSON: once with ``--stats``, else every ``--interval`` until it stops."""
    while True:
        print(json.dumps(operations.stats_event(args.root, args.id)), flush=True)
        if args.stats:
            return 0
        time.sleep(args.interval)
        if store.load(args.root, args.id).status.value == "stopped":
            return 0


# --- the command line ------------------------------------------------------------------------


def _verb(sub: Any, name: str, function: Callable[..., int], *, with_id: bool = True) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=(function.__doc__ or "").split("\n")[0])
    parser.set_defaults(function=function)
    if with_id:
        parser.add_argument("id")
    return parser


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", "-b", default=".")
    parser.add_argument("--pid-file")
    parser.add_argument("--console-socket")
    parser.add_argument("--preserve-fds", type=int, default=0)
    for flag in ("--no-pivot", "--no-new-keyring"):
        parser.add_argument(flag, action="store_true")  # accepted as runc does; a new keyring is never made


#: runc's global flags that take a value, and those that do not.
_GLOBAL_VALUES = ("--root", "--log", "--log-format")
_GLOBAL_SWITCHES = ("--debug", "--systemd-cgroup")


def verb_of(argv: list[str]) -> str | None:
    """The verb of ``argv`` past the global flags (None when there is none to find: then every verb is built)."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_VALUES:
            next(words, None)
        elif word not in _GLOBAL_SWITCHES and not word.startswith(tuple(f"{flag}=" for flag in _GLOBAL_VALUES)):
            return None if word.startswith("-") else word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """runc's global flags and verbs; ``only`` builds that one verb's (an engine's every call pays for the parser)."""
    parser = ArgumentParser(
        prog="minictr-oci",
        description="An OCI runtime with runc's command line.",
        formatter_class=RawDescriptionHelpFormatter,
    )
    parser.add_argument("--root", default=store.DEFAULT_ROOT)
    parser.add_argument("--log")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--systemd-cgroup", action="store_true")
    parser.add_argument("--version", "-v", action="version", version=f"minictr-oci version {VERSION}\nspec: 1.2.0")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (function, with_id, flags) in _VERBS.items():
        if only in (None, name) or only not in _VERBS:  # an unknown verb: argparse lists them all
            parser_of_verb = _verb(sub, name, function, with_id=with_id)
            if flags is not None:
                flags(parser_of_verb)
    return parser


def _exec_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", nargs=argparse.REMAINDER)
    parser.add_argument("--process", "-p")
    parser.add_argument("--tty", "-t", action="store_true")
    parser.add_argument("--console-socket")
    parser.add_argument("--detach", "-d", action="store_true")
    parser.add_argument("--pid-file")
    parser.add_argument("--cwd")
    parser.add_argument("--env", "-e", action="append", default=[])
    parser.add_argument("--user", "-u")
    parser.add_argument("--cap", "-c", action="append", default=[])
    parser.add_argument("--preserve-fds", type=int, default=0)


def _spec_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rootless", action="store_true")
    parser.add_argument("--bundle", "-b")


def _run_flags(parser: argparse.ArgumentParser) -> None:
    _create_flags(parser)
    parser.add_argument("--detach", "-d", action="store_true")


def _kill_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("signal", nargs="?", default="TERM")
    parser.add_argument("--all", "-a", action="store_true")


def _delete_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", "-f", action="store_true")


def _format_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", "-f", choices=("table", "json"), default="table")


def _update_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resources", "-r")
    parser.add_argument("--memory", type=int)
    parser.add_argument("--pids-limit", type=int)
    for flag in ("--cpu-quota", "--cpu-period", "--cpu-shares"):
        parser.add_argument(flag, type=int)


def _events_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", action="store_true")
    parser.add_argument("--interval", type=float, default=5.0)


#: Each verb: its function, whether it takes a container id, its own flags (``--help``'s order).
_VERBS: dict[str, tuple[Callable[..., int], bool, Callable[[argparse.ArgumentParser], None] | None]] = {
    "spec": (cmd_spec, False, _spec_flags),
    "create": (cmd_create, True, _create_flags),
    "start": (cmd_start, True, None),
    "run": (cmd_run, True, _run_flags),
    "state": (cmd_state, True, None),
    "kill": (cmd_kill, True, _kill_flags),
    "delete": (cmd_delete, True, _delete_flags),
    "list": (cmd_list, False, _format_flag),
    "ps": (cmd_ps, True, _format_flag),
    "exec": (cmd_exec, True, _exec_parser),
    "features": (cmd_features, False, None),
    "pause": (cmd_pause, True, None),
    "resume": (cmd_resume, True, None),
    "update": (cmd_update, True, _update_flags),
    "events": (cmd_events, True, _events_flags),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``minictr-oci``."""
    args = build_parser(verb_of(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    log = Log(args.log, args.log_format, args.debug)
    log.debug(f"{args.verb} {getattr(args, 'id', '')}")
    try:
        return int(args.function(args, log))
    except (MinictrError, OSError) as exc:
        code = 255 if args.verb == "exec" else 1  # runc's: exec's own failure apart from the program's status
        if args.debug:
            import traceback

            traceback.print_exc()
        message = str(exc) if isinstance(exc, MinictrError) else f"{exc.strerror}: {exc.filename or ''}".rstrip(": ")
        log.write("error", message)
        print(message, file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130
