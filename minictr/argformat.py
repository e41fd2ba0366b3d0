"""argparse without ``shutil``: both command lines build their parsers from :class:`ArgumentParser`.

argparse asks ``shutil.get_terminal_size`` for the width of its help text
every time it makes a formatter (each ``add_argument`` makes one), and
``shutil``'s import loads zlib, bz2 and lzma: 2-5 ms of every ``minictr
run`` and every ``minictr-oci`` verb, for help nobody asked for. The width
is found here the same way (``$COLUMNS``, else the terminal, else 80).
"""

from __future__ import annotations

import argparse
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it: ``$COLUMNS``, stdout's terminal, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (OSError, ValueError):
        return 80


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help layout, its width from :func:`columns`."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, columns() if width is None else width)


class RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout that keeps the description's line breaks, its width from :func:`columns`."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, columns() if width is None else width)


class ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose formatter (and its subcommands' parsers') is :class:`HelpFormatter` by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
