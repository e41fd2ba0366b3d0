"""The host's side of the ``minictr`` command line: its networks, ``system prune`` and ``doctor``.

    minictr network create [--subnet CIDR] [--gateway IP] NAME | ls | inspect NAME... | rm NAME... | prune
    minictr system prune
    minictr doctor [--json] [--registry HOST:PORT]

Each handler imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json

TYPE_CHECKING = False  # typing is for checkers; the CLI starts without it
if TYPE_CHECKING:
    from typing import Any


def add_network_commands(commands: Any, parser_class: Any) -> None:
    """``minictr network create | ls | inspect | rm | prune``."""
    network = commands.add_parser("network", help="manage bridge networks")
    sub = network.add_subparsers(dest="network_command", metavar="COMMAND", parser_class=parser_class)
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
        from minictr.cli.run import parse_labels

        labels = parse_labels(args.label)
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


def add_system_command(commands: Any, parser_class: Any) -> None:
    """``minictr system prune``."""
    system = commands.add_parser("system", help="manage what minictr keeps on this host")
    system_commands = system.add_subparsers(dest="system_command", metavar="COMMAND", parser_class=parser_class)
    system_commands.required = True
    prune = system_commands.add_parser(
        "prune", help="clean up after dead containers and deleted state roots, host-wide; empty the build cache"
    )
    prune.set_defaults(handler=cmd_system_prune)


def cmd_system_prune(args: argparse.Namespace) -> int:
    """``minictr system prune``: sweep every recorded state root, empty the build cache; print what was removed."""
    from minictr.engine.system import prune

    for line in prune(args.root):
        print(line)
    from minictr.cli.build import builder_prune

    print(builder_prune(args))
    return 0


def add_doctor_command(commands: Any) -> None:
    """``minictr doctor``."""
    doctor = commands.add_parser("doctor", help="report what this host allows")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--registry", metavar="HOST:PORT", help="also check that this registry answers")
    doctor.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """``minictr doctor``: what this host allows, and what each gap costs."""
    from minictr import doctor

    checks = doctor.run_checks(registry=args.registry)
    print(doctor.to_json(checks) if args.json else doctor.render_table(checks))
    return 0
