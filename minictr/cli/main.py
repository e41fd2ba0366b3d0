"""The ``minictr`` command line, spelled as Docker spells it.

    minictr run [OPTIONS] IMAGE [COMMAND [ARG...]]
    minictr exec [-i] [-t] [-d] [-u USER] [OPTIONS] CONTAINER COMMAND [ARG...]
    minictr kill [-s SIGNAL] CONTAINER...
    minictr create | start | stop | restart | rm | ps | logs | wait | inspect | container  (containers.py)
    minictr stats | top | port                                                             (inspect.py)
    minictr pull | push | images | rmi | tag | commit | save | load | login | logout  (images.py)
    minictr image build-busybox | inspect | ls | rm | tag | pull | prune
    minictr network create [--subnet CIDR] [--gateway IP] NAME | ls | inspect NAME... | rm NAME... | prune
    minictr system prune
    minictr build [-t NAME]... [-f FILE] [--build-arg K=V] [--target STAGE] [--no-cache] CONTEXT  (build.py)
    minictr volume create [NAME] | ls | inspect NAME... | rm [-f] NAME... | prune [-a]              (build.py)
    minictr compose [-f FILE] [-p NAME] up | down | ps | logs | exec | build | stop | start | restart (compose.py)
    minictr update [OPTIONS] CONTAINER
    minictr doctor [--json]

Errors print one line and exit 125 (Docker's "the runtime itself failed");
``--debug`` adds the traceback. A verb given several names (``rm``, ``kill``,
``rmi``…) does each one and exits 1 if some failed (:mod:`minictr.cli.each`). A container's own exit status is passed
through; 126 and 127 mean its program could not be run or was not found.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import NoReturn

    from minictr.engine.container import Finished

from minictr import __version__
from minictr.argformat import ArgumentParser
from minictr.errors import ExecError, MinictrError, UsageError

EXIT_RUNTIME_ERROR = 125


class _Parser(ArgumentParser):
    """argparse, but a usage error exits 125 like Docker instead of 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_RUNTIME_ERROR, f"minictr: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command-line grammar (also what ``--help`` prints).

    ``only="run"`` builds the global options and ``run`` alone: building the
    other sixty-odd commands (and importing their modules) would cost a
    foreground container a quarter of its start-up.
    """
    parser = _Parser(prog="minictr", description="A small, real container runtime.")
    parser.add_argument("--version", action="version", version=f"minictr {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--root", help="runtime state directory (default $MINICTR_ROOT or /run/minictr)")
    parser.add_argument("--data-root", help="image store directory (default $MINICTR_DATA_ROOT or /var/lib/minictr)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    # -h is --hostname here, as in Docker, so help is --help only
    run = commands.add_parser("run", help="run a command in a new container", add_help=False)
    run_arguments(run)
    run.set_defaults(handler=cmd_run)
    if only == "run":
        return parser

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
    _add_resource_flags(update)
    update.add_argument("container", metavar="CONTAINER")
    update.set_defaults(handler=cmd_update, devices=[])

    from minictr.cli.containers import add_commands as add_container_commands
    from minictr.cli.images import add_commands, add_image_subcommands, cmd_image_inspect, cmd_images
    from minictr.cli.inspect import add_commands as add_inspect_commands

    add_commands(commands)
    add_container_commands(commands, run_arguments)
    add_inspect_commands(commands)
    image = commands.add_parser("image", help="manage images")
    image_commands = image.add_subparsers(dest="image_command", metavar="COMMAND", parser_class=_Parser)
    image_commands.required = True
    build = image_commands.add_parser("build-busybox", help="build the offline busybox image from busybox-static")
    build.add_argument("--name", default="busybox", help="name to store it under (default busybox)")
    build.set_defaults(handler=cmd_build_busybox)
    inspect = image_commands.add_parser("inspect", help="show an image's manifest, config and layers")
    inspect.add_argument("image", metavar="IMAGE")
    inspect.set_defaults(handler=cmd_image_inspect)
    ls = image_commands.add_parser("ls", help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    ls.set_defaults(handler=cmd_images)
    add_image_subcommands(image_commands)

    add_network_commands(commands)

    system = commands.add_parser("system", help="manage what minictr keeps on this host")
    system_commands = system.add_subparsers(dest="system_command", metavar="COMMAND", parser_class=_Parser)
    system_commands.required = True
    prune = system_commands.add_parser(
        "prune", help="clean up after dead containers and deleted state roots, host-wide; empty the build cache"
    )
    prune.set_defaults(handler=cmd_system_prune)
    from minictr.cli.build import add_commands as add_build_commands

    add_build_commands(commands)
    from minictr.cli.compose import add_commands as add_compose_commands

    add_compose_commands(commands, _Parser)

    doctor = commands.add_parser("doctor", help="report what this host allows")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--registry", metavar="HOST:PORT", help="also check that this registry answers")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options and arguments of ``run`` (and ``create``)."""
    from minictr.cli.containers import add_run_flags

    add = parser.add_argument
    add("--help", action="help", help="show this help message and exit")
    add("--isolation", default="full", choices=("full", "chroot"), help="full (namespaces, the default) or chroot")
    add(
        "--steps",
        type=lambda text: [step for step in text.split(",") if step],
        metavar="STEP,...",
        help="build the container from these steps of the recipe only, as the notebooks do "
        "(chroot,mount,uts,ipc,pid,user,network,cgroup,security; default: all)",
    )
    add("-d", "--detach", action="store_true", help="run in the background and print the container's id")
    add("-e", "--env", action="append", default=[], metavar="NAME[=VALUE]", help="set an environment variable")
    add("-w", "--workdir", help="working directory inside the container")
    add("--entrypoint", help="override the image's entrypoint")
    add("-h", "--hostname", help="the container's hostname (default: its id)")
    add("--domainname", help="the container's NIS domain name")
    add("--init", action="store_true", help="run a minimal init as PID 1 that reaps zombies and forwards signals")
    add(
        "--network",
        "--net",
        help="bridge (the default; none when rootless), none (only lo), host, "
        "container:NAME|ID (share its network) or the name of a network from 'minictr network create'",
    )
    add("--name", help="a name for the container (unique; other members of its network resolve it)")
    add("--network-alias", action="append", default=[], metavar="ALIAS", help="another name on a user-defined network")
    add(
        "--dns",
        action="append",
        default=[],
        metavar="IP[:PORT]",
        help="a nameserver (on a user-defined network: where its DNS server forwards names it does not know)",
    )
    add("-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="set a label on the container")
    add(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="[IP:][HOST_PORT:]PORT[/PROTO]",
        help="publish a container port on the host (tcp or udp)",
    )
    add("-P", "--publish-all", action="store_true", help="publish every port the image exposes on free host ports")
    add("--userns", default="host", help="host (no user namespace) or private (root inside is uid 100000 outside)")
    add("--uidmap", action="append", default=[], metavar="CONTAINER:HOST:SIZE", help="map container uids to host uids")
    add("--gidmap", action="append", default=[], metavar="CONTAINER:HOST:SIZE", help="map container gids to host gids")
    add(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="/HOST|NAME:/CONTAINER[:ro]",
        help="bind-mount a host directory, or mount a named volume (/CONTAINER alone: an anonymous volume)",
    )
    add(
        "--mount",
        action="append",
        default=[],
        metavar="type=volume|bind|tmpfs,source=…,target=…[,readonly]",
        help="mount a volume, a host directory or a tmpfs",
    )
    add("--read-only", action="store_true", help="mount the container's root filesystem read-only")
    add("--timens", action="store_true", help="a time namespace whose clocks start at zero (uptime ~0)")
    add("-u", "--user", help="NAME|UID[:GROUP|GID] to run as (names from the image's /etc/passwd)")
    add("--platform", help="OS/ARCH[/VARIANT] to pull if the image is not in the store")
    add("--pull", default="missing", help="missing (pull if not in the store, the default), never or always")
    _add_resource_flags(parser)
    add(
        "--device",
        dest="devices",
        action="append",
        default=[],
        metavar="HOST[:CONTAINER][:rwm]",
        help="give the container a host device (node and cgroup permission)",
    )
    add("--cgroup-parent", metavar="PATH", help="the container's cgroup goes below PATH (default /minictr)")
    add(
        "--privileged",
        action="store_true",
        help="give the container every capability, no seccomp filter, "
        "no masked paths and every device: it can take over the host",
    )
    add("--cap-add", action="append", default=[], metavar="CAP", help="add a capability (NET_ADMIN, ALL)")
    add("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability (NET_RAW, ALL)")
    add(
        "--security-opt",
        action="append",
        default=[],
        metavar="OPT",
        help="no-new-privileges[=true|false] (on by default), seccomp=unconfined|PROFILE.json",
    )
    add(
        "--tmpfs",
        action="append",
        default=[],
        metavar="PATH[:OPTIONS]",
        help="mount a tmpfs (nosuid,nodev,noexec unless OPTIONS say; e.g. with --read-only)",
    )
    add(
        "--ulimit",
        action="append",
        default=[],
        metavar="NAME=SOFT[:HARD]",
        help="a resource limit (nofile=1024:2048; -1 is unlimited)",
    )
    add("--oom-score-adj", type=int, metavar="N", help="-1000 (never OOM-kill) to 1000 (first to go)")
    add_run_flags(parser)
    add("image", metavar="IMAGE")
    add("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")


def add_network_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    """``minictr network create | ls | inspect | rm | prune``."""
    network = commands.add_parser("network", help="manage bridge networks")
    sub = network.add_subparsers(dest="network_command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    create = sub.add_parser("create", help="create a bridge network (its bridge appears with its first container)")
    create.add_argument(
        "--subnet", metavar="CIDR", help="IPv4 subnet, e.g. 10.90.0.0/24 (default: a free one from the address pools)"
    )
    create.add_argument("--gateway", metavar="IP", help="the bridge's address (default: the subnet's first)")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="set a label on the network")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(handler=cmd_network)
    ls = sub.add_parser("ls", help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="only show names")
    ls.set_defaults(handler=cmd_network)
    inspect = sub.add_parser("inspect", help="show networks as JSON: subnet, bridge, members")
    inspect.add_argument("names", nargs="+", metavar="NAME")
    inspect.set_defaults(handler=cmd_network)
    rm = sub.add_parser("rm", help="remove networks that no container uses")
    rm.add_argument("names", nargs="+", metavar="NAME")
    rm.set_defaults(handler=cmd_network)
    prune = sub.add_parser("prune", help="clean up after dead containers and remove unused networks")
    prune.set_defaults(handler=cmd_network)


def cmd_network(args: argparse.Namespace) -> int:
    """``minictr network ...``."""
    from minictr import paths
    from minictr.cli.images import print_table
    from minictr.engine.container_dir import containers_dir, remove_stale
    from minictr.engine.network import manage

    root = args.root or paths.state_root()
    if args.network_command == "create":
        labels = dict(item.partition("=")[::2] for item in args.label)
        print(manage.create(root, args.name, args.subnet, args.gateway, labels).id)
    elif args.network_command == "ls":
        rows = manage.listing(root)
        if args.quiet:
            print("\n".join(row["NAME"] for row in rows))
        else:
            print_table(rows)
    elif args.network_command == "inspect":
        print(json.dumps([manage.inspect(root, name) for name in args.names], indent=2))
    elif args.network_command == "rm":
        from minictr.cli.each import each

        remove_stale(containers_dir(root))  # a dead container still named as a member is swept first

        def remove_one(name: str) -> str:
            manage.remove(root, name)
            return name

        return each(args.names, remove_one, args.debug)
    else:
        remove_stale(containers_dir(root))  # containers whose minictr was killed, with their veths and leases
        for name in manage.prune(root):
            print(name)
    return 0


def cmd_system_prune(args: argparse.Namespace) -> int:
    """``minictr system prune``: sweep every recorded state root, empty the build cache; print what was removed."""
    from minictr.engine.system import prune

    for line in prune(args.root):
        print(line)
    from minictr.cli.build import builder_prune

    print(builder_prune(args))
    return 0


def _add_resource_flags(parser: argparse.ArgumentParser) -> None:
    """The resource limits, as Docker spells them (``run`` and ``update``)."""
    add = parser.add_argument
    add("-m", "--memory", metavar="SIZE", help="memory limit (512m, 1g); the OOM killer acts beyond it")
    add("--memory-reservation", metavar="SIZE", help="soft memory limit, reclaimed towards under pressure")
    add("--memory-swap", metavar="SIZE", help="memory + swap limit (-1: unlimited swap; default twice --memory)")
    add("--cpus", metavar="N", help="CPUs the container may use (0.5: half a core), as a CFS quota")
    add("--cpu-quota", metavar="USEC", help="CFS quota per period, in microseconds")
    add("--cpu-period", metavar="USEC", help="CFS period, in microseconds (default 100000)")
    add("-c", "--cpu-shares", metavar="N", help="relative CPU weight (1024 is the default share)")
    add("--cpuset-cpus", metavar="LIST", help="CPUs the container may run on (0-1,3)")
    add("--cpuset-mems", metavar="LIST", help="memory nodes the container may use")
    add("--pids-limit", metavar="N", help="most processes (and threads) at once (-1: unlimited)")
    add("--blkio-weight", metavar="N", help="relative block io weight, 10 to 1000")
    for kind, unit in (
        ("read-bps", "/dev/sda:1mb"),
        ("write-bps", "/dev/sda:1mb"),
        ("read-iops", "/dev/sda:100"),
        ("write-iops", "/dev/sda:100"),
    ):
        add(f"--device-{kind}", action="append", default=[], metavar="DEVICE:RATE", help=f"throttle a disk ({unit})")


def cmd_run(args: argparse.Namespace) -> int:
    """``minictr run``: run and wait, passing the container's exit status through (``-d``: under a monitor)."""
    from minictr.cli.containers import run_options
    from minictr.engine.container import run

    options = run_options(args)
    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    if args.detach:
        from minictr.cli.containers import run_detached

        return run_detached(args, options, command)
    from minictr.cli.containers import settings_from
    from minictr.engine.terminal import LogTee, run_attached

    settings = settings_from(args)  # the same checks as with -d
    log = None if args.rm else LogTee(settings["log_max_size"], settings["log_max_file"])

    def start(stdio: dict[str, object], terminal: bool) -> Finished:
        return run(args.image, command, options, data_root=args.data_root, state_root=args.root, stdio=stdio,
                   terminal=terminal, keep=None if args.rm else settings,
                   on_directory=log.open if log else None)  # fmt: skip

    try:
        finished = run_attached(start, args.interactive, args.tty, log)
    except ExecError as exc:
        print(f"minictr: {exc}", file=sys.stderr)
        return exc.exit_code
    if finished.note:
        print(f"minictr: warning: {finished.note}", file=sys.stderr)
    if finished.oom_killed:
        print("minictr: the container reached its memory limit and was OOM-killed", file=sys.stderr)
    return finished.exit_code


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
    from minictr.cli.containers import resource_options
    from minictr.engine.container import update
    from minictr.engine.run_options import RunOptions

    update(args.container, RunOptions(**resource_options(args)), state_root=args.root)
    print(args.container)
    return 0


def cmd_kill(args: argparse.Namespace) -> int:
    """``minictr kill``: signal each running container's PID 1."""
    import signal

    from minictr.cli.each import each
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


def cmd_build_busybox(args: argparse.Namespace) -> int:
    """``minictr image build-busybox``: the offline image, from the host's busybox-static."""
    from minictr.engine.container_root import image_store
    from minictr.engine.images.busybox import build_busybox_image

    started = time.monotonic()
    digest = build_busybox_image(image_store(args.data_root), args.name)
    print(f"{args.name}: built {digest} in {time.monotonic() - started:.2f} s")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """``minictr doctor``: what this host allows, and what each gap costs."""
    from minictr import doctor

    checks = doctor.run_checks(registry=args.registry)
    print(doctor.to_json(checks) if args.json else doctor.render_table(checks))
    return 0


def _command_of(argv: list[str]) -> str | None:
    """The command word of ``argv`` past the global options (None when there is none to find)."""
    words = iter(argv)
    for word in words:
        if word in ("--root", "--data-root"):
            next(words, None)
        elif word != "--debug" and not word.startswith(("--root=", "--data-root=")):
            return None if word.startswith("-") else word
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``minictr`` console script."""
    args = build_parser(_command_of(sys.argv[1:] if argv is None else argv)).parse_args(argv)
    try:
        status: int = args.handler(args)
        return status
    except MinictrError as exc:
        if args.debug:
            raise
        print(f"minictr: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a host problem minictr did not foresee: still one line
        if args.debug:
            raise
        print(f"minictr: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR


if __name__ == "__main__":
    sys.exit(main())
