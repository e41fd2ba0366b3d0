"""Per-layer progress for pulls and pushes: bars in a terminal or a notebook, lines in a log.

:func:`make_progress` picks the display: ``tqdm`` bars in a terminal (one per
layer, each on its own line), the same bars as ipywidgets in a Jupyter
notebook (``tqdm.auto`` chooses), or one plain line per finished layer when
the output is not a terminal, as ``docker pull`` does in a CI log. ``tqdm`` is
imported only when a bar is drawn.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO


class Task:
    """The progress of one blob: :meth:`advance` by bytes (negative to go back), :meth:`finish` with a word."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0

    def advance(self, count: int) -> None:
        self.done += count

    def finish(self, status: str) -> None:
        pass


class Progress:
    """Makes one :class:`Task` per blob. The base class shows nothing (the Python API's default)."""

    def task(self, label: str, total: int) -> Task:
        """A task for ``label`` (a short digest) of ``total`` bytes."""
        return Task(label, total)

    def close(self) -> None:
        """Finish the display."""


class LineProgress(Progress):
    """One line per finished blob: ``<short digest>: Pull complete`` (no terminal needed)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def task(self, label: str, total: int) -> Task:
        progress = self

        class Line(Task):
            def finish(self, status: str) -> None:
                with progress.lock:
                    print(f"{self.label}: {status}", file=progress.stream, flush=True)

        return Line(label, total)


class BarProgress(Progress):
    """One ``tqdm`` bar per blob (ipywidgets bars in a notebook, text bars in a terminal)."""

    def __init__(self, stream: TextIO | None = None, notebook: bool = False) -> None:
        if notebook:
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        self.tqdm: Any = tqdm
        self.stream = stream
        self.count = 0
        self.lock = threading.Lock()

    def task(self, label: str, total: int) -> Task:
        with self.lock:
            position = self.count
            self.count += 1
        kwargs: dict[str, Any] = {"file": self.stream, "position": position} if self.stream is not None else {}
        bar = self.tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=True,
                        dynamic_ncols=True, **kwargs)  # fmt: skip

        class Bar(Task):
            def advance(self, count: int) -> None:
                super().advance(count)
                bar.update(count)

            def finish(self, status: str) -> None:
                bar.set_postfix_str(status, refresh=False)
                bar.close()

        return Bar(label, total)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipywidgets can be displayed)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def make_progress(stream: TextIO | None = None, quiet: bool = False) -> Progress:
    """The right display for where we are: notebook widgets, terminal bars, log lines, or nothing."""
    if quiet:
        return Progress()
    stream = stream or sys.stderr
    try:
        if in_notebook():
            return BarProgress(notebook=True)
        if stream.isatty():
            return BarProgress(stream)
    except ImportError:  # tqdm (or ipywidgets) not installed: plain lines still say what happened
        pass
    return LineProgress(sys.stdout if in_notebook() else stream)
