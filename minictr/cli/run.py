"""``minictr run`` and ``minictr create``: their grammar, the options it makes, and ``run`` itself.

    minictr run [OPTIONS] IMAGE [COMMAND [ARG...]]
    minictr create [RUN OPTIONS] IMAGE [COMMAND [ARG...]]

:func:`run_arguments` is ``run``'s whole grammar (``create`` takes the same):
the options of the container (:func:`run_options` turns them into
RunOptions), its resource limits (:func:`add_resource_flags`, ``update``
takes them too) and its lifecycle (:func:`add_run_flags`, checked by
:func:`settings_from`). A foreground ``minictr run`` loads this module and
:mod:`minictr.cli.main` alone of the command line; each function imports
what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from minictr.engine.container import Finished
    from minictr.engine.run_options import RunOptions

from minictr.errors import ExecError


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options and arguments of ``run`` (and ``create``)."""
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
    add_resource_flags(parser)
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
    sig_proxy_flag(parser)
    add("--health-cmd", metavar="COMMAND", help="a command run inside (through sh -c) to check its health")
    add("--health-interval", metavar="DURATION", help="time between checks (30s, 1m30s; default 30s)")
    add("--health-timeout", metavar="DURATION", help="longest a check may run (default 30s)")
    add("--health-retries", type=int, metavar="N", help="failures in a row that make it unhealthy (default 3)")
    add("--health-start-period", metavar="DURATION", help="time to start during which failures do not count")
    add("--no-healthcheck", action="store_true", help="disable any healthcheck the image sets")


def sig_proxy_flag(parser: argparse.ArgumentParser) -> None:
    """``--sig-proxy``, as ``run``, ``start`` and ``attach`` take it."""
    parser.add_argument(
        "--sig-proxy", default="true", choices=("true", "false"), metavar="true|false",
        help="pass SIGINT, SIGTERM and SIGHUP sent to minictr on to the container (default true; not with -t)",
    )  # fmt: skip


def add_resource_flags(parser: argparse.ArgumentParser) -> None:
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


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The lifecycle settings a ``run``/``create`` command line asks for (checked)."""
    from minictr.engine.managed import lifecycle_settings

    return lifecycle_settings(
        auto_remove=args.rm, restart=args.restart, stop_signal=args.stop_signal, stop_timeout=args.stop_timeout,
        tty=args.tty, interactive=args.interactive, log_opts=args.log_opt,
    )  # fmt: skip


def resource_options(args: argparse.Namespace) -> dict[str, Any]:
    """The resource flags as RunOptions keywords."""
    from minictr.engine.run_options import RESOURCE_FLAGS

    return {name: getattr(args, name) for name in RESOURCE_FLAGS}


def parse_labels(items: list[str]) -> dict[str, str]:
    """``-l KEY=VALUE`` (a bare KEY is an empty label, as Docker takes it)."""
    return key_values(items, "--label")


def key_values(items: list[str], flag: str, word: str = "KEY", bare: Mapping[str, str] | None = None) -> dict[str, str]:
    """A repeated ``flag``'s ``KEY=VALUE`` items as a dict, for every verb that takes such pairs.

    A bare ``KEY`` is empty, or with ``bare`` takes its value from there and is
    left out when missing (``--build-arg NAME`` from the environment).
    """
    from minictr.errors import UsageError

    pairs = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not key:
            raise UsageError(f"{flag} {item!r}: give {word}=VALUE")
        if equals or bare is None:
            pairs[key] = value
        elif key in bare:
            pairs[key] = bare[key]
    return pairs


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


# --- handlers ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``minictr run``: run and wait, passing the container's exit status through (``-d``: under a monitor)."""
    from minictr.engine.container import run

    options = run_options(args)
    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    if args.detach:
        return run_detached(args, options, command)
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


def run_detached(args: argparse.Namespace, options: Any, command: list[str]) -> int:
    """``run -d``: create, then start under a monitor; print the id. A container that cannot start is removed."""
    from minictr.engine import lifecycle, managed

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
