"""The ``minictr`` command line, spelled as Docker spells it.

    minictr run [OPTIONS] IMAGE [COMMAND [ARG...]]                                       (run.py)
    minictr create | start | stop | restart | kill | rm | wait | exec | update | container  (containers.py)
    minictr ps | logs | inspect | stats | top | port                                        (inspect.py)
    minictr pull | push | images | rmi | tag | commit | save | load | login | logout       (images.py)
    minictr image build-busybox | inspect | ls | rm | tag | pull | prune                   (images.py)
    minictr network create [--subnet CIDR] [--gateway IP] NAME | ls | inspect NAME... | rm NAME... | prune
    minictr system prune                    minictr doctor [--json]                       (system.py)
    minictr build [-t NAME]... [-f FILE] [--build-arg K=V] [--target STAGE] [--no-cache] CONTEXT  (build.py)
    minictr volume create [NAME] | ls | inspect NAME... | rm [-f] NAME... | prune [-a]              (build.py)
    minictr compose [-f FILE] [-p NAME] up | down | ps | logs | exec | build | stop | start | restart (compose.py)

This module builds the grammar and dispatches; ``minictr run`` builds its
own parser only (:func:`build_parser`), so a foreground container loads
:mod:`minictr.cli.run` and nothing else of the command line.

Errors print one line and exit 125 (Docker's "the runtime itself failed");
``--debug`` adds the traceback. A verb given several names (``rm``, ``kill``,
``rmi``…) does each one and exits 1 if some failed (:mod:`minictr.cli.each`). A container's own exit status is passed
through; 126 and 127 mean its program could not be run or was not found.
"""

from __future__ import annotations

import argparse
import sys

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import NoReturn

from minictr import __version__
from minictr.argformat import ArgumentParser
from minictr.cli.run import cmd_run, run_arguments
from minictr.errors import MinictrError

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

    from minictr.cli import build, compose, containers, images, inspect, system

    containers.add_running_commands(commands)
    images.add_commands(commands)
    containers.add_commands(commands)
    inspect.add_commands(commands)
    image = commands.add_parser("image", help="manage images")
    image_commands = image.add_subparsers(dest="image_command", metavar="COMMAND", parser_class=_Parser)
    image_commands.required = True
    busybox = image_commands.add_parser("build-busybox", help="build the offline busybox image from busybox-static")
    busybox.add_argument("--name", default="busybox", help="name to store it under (default busybox)")
    busybox.set_defaults(handler=images.cmd_build_busybox)
    image_inspect = image_commands.add_parser("inspect", help="show an image's manifest, config and layers")
    image_inspect.add_argument("image", metavar="IMAGE")
    image_inspect.set_defaults(handler=images.cmd_image_inspect)
    ls = image_commands.add_parser("ls", help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    ls.set_defaults(handler=images.cmd_images)
    images.add_image_subcommands(image_commands)
    system.add_network_commands(commands, _Parser)
    system.add_system_command(commands, _Parser)
    build.add_commands(commands)
    compose.add_commands(commands, _Parser)
    system.add_doctor_command(commands)
    return parser


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
