"""The container lifecycle commands of the ``minictr`` command line, spelled as Docker spells them.

    minictr create [RUN OPTIONS] IMAGE [COMMAND [ARG...]]
    minictr start CONTAINER...               minictr restart [-t N] CONTAINER...
    minictr stop [-t N] CONTAINER...         minictr rm [-f] [-v] CONTAINER...
    minictr pause CONTAINER...               minictr unpause CONTAINER...
    minictr rename CONTAINER NEW_NAME        minictr cp [-a] [-L] SRC DEST (one of them CONTAINER:PATH)
    minictr wait CONTAINER...                minictr kill [-s SIGNAL] CONTAINER...
    minictr attach [--detach-keys KEYS] [--no-stdin] [--sig-proxy=false] CONTAINER
    minictr exec [-i] [-t] [-d] [-u USER] [OPTIONS] CONTAINER COMMAND [ARG...]
    minictr update [RESOURCE OPTIONS] CONTAINER
    minictr container ls | prune | ...       (the long spellings)

``create`` takes ``run``'s options (:mod:`minictr.cli.run`); ``ps``, ``logs``
and ``inspect`` (:mod:`minictr.cli.inspect`) are listed among these verbs.
:func:`add_running_commands` adds ``exec``, ``kill`` and ``update``,
:func:`add_commands` the rest (both from :mod:`minictr.cli.main`); each
handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

TYPE_CHECKING = False  # typing is for checkers; the CLI starts without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.container import Finished

from minictr.cli.each import each
from minictr.cli.inspect import add_inspect, add_logs, ps_arguments, write_entry
from minictr.cli.run import add_resource_flags, cmd_create, resource_options, run_arguments, sig_proxy_flag
from minictr.errors import ExecError, UsageError


def add_running_commands(commands: Any) -> None:
    """Add ``exec``, ``kill`` and ``update``, the verbs for a running container, to ``commands``."""
    execute = commands.add_parser("exec", help="run a command in a running container")
    execute.add_argument(
        "-e", "--env", action="append", default=[], metavar="NAME[=VALUE]", help="set an environment variable"
    )
    execute.add_argument("-w", "--workdir", help="working directory inside the container")
    execute.add_argument(
        "-i", "--interactive", action="store_true", help="keep stdin open: your input reaches the program"
    )
    execute.add_argument("-t", "--tty", action="store_true", help="give the program a terminal of its own (a pty)")
    execute.add_argument("-d", "--detach", action="store_true", help="run it in the background (output discarded)")
    execute.add_argument(
        "-u",
        "--user",
        metavar="USER[:GROUP]",
        help="run it as this user (a name from the container's /etc/passwd, or a uid)",
    )
    execute.add_argument("container", metavar="CONTAINER")
    execute.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    execute.set_defaults(handler=cmd_exec)

    kill = commands.add_parser("kill", help="send a signal to a running container (default SIGKILL)")
    kill.add_argument("-s", "--signal", default="KILL", help="signal name or number")
    kill.add_argument("containers", nargs="+", metavar="CONTAINER")
    kill.set_defaults(handler=cmd_kill)

    update = commands.add_parser("update", help="change the resource limits of a running container")
    add_resource_flags(update)
    update.add_argument("container", metavar="CONTAINER")
    update.set_defaults(handler=cmd_update, devices=[])


def add_commands(commands: Any) -> None:
    """Add the lifecycle commands to ``commands`` (``create`` takes ``run``'s options)."""
    create = commands.add_parser("create", help="create a container without starting it", add_help=False)
    run_arguments(create)
    create.set_defaults(handler=cmd_create)
    _add_verbs(commands)
    container = commands.add_parser("container", help="manage containers")
    sub = container.add_subparsers(dest="container_command", metavar="COMMAND")
    sub.required = True
    _add_verbs(sub)
    ps_arguments(sub.add_parser("ls", help="list containers"))
    prune = sub.add_parser("prune", help="remove every stopped container")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask (minictr never asks)")
    prune.set_defaults(handler=cmd_prune)


def _add_verbs(commands: Any) -> None:
    start = commands.add_parser("start", help="start stopped or created containers")
    start.add_argument(
        "-a", "--attach", action="store_true", help="attach to its output (one container): its status is ours"
    )
    start.add_argument("-i", "--interactive", action="store_true", help="with -a, send this terminal's input too")
    start.add_argument(
        "--detach-keys", default="ctrl-p,ctrl-q", metavar="KEYS", help="keys that detach (default ctrl-p,ctrl-q)"
    )
    sig_proxy_flag(start)
    start.add_argument("containers", nargs="+", metavar="CONTAINER")
    start.set_defaults(handler=cmd_start)
    wait = commands.add_parser("wait", help="wait for containers to stop; print their exit status")
    wait.add_argument("containers", nargs="+", metavar="CONTAINER")
    wait.set_defaults(handler=cmd_wait)
    for name, text in (
        ("stop", "stop running containers (their stop signal, then SIGKILL)"),
        ("restart", "stop, then start containers"),
    ):
        verb = commands.add_parser(name, help=text)
        verb.add_argument(
            "-t", "--time", type=int, metavar="SECONDS", help="seconds to wait before SIGKILL (default 10)"
        )
        verb.add_argument("containers", nargs="+", metavar="CONTAINER")
        verb.set_defaults(handler=cmd_stop if name == "stop" else cmd_restart)
    rm = commands.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too (named ones stay)")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")
    rm.set_defaults(handler=cmd_rm)
    ps_arguments(commands.add_parser("ps", help="list containers"))
    add_logs(commands)
    attach = commands.add_parser("attach", help="connect this terminal to a running container's input and output")
    attach.add_argument(
        "--detach-keys", default="ctrl-p,ctrl-q", metavar="KEYS", help="keys that detach (default ctrl-p,ctrl-q)"
    )
    attach.add_argument("--no-stdin", action="store_true", help="do not send this terminal's input")
    sig_proxy_flag(attach)
    attach.add_argument("container", metavar="CONTAINER")
    attach.set_defaults(handler=cmd_attach)
    for name, text in (("pause", "freeze every process of running containers"), ("unpause", "thaw paused containers")):
        verb = commands.add_parser(name, help=text)
        verb.add_argument("containers", nargs="+", metavar="CONTAINER")
        verb.set_defaults(handler=cmd_pause, paused=name == "pause")
    rename = commands.add_parser("rename", help="give a container another name")
    rename.add_argument("container", metavar="CONTAINER")
    rename.add_argument("name", metavar="NEW_NAME")
    rename.set_defaults(handler=cmd_rename)
    cp = commands.add_parser("cp", help="copy files between a container and the host (CONTAINER:PATH; - a tar stream)")
    cp.add_argument("-a", "--archive", action="store_true", help="keep owners (uid, gid)")
    cp.add_argument("-L", "--follow-link", action="store_true", help="follow a symlink given as SRC")
    cp.add_argument("source", metavar="SRC")
    cp.add_argument("dest", metavar="DEST")
    cp.set_defaults(handler=cmd_cp)
    add_inspect(commands)


# --- handlers ----------------------------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    """``minictr start [-a [-i]]``."""
    from minictr.engine.managed import start

    if not args.attach:
        return each(args.containers, lambda c: (start(c, args.root), c)[1], args.debug)
    if len(args.containers) != 1:
        raise UsageError("start -a: one container at a time")
    start(args.containers[0], args.root)
    args.container, args.no_stdin = args.containers[0], not args.interactive
    if args.interactive:
        return cmd_attach(args)
    with _signals_proxied(args):
        return _follow_this_run(args)  # from its log: what it printed before we could connect is not lost


def _signals_proxied(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """``--sig-proxy`` of ``start -a`` and ``attach``: this process's SIGINT, SIGTERM and SIGHUP go to the container.

    Not to a container with a terminal (``-t``): as Docker, its keys reach it through its pty.
    """
    from minictr.engine.console import forward_signals
    from minictr.engine.lifecycle import send_signal
    from minictr.engine.managed import resolve
    from minictr.errors import MinictrError
    from minictr.runtime.state import read_state

    state = read_state(resolve(args.container, args.root))

    def send(sig: int) -> None:
        with contextlib.suppress(MinictrError):  # it stopped meanwhile: nothing to pass on
            send_signal(state["id"], sig, args.root)

    return forward_signals(send, args.sig_proxy == "true" and not state.get("lifecycle", {}).get("tty"))


def _follow_this_run(args: argparse.Namespace) -> int:
    """``start -a``: the output of the run just started, as it comes, then its exit status."""
    from minictr.engine import logs
    from minictr.engine.lifecycle import wait
    from minictr.engine.managed import resolve, status_of
    from minictr.runtime.state import read_state

    directory = resolve(args.container, args.root)
    started = read_state(directory).get("started_at") or ""
    entries, offset = logs.read_entries(directory)
    for entry in entries:
        if entry.get("time", "") >= started:
            write_entry(entry, False)
    for entry in logs.follow(directory, lambda: status_of(read_state(directory), directory) == "running", offset):
        write_entry(entry, False)
    return wait(args.container, args.root)


def cmd_stop(args: argparse.Namespace) -> int:
    """``minictr stop [-t N]``."""
    from minictr.engine.lifecycle import stop

    return each(args.containers, lambda c: (stop(c, args.time, args.root), c)[1], args.debug)


def cmd_restart(args: argparse.Namespace) -> int:
    """``minictr restart [-t N]``."""
    from minictr.engine.lifecycle import restart

    return each(args.containers, lambda c: (restart(c, args.time, args.root), c)[1], args.debug)


def cmd_rm(args: argparse.Namespace) -> int:
    """``minictr rm [-f] [-v]``."""
    from minictr.engine.lifecycle import remove

    return each(args.containers, lambda c: (remove(c, args.force, args.root, volumes=args.volumes), c)[1], args.debug)


def cmd_pause(args: argparse.Namespace) -> int:
    """``minictr pause`` / ``unpause``."""
    from minictr.engine.lifecycle import pause

    return each(args.containers, lambda c: (pause(c, args.root, paused=args.paused), c)[1], args.debug)


def cmd_rename(args: argparse.Namespace) -> int:
    """``minictr rename CONTAINER NEW_NAME``."""
    from minictr.engine.lifecycle import rename

    rename(args.container, args.name, args.root)
    return 0


def cmd_cp(args: argparse.Namespace) -> int:
    """``minictr cp``: Docker's rules (see :mod:`minictr.engine.container_cp`)."""
    from minictr.engine.container_cp import copy

    copy(args.source, args.dest, archive=args.archive, follow=args.follow_link, state_root=args.root)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    """``minictr wait``: each container's exit status, once it stopped."""
    from minictr.engine.lifecycle import wait

    return each(args.containers, lambda c: wait(c, args.root), args.debug)


def cmd_attach(args: argparse.Namespace) -> int:
    """``minictr attach``: until the container exits (its status is ours) or the detach keys come (0)."""
    from minictr.engine.attach import attach, parse_keys
    from minictr.engine.lifecycle import wait
    from minictr.engine.managed import resolve, status_of
    from minictr.runtime.state import read_state

    keys = parse_keys(args.detach_keys)
    directory = resolve(args.container, args.root)
    state = read_state(directory)
    if not state.get("managed") or status_of(state, directory) != "running":
        raise UsageError(f"container {state['id']} is not running (or not detached): start it first")
    with _signals_proxied(args):
        detached = attach(directory, keys, stdin=not args.no_stdin)
    if detached:
        print("\r\nread escape sequence", file=sys.stderr)
        return 0
    return wait(args.container, args.root)


def cmd_prune(args: argparse.Namespace) -> int:
    """``minictr container prune``."""
    from minictr.engine.lifecycle import prune

    removed = prune(args.root)
    print("Deleted Containers:" if removed else "Total reclaimed: no stopped containers")
    for container in removed:
        print(container)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    """``minictr exec``: another program inside a running container."""
    from minictr.engine.exec import exec_in

    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not command:
        raise UsageError("exec needs a command to run")
    from minictr.engine.terminal import run_attached

    def start(stdio: dict[str, object], terminal: bool) -> Finished:
        return exec_in(args.container, command, env=args.env, workdir=args.workdir, state_root=args.root, stdio=stdio,
                       terminal=terminal, user=args.user)  # fmt: skip

    try:
        if args.detach:
            exec_in(args.container, command, env=args.env, workdir=args.workdir, state_root=args.root, user=args.user,
                    detach=True)  # fmt: skip
            return 0
        return run_attached(start, args.interactive, args.tty).exit_code
    except ExecError as exc:
        print(f"minictr: {exc}", file=sys.stderr)
        return exc.exit_code


def cmd_update(args: argparse.Namespace) -> int:
    """``minictr update``: new limits for a running container (a memory limit below its use is refused)."""
    from minictr.engine.container import update
    from minictr.engine.run_options import RunOptions

    update(args.container, RunOptions(**resource_options(args)), state_root=args.root)
    print(args.container)
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """``minictr kill``: signal each running container's PID 1."""
    import signal

    from minictr.engine.container import kill

    name = args.signal.upper()
    try:
        number = int(name) if name.isdigit() else int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))
    except AttributeError as exc:
        raise UsageError(f"--signal {args.signal!r}: no such signal") from exc

    def signal_one(container: str) -> str:
        kill(container, number, state_root=args.root)
        return container

    return each(args.containers, signal_one, args.debug)
