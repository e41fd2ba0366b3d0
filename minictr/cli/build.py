"""The build and volume commands of the ``minictr`` command line, spelled as Docker spells them.

    minictr build [-t NAME]... [-f Dockerfile] [--build-arg K=V]... [--target STAGE] [--no-cache] [--pull]
                  [--network MODE] [--platform P] CONTEXT
    minictr import [-c CHANGE]... [-m MESSAGE] DIRECTORY|TARBALL NAME
    minictr volume create [--label K=V]... [NAME] | ls [-q] | inspect NAME... | rm [-f] NAME... | prune [-a]

:func:`add_commands` adds them to the main parser (:mod:`minictr.cli.main`); handlers
import what they need when they run.
"""

from __future__ import annotations

import argparse
import json
import os

TYPE_CHECKING = False  # typing is for checkers; the CLI starts without it
if TYPE_CHECKING:
    from typing import Any


def add_commands(commands: Any) -> None:
    """Add ``build`` (and ``volume``) to the subparsers ``commands``."""
    build = commands.add_parser("build", help="build an image from a Dockerfile")
    build.add_argument(
        "-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="name the image (repeatable)"
    )
    build.add_argument("-f", "--file", metavar="PATH", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    build.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="NAME[=VALUE]",
        help="set a build argument (NAME alone takes this environment's value)",
    )
    build.add_argument("--target", metavar="STAGE", help="build this stage (and what it needs) only")
    build.add_argument("--no-cache", action="store_true", help="do not use the layer cache")
    build.add_argument("--pull", action="store_true", help="pull every FROM image, even if the store has it")
    build.add_argument("--network", help="RUN steps' network: bridge (the default), none or host")
    build.add_argument("--platform", help="OS/ARCH[/VARIANT] of FROM images to pull")
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    build.add_argument("context", metavar="CONTEXT")
    build.set_defaults(handler=cmd_build)

    builder = commands.add_parser("builder", help="manage the build cache")
    builder_commands = builder.add_subparsers(dest="builder_command", metavar="COMMAND", parser_class=type(builder))
    builder_commands.required = True
    builder_prune = builder_commands.add_parser("prune", help="empty the build cache; remove the layers only it kept")
    builder_prune.add_argument("-a", "--all", action="store_true", help="accepted for Docker's sake: all of it goes")
    builder_prune.add_argument("-f", "--force", action="store_true", help="do not ask (minictr never asks)")
    builder_prune.set_defaults(handler=cmd_builder_prune)

    imports = commands.add_parser("import", help="make an image of a root filesystem (a directory or a tar archive)")
    imports.add_argument(
        "-c",
        "--change",
        action="append",
        default=[],
        metavar="INSTRUCTION",
        help="a Dockerfile config instruction to apply (ENV, CMD, ENTRYPOINT, WORKDIR, USER…)",
    )
    imports.add_argument("-m", "--message", default="", help="a comment for the image's history")
    imports.add_argument("source", metavar="DIRECTORY|TARBALL")
    imports.add_argument("image", metavar="NAME")
    imports.set_defaults(handler=cmd_import)

    volume = commands.add_parser("volume", help="manage named volumes")
    sub = volume.add_subparsers(
        dest="volume_command", metavar="COMMAND", parser_class=type(volume)
    )  # exits 125 on misuse
    sub.required = True
    create = sub.add_parser("create", help="create a volume (a random name without NAME)")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="set a label")
    create.add_argument("name", metavar="NAME", nargs="?")
    ls = sub.add_parser("ls", help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="only show names")
    inspect = sub.add_parser("inspect", help="show volumes as JSON")
    inspect.add_argument("names", nargs="+", metavar="NAME")
    rm = sub.add_parser("rm", help="remove volumes (refused while a container uses one)")
    rm.add_argument(
        "-f", "--force", action="store_true", help="accepted for Docker's sake; a volume in use is still kept"
    )
    rm.add_argument("names", nargs="+", metavar="NAME")
    prune = sub.add_parser("prune", help="remove unused anonymous volumes")
    prune.add_argument("-a", "--all", action="store_true", help="named volumes too")
    volume.set_defaults(handler=cmd_volume)


def build_args(items: list[str]) -> dict[str, str]:
    """``--build-arg`` values as a dict: ``NAME=VALUE``, or ``NAME`` taking this environment's value."""
    from minictr.cli.run import key_values

    return key_values(items, "--build-arg", word="NAME", bare=os.environ)


def cmd_build(args: argparse.Namespace) -> int:
    """``minictr build``: steps shown as they run, the image id at the end."""
    from minictr.engine.build import BuildOptions, build

    options = BuildOptions(
        tags=args.tag, dockerfile=args.file, build_args=build_args(args.build_arg), target=args.target,
        no_cache=args.no_cache, pull=args.pull, network=args.network, platform=args.platform,
    )  # fmt: skip
    quiet = (lambda _line: None) if args.quiet else None  # quiet: RUN output is captured and dropped too
    image = build(args.context, options, data_root=args.data_root, state_root=args.root, progress=quiet)
    if args.quiet:
        print(image.id)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """``minictr import``: a root filesystem as a one-layer image; prints its id."""
    from minictr.engine.build.imports import import_rootfs
    from minictr.engine.container_root import image_store

    print(
        import_rootfs(
            image_store(args.data_root), args.source, args.image, changes=args.change, message=args.message
        ).id
    )
    return 0


def cmd_volume(args: argparse.Namespace) -> int:
    """``minictr volume ...``."""
    from minictr.engine import volumes

    where = {"data_root": args.data_root}
    if args.volume_command == "create":
        from minictr.cli.run import parse_labels

        labels = parse_labels(args.label)
        print(volumes.create(args.name, labels=labels, **where)["Name"])
    elif args.volume_command == "ls":
        found = volumes.listing(**where)
        if args.quiet:
            print("\n".join(v["Name"] for v in found))
        else:
            from minictr.cli.images import print_table

            print_table([{"DRIVER": v["Driver"], "VOLUME NAME": v["Name"]} for v in found])
    elif args.volume_command == "inspect":
        print(json.dumps([volumes.inspect(name, **where) for name in args.names], indent=2))
    elif args.volume_command == "rm":
        from minictr.cli.each import each

        _sweep(args.root)

        def remove_one(name: str) -> str:
            volumes.remove(name, force=args.force, state_root=args.root, **where)
            return name

        return each(args.names, remove_one, args.debug)
    else:
        _sweep(args.root)
        for name in volumes.prune(all_volumes=args.all, state_root=args.root, **where):
            print(name)
    return 0


def _sweep(state_root: str | None) -> None:
    """Dead containers hold no volume: sweep them before a volume's users are counted."""
    from minictr.engine.container_dir import containers_dir, remove_stale

    remove_stale(containers_dir(state_root))


def cmd_builder_prune(args: argparse.Namespace) -> int:
    """``minictr builder prune``: the build cache emptied; one line saying what that freed."""
    print(builder_prune(args))
    return 0


def builder_prune(args: argparse.Namespace) -> str:
    """Empty the build cache of ``--data-root`` (also part of ``system prune``); a line to print."""
    from minictr.cli.images import _store, _swept_root
    from minictr.engine.build.cache import prune

    entries, freed = prune(_store(args), _swept_root(args))
    return f"Build cache: {entries} step{'s' if entries != 1 else ''} forgotten, {freed} bytes reclaimed"
