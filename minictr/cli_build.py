"""The build and volume commands of the ``minictr`` command line, spelled as Docker spells them.

    minictr build [-t NAME]... [-f Dockerfile] [--build-arg K=V]... [--target STAGE] [--no-cache] [--pull]
                  [--network MODE] [--platform P] CONTEXT

:func:`add_commands` adds them to the main parser (``cli.py``); handlers
import what they need when they run.
"""

from __future__ import annotations

import argparse
import os

from .errors import UsageError

TYPE_CHECKING = False  # typing is for checkers; the CLI starts without it
if TYPE_CHECKING:
    from typing import Any


def add_commands(commands: Any) -> None:
    """Add ``build`` (and ``volume``) to the subparsers ``commands``."""
    build = commands.add_parser("build", help="build an image from a Dockerfile")
    build.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]", help="name the image (repeatable)")
    build.add_argument("-f", "--file", metavar="PATH", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    build.add_argument("--build-arg", action="append", default=[], metavar="NAME[=VALUE]",
                       help="set a build argument (NAME alone takes this environment's value)")
    build.add_argument("--target", metavar="STAGE", help="build this stage (and what it needs) only")
    build.add_argument("--no-cache", action="store_true", help="do not use the layer cache")
    build.add_argument("--pull", action="store_true", help="pull every FROM image, even if the store has it")
    build.add_argument("--network", help="RUN steps' network: bridge (the default), none or host")
    build.add_argument("--platform", help="OS/ARCH[/VARIANT] of FROM images to pull")
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    build.add_argument("context", metavar="CONTEXT")
    build.set_defaults(handler=cmd_build)


def build_args(items: list[str]) -> dict[str, str]:
    """``--build-arg`` values as a dict: ``NAME=VALUE``, or ``NAME`` taking this environment's value."""
    result = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not name:
            raise UsageError(f"--build-arg {item!r}: give NAME=VALUE")
        if equals:
            result[name] = value
        elif name in os.environ:
            result[name] = os.environ[name]
    return result


def cmd_build(args: argparse.Namespace) -> int:
    """``minictr build``: steps shown as they run, the image id at the end."""
    from .build import BuildOptions, build

    options = BuildOptions(
        tags=args.tag, dockerfile=args.file, build_args=build_args(args.build_arg), target=args.target,
        no_cache=args.no_cache, pull=args.pull, network=args.network, platform=args.platform,
    )  # fmt: skip
    quiet = (lambda _line: None) if args.quiet else None
    image = build(args.context, options, data_root=args.data_root, state_root=args.root, progress=quiet)
    if args.quiet:
        print(image.id)
    return 0
