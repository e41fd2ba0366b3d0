"""What every notebook uses: the ``minictr`` command, what this host allows, showing code, clean-up.

Only the standard library is imported here; IPython only when something is
displayed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minictr.doctor import Check


# --- the minictr command ----------------------------------------------------------------


def package_parent() -> str:
    """The directory holding the ``minictr`` package (a child interpreter imports this very copy from it)."""
    from minictr import __file__ as package_init

    return os.path.dirname(os.path.dirname(os.path.abspath(package_init)))


def minictr_command() -> list[str]:
    """The ``minictr`` command of *this* Python (its console script, or ``python -m minictr.cli``).

    A notebook kernel started from a virtual environment need not have that
    environment's ``bin`` on ``PATH``, so ``!minictr`` may find another one,
    or none; this finds the one installed next to ``sys.executable``.
    """
    script = os.path.join(os.path.dirname(sys.executable), "minictr")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "minictr.cli"]


#: The command line that runs minictr, e.g. ``[*MINICTR, "run", "busybox", "true"]``.
MINICTR: list[str] = minictr_command()


def show_finished(stdout: str, stderr: str, code: int) -> int:
    """Print what a command printed, as a terminal would, and its exit status when it is not 0; return it."""
    sys.stdout.write(stdout)
    sys.stdout.write(stderr)
    if code:
        print(f"(exit status {code})")
    return code


def run_shown(prompt: str, command: list[str], timeout: float) -> int:
    """Print ``prompt``, run ``command``, print its output (:func:`show_finished`); return its exit status."""
    print(prompt)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    return show_finished(done.stdout, done.stderr, done.returncode)


def minictr(*args: str, timeout: float = 120) -> int:
    """Run ``minictr ARGS...`` as a terminal would, print its output and return its exit status."""
    return run_shown("$ minictr " + shlex.join(args), [*MINICTR, *args], timeout)


# --- what this host allows ---------------------------------------------------------------


class HostLacks(Exception):
    """This host lacks something a notebook needs; shown as a short message, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [str(self)]


def _checks(names: tuple[str, ...]) -> list[Check]:
    """The doctor checks called ``names``, in that order (an unknown name is a ValueError)."""
    from minictr import doctor

    checks = {check.name: check for check in doctor.run_checks()}
    unknown = [name for name in names if name not in checks]
    if unknown:
        raise ValueError(f"no doctor check named {', '.join(unknown)} (known: {', '.join(checks)})")
    return [checks[name] for name in names]


def _describe(check: Check) -> str:
    return f"  - {check.title}: {check.status} — {check.detail}" + (f"\n    fix: {check.fix}" if check.fix else "")


def require(*names: str) -> None:
    """Say clearly whether this notebook can run here, given the doctor checks ``names`` it needs.

    Prints one line when everything is there; otherwise raises
    :class:`HostLacks` listing what is missing and how to fix it, which stops
    "Run all" at this cell instead of a traceback further down.
    """
    checks = _checks(names)
    lacking = [check for check in checks if check.status != "ok"]
    if lacking:
        raise HostLacks(
            "\n".join(
                ["This notebook cannot run on this host. It needs:"]
                + [_describe(check) for check in lacking]
                + ["Fix that, restart the kernel and run the notebook again (`minictr doctor` shows everything)."]
            )
        )
    print(f"This host has what this notebook needs: {', '.join(c.title for c in checks) or 'nothing special'}.")


def have(*names: str) -> bool:
    """True when this host passes the doctor checks ``names``; otherwise print what is missing.

    Unlike :func:`require` it never stops the notebook: the cells that need
    what is missing test the returned value and skip themselves.
    """
    lacking = [check for check in _checks(names) if check.status != "ok"]
    if lacking:
        print(
            "This host lacks what the cells below need, so they will do nothing:\n"
            + "\n".join(_describe(check) for check in lacking)
        )
    return not lacking


# --- showing things ----------------------------------------------------------------------


def show_source(obj: Any, *, docstring: bool = True, start: str | None = None, stop: str | None = None) -> Any:
    """Display the source code of a function or class of minictr, highlighted.

    An "under the hood" cell shows the few lines that carry the idea: with
    ``docstring=False`` the docstring is left out; ``start`` and ``stop`` are
    texts of the first and last lines to show (the first lines containing
    them), and what is cut is shown as ``...``. The ``def`` line always stays.
    """
    import inspect

    from IPython.display import Markdown

    lines = textwrap.dedent(inspect.getsource(obj)).rstrip().splitlines()
    return Markdown("```python\n" + "\n".join(source_slice(lines, docstring, start, stop)) + "\n```")


def source_slice(
    lines: list[str], docstring: bool = True, start: str | None = None, stop: str | None = None
) -> list[str]:
    """The lines :func:`show_source` shows (see there); a ``start`` or ``stop`` not found is a ValueError."""
    head = next(i for i, line in enumerate(lines) if line.rstrip().endswith(":"))  # the end of the def line
    body = lines[head + 1 :]
    if not docstring and body and body[0].strip()[:3] in ('"""', "'''"):
        quote = body[0].strip()[:3]
        end = 0 if body[0].strip().count(quote) >= 2 else next(i for i, line in enumerate(body[1:], 1) if quote in line)
        body = body[end + 1 :]

    def find(text: str, after: int) -> int:
        for i in range(after, len(body)):
            if text in body[i]:
                return i
        raise ValueError(f"no line containing {text!r} in the source")

    first = find(start, 0) if start else 0
    last = find(stop, first) if stop else len(body) - 1
    indent = " " * (len(body[first]) - len(body[first].lstrip())) if body else ""
    shown = lines[: head + 1] + ([indent + "..."] if first else []) + body[first : last + 1]
    return shown + ([indent + "..."] if last < len(body) - 1 else [])


def picture(svg: str) -> Any:
    """An inline SVG picture for a notebook cell (``picture(svg_vm_vs_containers())``)."""
    from IPython.display import SVG

    return SVG(data=svg)


#: The usual top-level directories of a Linux root (the Filesystem Hierarchy Standard, plus lib64).
USUAL_ROOT = (
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib64",
    "media",
    "mnt",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "tmp",
    "usr",
    "var",
)


def brief(names: list[str]) -> str:
    """A listing of some ``/``, shortened to its usual top-level directories and a count of the others.

    Hosts keep all sorts of things in ``/``; the usual names are enough to
    tell one root from another (a busybox rootfs has no ``boot`` or ``lib``).
    """
    usual = sorted(name for name in names if name in USUAL_ROOT)
    others = len(names) - len(usual)
    return " ".join(usual) + (f" (+ {others} more)" if others else "")


# --- places on the host, and what is left in them ------------------------------------------


def workdir(notebook: str) -> str:
    """A directory of the notebook's own under the data root (``/var/lib/minictr/tutorial/<notebook>``).

    It lives beside the image store rather than in /tmp, which some hosts
    mount ``noexec``: programs in a root filesystem there could not run.
    """
    from minictr import paths

    return os.path.join(paths.data_root(), "tutorial", notebook)


def _mount_points() -> list[str]:
    """Where something is mounted in this process's mount namespace."""
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle]


def _below(path: str, place: str) -> bool:
    """True when ``path`` is ``place`` or lies under it."""
    return path == place or path.startswith(place.rstrip("/") + "/")


def leftovers(path: str | None = None) -> list[str]:
    """What is left on the host: mounts under minictr's roots (or ``path``), container
    directories in the state root, and ``path`` itself if it still exists. Empty is clean.

    The default network's bridge stays up between containers, as docker0 does;
    with no container on it any more, it is taken down here first, so a notebook
    leaves no bridge or rules behind.
    """
    from minictr import paths
    from minictr.engine.network.manage import take_down_idle_default

    if os.geteuid() == 0 and os.path.isdir(paths.state_root()):
        take_down_idle_default(paths.state_root())
    places = [paths.state_root(), paths.data_root()] + ([path] if path else [])
    found = [f"mount {point}" for point in _mount_points() if any(_below(point, place) for place in places)]
    containers = os.path.join(paths.state_root(), "containers")
    if os.path.isdir(containers):
        found += [f"container directory {os.path.join(containers, name)}" for name in sorted(os.listdir(containers))]
    if path and os.path.lexists(path):
        found.append(f"directory {path}")
    return found


def remove_tree(path: str) -> None:
    """Remove a directory tree this notebook made (nothing mounted may remain inside it)."""
    mounted = [point for point in _mount_points() if point.startswith(path.rstrip("/") + "/")]
    if mounted:
        raise RuntimeError(f"refusing to remove {path}: still mounted inside it: {', '.join(mounted)}")
    shutil.rmtree(path, ignore_errors=True)


def clean(notebook: str) -> list[str]:
    """Remove the notebook's :func:`workdir` (and the ``tutorial`` directory if now empty); return what is left."""
    path = workdir(notebook)
    remove_tree(path)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # other notebooks' directories are still there, or it is gone already
    return leftovers(path)
