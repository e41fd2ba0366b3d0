"""How an exercise is checked: the learner's function runs in a child interpreter, and a Verdict says why.

The kernel is never changed, whatever the function does: it travels as
source code to a fresh ``python -S -s -E`` (so it may come from a notebook
cell), its arguments and value as JSON. A check that must prepare the child
first (a namespace, a mount) sends a function of its own, which defines and
calls the learner's with :func:`run_learner`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any, NamedTuple

from minictr.tutorial.common import package_parent


def source_of(function: Callable[..., Any]) -> str:
    """A function's source, dedented (what travels to a child).

    When it cannot be read, a stand-in that raises and says so.
    """
    import inspect

    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return (
            f"def {function.__name__}(*args):\n    raise RuntimeError('the source of this function cannot be read')\n"
        )


def run_in_child(function: Callable[..., Any], *args: Any, timeout: float = 10) -> dict[str, Any]:
    """Run ``function(*args)`` in a fresh Python interpreter and report what happened there.

    The function travels as source code (so it may come from a notebook cell,
    where ``os`` is available without an import); arguments travel as JSON.
    The kernel is never changed, whatever the function does.

    Returns a dict with ``value`` (JSON-able, else its repr) and ``type``, or
    ``error`` (``type``, ``message``, ``line`` within the function, ``errno``);
    plus ``output`` (what the function printed).
    """
    import inspect

    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        return {
            "error": {"type": "SourceError", "message": f"cannot read the source of {function!r}: {exc}", "line": 0}
        }
    order = {"source": source, "name": function.__name__, "args": list(args)}
    child = subprocess.Popen(
        # -S -s -E: no site, user site or PYTHON* variables; minictr is imported from the working directory
        [sys.executable, "-S", "-s", "-E", "-c", "from minictr.tutorial.checking import child_main; child_main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=package_parent(),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"},
    )
    try:
        raw, printed = child.communicate(json.dumps(order).encode(), timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"error": {"type": "Timeout", "message": f"it did not return within {timeout:g} s", "line": 0}}
    text = printed.decode(errors="replace")
    try:
        report: dict[str, Any] = json.loads(raw)
    except ValueError:
        said = f"; it said: {text.strip()}" if text.strip() else ""
        return {
            "error": {
                "type": "Crash",
                "message": f"the child process ended (exit status {child.returncode}) "
                f"before your function returned{said}",
                "line": 0,
            }
        }
    report["output"] = text
    return report


def child_main() -> None:
    """The child of :func:`run_in_child`: read the order on stdin, run it, write the report on stdout.

    What the learner's function prints goes to stderr (fd 1 is pointed there),
    so that it can never be mistaken for the report.
    """
    report_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    order = json.load(sys.stdin)
    report = run_learner(order["source"], order["name"], *order["args"])
    sys.stdout.flush()
    with report_out:
        json.dump(report, report_out, default=repr)


def run_learner(source: str, name: str, *args: Any) -> dict[str, Any]:
    """(Runs in a child.) Define the function ``name`` from ``source``, call it with ``args``, say what happened.

    Returns ``{"value": ..., "type": ...}``, or ``{"error": {"type", "message",
    "line", "errno"}}`` with the line within the function. Everything is
    caught, even SystemExit, to be reported.
    """
    filename = f"<{name}>"
    namespace: dict[str, Any] = {"__name__": "__exercise__", "os": os}
    try:
        exec(compile(source, filename, "exec"), namespace)  # the learner's own code
        value = namespace[name](*args)
    except BaseException as exc:  # report everything to the parent
        line, tb = 0, exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        return {
            "error": {
                "type": type(exc).__name__,
                "message": str(exc),
                "line": line,
                "errno": getattr(exc, "errno", None),
            }
        }
    return {"type": type(value).__name__, "value": value}


# --- what a verdict says ------------------------------------------------------------------------


class Verdict(NamedTuple):
    """The outcome of an exercise check: right or not, and the message for the learner."""

    ok: bool
    message: str

    def show(self) -> None:
        """Print the message (what a check cell shows)."""
        print(self.message)


def printed_by(report: dict[str, Any]) -> str:
    """What the learner's function printed, as the start of a verdict ("" when nothing)."""
    output = report.get("output", "").rstrip()
    return "Your function printed:\n" + textwrap.indent(output, "  ") + "\n" if output.strip() else ""


def raised(name: str, error: dict[str, Any]) -> str:
    """The ✘ line for an error report: the exception and its line, or why the child gave no answer."""
    where = f" at line {error['line']} of your function" if error.get("line") else ""
    if error["type"] in ("Timeout", "Crash", "SourceError"):
        return f"✘ {name}: {error['message']}"
    return f"✘ {name}(...) raised {error['type']}{where}: {error['message']}"


def returned_none(call: str) -> str:
    """The ✘ line for a function that returned nothing."""
    return f"✘ {call} returned None: did you forget `return`?"


def listing(names: list[str], limit: int = 8) -> str:
    """Directory entries on one line, cut after ``limit`` of them."""
    shown = " ".join(names[:limit])
    return shown + (f" … ({len(names)} entries)" if len(names) > limit else "")
