"""The container lifecycle commands of the ``minictr`` command line, spelled as Docker spells them.

    minictr create [RUN OPTIONS] IMAGE [COMMAND [ARG...]]
    minictr start CONTAINER...               minictr restart [-t N] CONTAINER...
    minictr stop [-t N] CONTAINER...         minictr rm [-f] [-v] CONTAINER...
    minictr pause CONTAINER...               minictr unpause CONTAINER...
    minictr rename CONTAINER NEW_NAME        minictr cp [-a] [-L] SRC DEST (one of them CONTAINER:PATH)
    minictr ps [-a] [-q] [--no-trunc] [--format json|table|TEMPLATE] [--filter KEY=VALUE]
    minictr logs [-f] [--tail N] [-t] [--since TIME] CONTAINER
    minictr wait CONTAINER...                minictr inspect CONTAINER...
    minictr attach [--detach-keys KEYS] [--no-stdin] [--sig-proxy=false] CONTAINER
    minictr container ls | prune | ...       (the long spellings)

``run``'s lifecycle flags (``--rm``, ``-i``, ``-t``, ``--restart``,
``--stop-signal``, ``--stop-timeout``, ``--log-opt``) are added to ``run``
and ``create`` by :func:`add_run_flags`. :func:`add_commands` adds the rest
(``cli.py``); each handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

TYPE_CHECKING = False  # typing is for checkers; the CLI starts without it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from minictr.engine.run_options import RunOptions

from minictr.cli.each import each


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``run`` and ``create`` that concern the container's life."""
    add = parser.add_argument
    add("--rm", action="store_true", help="remove the container when it exits")
    add("-i", "--interactive", action="store_true", help="keep stdin open: the caller's input reaches the container")
    add("-t", "--tty", action="store_true", help="give the container a terminal of its own (a pty)")
    add("--restart", default="no", metavar="POLICY", help="no (default), on-failure[:N], always or unless-stopped")
    add(
        "--stop-signal",
        metavar="SIGNAL",
        help="the signal stop sends first (default: the image's StopSignal, else SIGTERM)",
    )
    add("--stop-timeout", type=int, metavar="SECONDS", help="how long stop waits before SIGKILL (default 10)")
    add(
        "--log-opt",
        action="append",
        default=[],
        metavar="max-size=SIZE|max-file=N",
        help="the json-file log's rotation",
    )
    _sig_proxy_flag(parser)
    add("--health-cmd", metavar="COMMAND", help="a command run inside (through sh -c) to check its health")
    add("--health-interval", metavar="DURATION", help="time between checks (30s, 1m30s; default 30s)")
    add("--health-timeout", metavar="DURATION", help="longest a check may run (default 30s)")
    add("--health-retries", type=int, metavar="N", help="failures in a row that make it unhealthy (default 3)")
    add("--health-start-period", metavar="DURATION", help="time to start during which failures do not count")
    add("--no-healthcheck", action="store_true", help="disable any healthcheck the image sets")


def _sig_proxy_flag(parser: argparse.ArgumentParser) -> None:
    """``--sig-proxy``, as ``run``, ``start`` and ``attach`` take it."""
    parser.add_argument(
        "--sig-proxy", default="true", choices=("true", "false"), metavar="true|false",
        help="pass SIGINT, SIGTERM and SIGHUP sent to minictr on to the container (default true; not with -t)",
    )  # fmt: skip


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The lifecycle settings a ``run``/``create`` command line asks for (checked)."""
    from minictr.engine.managed import lifecycle_settings

    return lifecycle_settings(
        auto_remove=args.rm, restart=args.restart, stop_signal=args.stop_signal, stop_timeout=args.stop_timeout,
        tty=args.tty, interactive=args.interactive, log_opts=args.log_opt,
    )  # fmt: skip


def add_commands(commands: Any, run_parser: Any) -> None:
    """Add the lifecycle commands to ``commands``; ``run_parser`` builds ``create``'s options like ``run``'s."""
    create = commands.add_parser("create", help="create a container without starting it", add_help=False)
    run_parser(create)
    create.set_defaults(handler=cmd_create)
    _add_verbs(commands)
    container = commands.add_parser("container", help="manage containers")
    sub = container.add_subparsers(dest="container_command", metavar="COMMAND")
    sub.required = True
    _add_verbs(sub)
    ls = sub.add_parser("ls", help="list containers")
    _ps_arguments(ls)
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
    _sig_proxy_flag(start)
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
    ps = commands.add_parser("ps", help="list containers")
    _ps_arguments(ps)
    logs = commands.add_parser("logs", help="show a container's output")
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output while the container runs")
    logs.add_argument("-n", "--tail", default="all", metavar="N", help="only the last N lines (default all)")
    logs.add_argument("-t", "--timestamps", action="store_true", help="show each chunk's time")
    logs.add_argument("--since", metavar="TIME", help="only output since TIME (RFC 3339, or relative: 10s, 5m, 2h)")
    logs.add_argument("container", metavar="CONTAINER")
    logs.set_defaults(handler=cmd_logs)
    attach = commands.add_parser("attach", help="connect this terminal to a running container's input and output")
    attach.add_argument(
        "--detach-keys", default="ctrl-p,ctrl-q", metavar="KEYS", help="keys that detach (default ctrl-p,ctrl-q)"
    )
    attach.add_argument("--no-stdin", action="store_true", help="do not send this terminal's input")
    _sig_proxy_flag(attach)
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
    inspect = commands.add_parser("inspect", help="show containers as JSON (Docker's shape)")
    inspect.add_argument("containers", nargs="+", metavar="CONTAINER")
    inspect.set_defaults(handler=cmd_inspect)


def _ps_arguments(parser: argparse.ArgumentParser) -> None:
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


# --- handlers ----------------------------------------------------------------------------------


def run_detached(args: argparse.Namespace, options: Any, command: list[str]) -> int:
    """``run -d``: create, then start under a monitor; print the id. A container that cannot start is removed."""
    from minictr.engine import lifecycle, managed
    from minictr.errors import ExecError

    settings = settings_from(args)
    container = managed.create(args.image, command, options, settings, data_root=args.data_root, state_root=args.root)
    try:
        managed.start(container, args.root)
    except ExecError as exc:
        lifecycle.remove(container, force=True, state_root=args.root)
        print(f"minictr: {exc}", file=sys.stderr)
        return exc.exit_code
    except BaseException:
        lifecycle.remove(container, force=True, state_root=args.root)
        raise
    print(container)
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """``minictr create``: a container, status created; ``start`` runs it."""
    from minictr.engine.managed import create

    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    print(
        create(
            args.image, command, run_options(args), settings_from(args), data_root=args.data_root, state_root=args.root
        )
    )
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    """``minictr start [-a [-i]]``."""
    from minictr.engine.managed import start
    from minictr.errors import UsageError

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
            _write_entry(entry, False)
    for entry in logs.follow(directory, lambda: status_of(read_state(directory), directory) == "running", offset):
        _write_entry(entry, False)
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
    from minictr.errors import UsageError
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


def cmd_inspect(args: argparse.Namespace) -> int:
    """``minictr inspect``: a JSON array, as Docker prints it."""
    from minictr.engine.container_view import inspect
    from minictr.engine.managed import resolve

    print(json.dumps([inspect(resolve(c, args.root)) for c in args.containers], indent=2))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """``minictr container prune``."""
    from minictr.engine.lifecycle import prune

    removed = prune(args.root)
    print("Deleted Containers:" if removed else "Total reclaimed: no stopped containers")
    for container in removed:
        print(container)
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
        _write_entry(entry, args.timestamps)
    if args.follow:
        for entry in logs.follow(directory, lambda: status_of(read_state(directory), directory) == "running", offset):
            _write_entry(entry, args.timestamps)
    return 0


def _write_entry(entry: dict[str, Any], timestamps: bool) -> None:
    stream = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
    text = entry.get("log", "")
    if timestamps:
        text = f"{entry.get('time', '')} {text}"
    stream.write(text)
    stream.flush()


def resource_options(args: argparse.Namespace) -> dict[str, Any]:
    """The resource flags as RunOptions keywords."""
    from minictr.engine.run_options import RESOURCE_FLAGS

    return {name: getattr(args, name) for name in RESOURCE_FLAGS}


def parse_labels(items: list[str]) -> dict[str, str]:
    """``-l KEY=VALUE`` (a bare KEY is an empty label, as Docker takes it)."""
    from minictr.errors import UsageError

    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"--label {item!r}: give KEY=VALUE")
        labels[key] = value
    return labels


def health_flags(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--health-*`` and ``--no-healthcheck`` as overrides of the image's healthcheck."""
    from minictr.engine.health import from_flags

    return from_flags(args.health_cmd, args.health_interval, args.health_timeout, args.health_retries,
                      args.health_start_period, args.no_healthcheck)  # fmt: skip


def run_options(args: argparse.Namespace) -> RunOptions:
    """The RunOptions a ``run``/``create`` command line asks for."""
    from minictr.engine.run_options import RunOptions

    return RunOptions(
        isolation=args.isolation, env=args.env, workdir=args.workdir, entrypoint=args.entrypoint,
        hostname=args.hostname, domainname=args.domainname, init=args.init, network=args.network, name=args.name,
        network_aliases=args.network_alias, publish=args.publish, publish_all=args.publish_all,
        userns=args.userns, uidmap=args.uidmap, gidmap=args.gidmap, volumes=args.volume, mounts=args.mount,
        read_only=args.read_only, timens=args.timens, detach=args.detach, user=args.user, platform=args.platform,
        pull=args.pull, cgroup_parent=args.cgroup_parent, privileged=args.privileged, cap_add=args.cap_add,
        cap_drop=args.cap_drop, security_opt=args.security_opt, tmpfs=args.tmpfs, ulimits=args.ulimit,
        oom_score_adj=args.oom_score_adj, dns=args.dns, labels=parse_labels(args.label),
        sig_proxy=args.sig_proxy == "true", healthcheck=health_flags(args), steps=args.steps,
        **resource_options(args),
    )  # fmt: skip
