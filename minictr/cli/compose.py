"""``minictr compose``: multi-container applications, spelled as ``docker compose`` spells them.

    minictr compose [-f FILE] [-p NAME] up [-d] [--build] [--scale SERVICE=N]... [SERVICE...]
    minictr compose down [-v] [--rmi local|all]   ps [-a] [-q]           logs [-f] [--tail N] [SERVICE...]
    minictr compose exec [--index N] [-e K=V] [-w DIR] [-T] SERVICE COMMAND [ARG...]
    minictr compose build [SERVICE...]      stop | start | restart [-t N] [SERVICE...]

The file is ``compose.yaml`` (or ``compose.yml``, ``docker-compose.y[a]ml``)
in the current directory unless ``-f`` names one; the project is ``-p``, else
the file's ``name:``, else its directory's name. Progress goes to stderr,
results (``ps``, ``logs``) to stdout. Unknown keys are warnings naming them;
an invalid file is one line naming the path in it.
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.compose.model import Project


def add_commands(commands: Any, parser_class: Any) -> None:
    """Add ``compose`` and its verbs to the subparsers ``commands``."""
    compose = commands.add_parser("compose", help="run multi-container applications from a compose.yaml")
    compose.add_argument("-f", "--file", help="the compose file (default: compose.yaml here)")
    compose.add_argument(
        "-p", "--project-name", help="the project's name (default: the file's name:, else its directory)"
    )
    sub = compose.add_subparsers(dest="compose_command", metavar="COMMAND", parser_class=parser_class)
    sub.required = True
    up = sub.add_parser("up", help="create and start the services (recreating only what changed)")
    up.add_argument("-d", "--detach", action="store_true", help="leave them running in the background")
    up.add_argument("--build", action="store_true", help="build images before starting (else only missing ones)")
    up.add_argument("--scale", action="append", default=[], metavar="SERVICE=N", help="run N replicas of SERVICE")
    up.add_argument("services", nargs="*", metavar="SERVICE")
    down = sub.add_parser("down", help="stop and remove the containers and networks")
    down.add_argument("-v", "--volumes", action="store_true", help="remove the project's named volumes too")
    down.add_argument(
        "--rmi", choices=("local", "all"), help="remove images too: local, those built without an image: name; all"
    )
    ps = sub.add_parser("ps", help="list the project's containers")
    ps.add_argument("-a", "--all", action="store_true", help="stopped ones too")
    ps.add_argument("-q", "--quiet", action="store_true", help="only ids")
    logs = sub.add_parser("logs", help="show the services' output")
    logs.add_argument("-f", "--follow", action="store_true", help="keep following")
    logs.add_argument("--tail", type=int, metavar="N", help="the last N lines of each container")
    logs.add_argument("services", nargs="*", metavar="SERVICE")
    execute = sub.add_parser("exec", help="run a command in a service's container")
    execute.add_argument("--index", type=int, default=1, metavar="N", help="which replica (default 1)")
    execute.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set an environment variable")
    execute.add_argument("-w", "--workdir", help="working directory inside the container")
    execute.add_argument(
        "-T", "--no-TTY", dest="no_tty", action="store_true", help="no terminal (minictr gives none anyway)"
    )
    execute.add_argument("service", metavar="SERVICE")
    execute.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")
    build = sub.add_parser("build", help="build the services' images")
    build.add_argument("services", nargs="*", metavar="SERVICE")
    for verb, text in (("stop", "stop"), ("start", "start"), ("restart", "restart")):
        action = sub.add_parser(verb, help=f"{text} the services' containers")
        if verb != "start":
            action.add_argument("-t", "--timeout", type=int, metavar="SECONDS", help="wait this long before SIGKILL")
        action.add_argument("services", nargs="*", metavar="SERVICE")
    compose.set_defaults(handler=cmd_compose)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _project(args: argparse.Namespace, required: bool) -> tuple[str, Project | None]:
    """The project's name, and the file read (None when it is not needed and there is none)."""
    from minictr.engine.compose.model import find_file, load, project_name

    path = args.file
    if path is None:
        try:
            path = find_file(os.getcwd())
        except Exception:
            if required or not args.project_name:
                raise
            return project_name(args.project_name), None
    project = load(path, args.project_name)
    for warning in project.warnings:
        print(f"minictr: warning: {warning}", file=sys.stderr)
    return project.name, project


def cmd_compose(args: argparse.Namespace) -> int:
    """``minictr compose VERB``."""
    verb = args.compose_command
    name, project = _project(args, required=verb in ("up", "build"))
    roots = {"state_root": args.root}
    if verb == "up":
        return _up(args, project)  # type: ignore[arg-type]
    if verb == "build":
        from minictr.engine.compose import build_service

        assert project is not None
        for service in project.ordered(args.services or None):
            if service.build:
                build_service(project, service, data_root=args.data_root, state_root=args.root, say=_say)
        return 0
    if verb == "down":
        from minictr.engine.compose import down

        down(name, volumes=args.volumes, rmi=args.rmi, file=project, data_root=args.data_root, say=_say, **roots)
    elif verb == "ps":
        _ps(name, args)
    elif verb == "logs":
        _print_logs(name, args.services or None, args.follow, args.tail, args.root)
    elif verb == "exec":
        return _exec(name, args)
    else:
        from minictr.engine.compose import operations

        kwargs = {"timeout": args.timeout} if verb != "start" else {}
        for replica in getattr(operations, verb)(name, args.services or None, **kwargs, **roots):
            _say(f"Container {replica.name}  {verb.capitalize().removesuffix('e')}ed")
    return 0


def _up(args: argparse.Namespace, project: Project) -> int:
    """``up``: converge; without ``-d`` follow every service's output until they stop or ctrl-c (which stops them)."""
    from minictr.engine.compose import stop, up
    from minictr.engine.compose.converge import scale_of

    up(project, data_root=args.data_root, state_root=args.root, build=args.build, scale=scale_of(args.scale),
       services=args.services or None, say=_say)  # fmt: skip
    if args.detach:
        return 0
    try:
        _print_logs(project.name, args.services or None, True, None, args.root)
    except KeyboardInterrupt:
        _say("Stopping…")
        stop(project.name, args.services or None, state_root=args.root)
        return 130
    return 0


def _print_logs(
    project: str, services: list[str] | None, follow: bool, tail: int | None, state_root: str | None
) -> None:
    """Each line prefixed with its container's name, as Compose prints them."""
    from minictr.engine.compose import logs

    for replica, entry in logs(project, services, follow=follow, tail=tail, state_root=state_root):
        stream = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
        stream.write(f"{replica.name}  | {entry['log']}")
        if not entry["log"].endswith("\n"):
            stream.write("\n")
        stream.flush()


def _ps(project: str, args: argparse.Namespace) -> None:
    """A table: name, image, service, status, ports."""
    from minictr.cli.images import print_table
    from minictr.engine.compose import replicas
    from minictr.engine.container_view import ps_rows

    ids = {x.id: x for x in replicas(project, args.root)}
    rows = [row for row in reversed(ps_rows(args.root, all=args.all)) if row["ID"] in ids]
    if args.quiet:
        print("\n".join(row["ID"] for row in rows))
        return
    print_table([{"NAME": row["Names"], "IMAGE": row["Image"], "SERVICE": ids[row["ID"]].service,
                  "STATUS": row["Status"], "PORTS": row["Ports"]} for row in rows])  # fmt: skip


def _exec(project: str, args: argparse.Namespace) -> int:
    """``exec SERVICE CMD``: ``minictr exec`` in the service's replica ``--index``."""
    from minictr.engine.compose import replicas
    from minictr.engine.exec import exec_in
    from minictr.engine.terminal import run_attached
    from minictr.errors import ComposeError, ExecError

    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    if not command:
        raise ComposeError("exec needs a command to run")
    found = [
        x for x in replicas(project, args.root, [args.service]) if x.number == args.index and x.status == "running"
    ]
    if not found:
        raise ComposeError(f"service {args.service!r} has no running container number {args.index}")

    def run(stdio: dict[str, object], terminal: bool) -> Any:
        return exec_in(found[0].id, command, env=args.env, workdir=args.workdir, state_root=args.root, stdio=stdio,
                       terminal=terminal)  # fmt: skip

    try:
        return run_attached(run, False, False).exit_code
    except ExecError as exc:
        print(f"minictr: {exc}", file=sys.stderr)
        return exc.exit_code
