"""Helpers for the notebooks: pictures, host checks, exercise checks and their solutions.

The notebooks keep their cells short and do the heavy lifting here. Nothing
in this module changes the calling process (a Jupyter kernel): exercises run
in a child interpreter (:func:`run_in_child`), containers through minictr.

Only the standard library is imported at module level; IPython is imported
when something is displayed. The container start path never imports this
module.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    from .doctor import Check

__all__ = [
    "HostLacks", "MINICTR", "USUAL_ROOT", "Verdict", "brief", "check_enter_root", "check_my_namespaces", "children", "clean",
    "comm", "have", "interfaces", "judge_enter_root", "judge_my_namespaces", "leftovers", "minictr",
    "minictr_command", "picture", "process_tree", "reference", "remove_tree", "require", "run_in_child",
    "show_source", "solution", "stop", "svg_chroot_tree", "svg_process_model", "svg_vm_vs_containers",
    "wait_for_child", "workdir",
]


# --- the minictr command ----------------------------------------------------------------


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


def minictr(*args: str, timeout: float = 120) -> int:
    """Run ``minictr ARGS...`` as a terminal would, print its output and return its exit status."""
    print("$ minictr " + shlex.join(args))
    done = subprocess.run([*MINICTR, *args], capture_output=True, text=True, timeout=timeout)
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    if done.returncode:
        print(f"(exit status {done.returncode})")
    return done.returncode


# --- what this host allows ---------------------------------------------------------------


class HostLacks(Exception):
    """This host lacks something a notebook needs; shown as a short message, not a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [str(self)]


def _checks(names: tuple[str, ...]) -> list[Check]:
    """The doctor checks called ``names``, in that order (an unknown name is a ValueError)."""
    from . import doctor

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
        raise HostLacks("\n".join(["This notebook cannot run on this host. It needs:"]
                                  + [_describe(check) for check in lacking]
                                  + ["Fix that, restart the kernel and run the notebook again "
                                     "(`minictr doctor` shows everything)."]))
    print(f"This host has what this notebook needs: {', '.join(c.title for c in checks) or 'nothing special'}.")


def have(*names: str) -> bool:
    """True when this host passes the doctor checks ``names``; otherwise print what is missing.

    Unlike :func:`require` it never stops the notebook: the cells that need
    what is missing test the returned value and skip themselves.
    """
    lacking = [check for check in _checks(names) if check.status != "ok"]
    if lacking:
        print("This host lacks what the cells below need, so they will do nothing:\n"
              + "\n".join(_describe(check) for check in lacking))
    return not lacking


# --- showing things ----------------------------------------------------------------------


def show_source(obj: Any) -> Any:
    """Display the source code of a function or class of minictr, highlighted."""
    import inspect

    from IPython.display import Markdown

    return Markdown("```python\n" + textwrap.dedent(inspect.getsource(obj)).rstrip() + "\n```")


def picture(svg: str) -> Any:
    """An inline SVG picture for a notebook cell (``picture(svg_vm_vs_containers())``)."""
    from IPython.display import SVG

    return SVG(data=svg)


# --- processes, as the host sees them -----------------------------------------------------


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def comm(pid: int) -> str:
    """The command name of a process (``/proc/<pid>/comm``), as ``ps`` shows it."""
    with open(f"/proc/{pid}/comm") as handle:
        return handle.read().strip()


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid``, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue  # it exited while we looked
    return sorted(found)


def wait_for_child(parent: int | subprocess.Popen[Any], name: str, timeout: float = 15) -> int:
    """Wait until ``parent`` (a pid or a Popen) has a child called ``name`` (it has exec'd); return its pid.

    With a Popen, a parent that exits first is reported at once, with its exit status.
    """
    pid = parent if isinstance(parent, int) else parent.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(pid):
            try:
                if comm(child) == name:
                    return child
            except OSError:
                continue
        if not isinstance(parent, int) and parent.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, parent.args))} exited with status {parent.returncode} "
                               f"before a {name!r} process appeared")
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} has no child named {name!r} after {timeout:g} s")


def process_tree(pid: int) -> str:
    """``pid`` and its descendants as an indented tree: ``name (pid N)`` per line."""
    lines: list[str] = []

    def walk(current: int, depth: int) -> None:
        try:
            name = comm(current)
        except OSError:
            return
        lines.append(("   " * (depth - 1) + "└─ " if depth else "") + f"{name} (pid {current})")
        for child in children(current):
            walk(child, depth + 1)

    walk(pid, 0)
    return "\n".join(lines)


# --- places on the host, and what is left in them ------------------------------------------


def workdir(notebook: str) -> str:
    """A directory of the notebook's own under the data root (``/var/lib/minictr/tutorial/<notebook>``).

    It lives beside the image store rather than in /tmp, which some hosts
    mount ``noexec``: programs in a root filesystem there could not run.
    """
    from . import paths

    return os.path.join(paths.data_root(), "tutorial", notebook)


def leftovers(path: str | None = None) -> list[str]:
    """What is left on the host: mounts under minictr's roots (or ``path``), container
    directories in the state root, and ``path`` itself if it still exists. Empty is clean."""
    from . import paths

    places = [paths.state_root(), paths.data_root()] + ([path] if path else [])
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            mount_point = line.split()[4]
            if any(mount_point == p or mount_point.startswith(p.rstrip("/") + "/") for p in places):
                found.append(f"mount {mount_point}")
    containers = os.path.join(paths.state_root(), "containers")
    if os.path.isdir(containers):
        found += [f"container directory {os.path.join(containers, name)}" for name in sorted(os.listdir(containers))]
    if path and os.path.lexists(path):
        found.append(f"directory {path}")
    return found


# --- running a learner's function in a child process ----------------------------------------


def _package_parent() -> str:
    """The directory holding the ``minictr`` package (the child imports this very copy from it)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_in_child(function: Callable[..., Any], *args: Any, probe: str | None = None, timeout: float = 10) -> dict[str, Any]:
    """Run ``function(*args)`` in a fresh Python interpreter and report what happened there.

    The function travels as source code (so it may come from a notebook cell,
    where ``os`` is available without an import); arguments travel as JSON.
    After it returns, ``probe`` (``"root"``) looks at the child's root and
    working directory. The kernel is never changed, whatever the function does.

    Returns a dict with ``value`` (JSON-able, else its repr) and ``type``, or
    ``error`` (``type``, ``message``, ``line`` within the function); plus
    ``probe`` results and ``output`` (what the function printed).
    """
    import inspect

    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError) as exc:
        return {"error": {"type": "SourceError", "message": f"cannot read the source of {function!r}: {exc}", "line": 0}}
    order = {"source": source, "name": function.__name__, "args": list(args), "probe": probe}
    child = subprocess.Popen(
        # -S -s -E: no site, user site or PYTHON* variables; minictr is imported from the working directory
        [sys.executable, "-S", "-s", "-E", "-c", "from minictr.tutorial import _child_main; _child_main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=_package_parent(),
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
        return {"error": {"type": "Crash", "message": f"the child process ended (exit status {child.returncode}) "
                                                      f"before your function returned{said}", "line": 0}}
    report["output"] = text
    return report


def _child_main() -> None:
    """The child of :func:`run_in_child`: read the order on stdin, run it, write the report on stdout.

    What the learner's function prints goes to stderr (fd 1 is pointed there),
    so that it can never be mistaken for the report.
    """
    report_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    order = json.load(sys.stdin)
    namespace: dict[str, Any] = {"__name__": "__exercise__", "os": os}
    report: dict[str, Any] = {}
    try:
        exec(compile(order["source"], "<exercise>", "exec"), namespace)  # noqa: S102 - the learner's own code
        value = namespace[order["name"]](*order["args"])
        report["type"] = type(value).__name__
        report["value"] = value
    except BaseException as exc:  # report everything, even SystemExit, to the parent
        line, tb = 0, exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<exercise>":
                line = tb.tb_lineno
            tb = tb.tb_next
        report["error"] = {"type": type(exc).__name__, "message": str(exc), "line": line}
    if order.get("probe") == "root":
        report["probe"] = _probe_root()
    sys.stdout.flush()
    with report_out:
        json.dump(report, report_out, default=repr)


def _probe_root() -> dict[str, Any]:
    """What a process sees of its root: ``/``, its working directory, and where ``..`` leads from there."""
    state: dict[str, Any] = {}
    try:
        state["root"] = sorted(os.listdir("/"))
    except OSError as exc:
        state["root_error"] = f"{type(exc).__name__}: {exc}"
    try:
        state["cwd"] = os.getcwd()
    except OSError as exc:
        state["cwd_error"] = f"{type(exc).__name__} ({exc.strerror})"
    try:
        for _ in range(64):
            os.chdir("..")
        state["climbed"] = sorted(os.listdir("."))
    except OSError as exc:
        state["climbed_error"] = f"{type(exc).__name__}: {exc}"
    return state


def _raised(name: str, error: dict[str, Any]) -> str:
    where = f" at line {error['line']} of your function" if error.get("line") else ""
    if error["type"] in ("Timeout", "Crash", "SourceError"):
        return f"✘ {name}: {error['message']}"
    return f"✘ {name}(...) raised {error['type']}{where}: {error['message']}"


def _listing(names: list[str], limit: int = 8) -> str:
    shown = " ".join(names[:limit])
    return shown + (f" … ({len(names)} entries)" if len(names) > limit else "")


def _printed(report: dict[str, Any]) -> str:
    output = report.get("output", "").rstrip()
    return "Your function printed:\n" + textwrap.indent(output, "  ") + "\n" if output.strip() else ""


class Verdict(NamedTuple):
    """The outcome of an exercise check: right or not, and the message for the learner."""

    ok: bool
    message: str

    def show(self) -> None:
        """Print the message (what a check cell shows)."""
        print(self.message)


# --- exercise: my_namespaces (00-welcome) ------------------------------------------------------


def check_my_namespaces(function: Callable[[int], dict[str, str]]) -> None:
    """Run ``function(pid)`` in a child process; print ✔ or precisely what is wrong (see :func:`judge_my_namespaces`)."""
    judge_my_namespaces(function).show()


def judge_my_namespaces(function: Callable[[int], dict[str, str]]) -> Verdict:
    """Run ``function(pid)`` in a child process for this kernel's pid, and compare with /proc.

    The right answer maps every entry of ``/proc/<pid>/ns`` to where its link
    points, exactly as :func:`minictr.linux.namespace_id` reads it.
    """
    from .linux import namespace_id

    name = function.__name__
    pid = os.getpid()
    expected = {kind: namespace_id(pid, kind) for kind in sorted(os.listdir(f"/proc/{pid}/ns"))}
    report = run_in_child(function, pid)
    printed = _printed(report)
    if "error" in report:
        return Verdict(False, printed + _raised(name, report["error"]))
    value, kind_of = report.get("value"), report.get("type")
    example = next(iter(expected.items()))
    if value is None:
        return Verdict(False, printed + f"✘ {name}(pid) returned None: did you forget `return`?")
    if kind_of != "dict":
        return Verdict(False, printed + f"✘ {name}(pid) returned a {kind_of}; expected a dict of kind -> link "
                                        f"target, such as {{{example[0]!r}: {example[1]!r}, ...}}")
    problems = []
    got = {str(k): v for k, v in value.items()}
    absent = [k for k in expected if k not in got]
    extra = sorted(k for k in got if k not in expected)
    if absent:
        problems.append(f"missing {len(absent)} of {len(expected)} kinds: {', '.join(absent)}")
    if extra:
        oci = {"mount": "mnt", "network": "net"}
        hint = [f"{k!r} should be {oci[k]!r}" for k in extra if k in oci]
        problems.append(f"unexpected keys: {', '.join(map(repr, extra))}"
                        + (" — use the file names in /proc/<pid>/ns (" + "; ".join(hint) + ")" if hint else
                           " — the keys are the file names in /proc/<pid>/ns"))
    for kind in expected:
        if kind not in got or got[kind] == expected[kind]:
            continue
        wrong, right = got[kind], expected[kind]
        number = right.split("[", 1)[1].rstrip("]")
        if isinstance(wrong, str) and wrong.endswith(f"/ns/{kind}"):
            why = "that is the path of the link itself; os.readlink(path) gives where it points"
        elif str(wrong) == number:
            why = f"that is only the number; expected the whole link target {right!r}"
        else:
            why = f"expected {right!r}, where the link /proc/<pid>/ns/{kind} points"
        problems.append(f"value for {kind!r} is {wrong!r}: {why}")
        break  # one wrong value explains the rest
    if problems:
        return Verdict(False, printed + f"✘ {name}(pid) is not right yet:\n" + "\n".join(f"  - {p}" for p in problems))
    return Verdict(True, printed + f"✔ Correct: {name}(pid) gives the same as minictr.linux.namespace_id(pid, kind) "
                                   "for every kind in /proc/<pid>/ns.")


# --- exercise: enter_root (01-chroot) ------------------------------------------------------------


def check_enter_root(function: Callable[[str], Any], new_root: str) -> None:
    """Run ``function(new_root)`` in a child process; print ✔ or precisely what is wrong (see :func:`judge_enter_root`)."""
    judge_enter_root(function, new_root).show()


def judge_enter_root(function: Callable[[str], Any], new_root: str) -> Verdict:
    """Run ``function(new_root)`` in a child process (as root) and check it made ``new_root`` its root.

    Afterwards ``/`` must list what ``new_root`` holds, and the working
    directory must be ``/`` — inside the new root. The classic bug (``chroot``
    without ``chdir``) leaves the working directory outside the root, from
    where ``..`` climbs to the host's ``/``; the verdict says so.
    """
    name = function.__name__
    expected = sorted(os.listdir(new_root))
    host = sorted(os.listdir("/"))
    report = run_in_child(function, new_root, probe="root")
    printed = _printed(report)

    def wrong(message: str) -> Verdict:
        return Verdict(False, printed + "✘ " + message)

    if "error" in report:
        error = report["error"]
        extra = "\n  chroot(2) needs root (CAP_SYS_CHROOT): run the notebook as root." if error["type"] == "PermissionError" else ""
        return Verdict(False, printed + _raised(name, error) + extra)
    state = report.get("probe", {})
    root = state.get("root")
    if root is None:
        return wrong(f"after {name}(new_root), / cannot be listed: {state.get('root_error')}")
    if root == host and root != expected:
        return wrong(f"after {name}(new_root), / still shows the host's root ({_listing(root)}).\n"
                     "  The root directory did not change: call os.chroot(new_root).")
    if root != expected:
        return wrong(f"after {name}(new_root), / shows {_listing(root)}\n"
                     f"  but new_root holds {_listing(expected)}: chroot into new_root itself.")
    cwd, cwd_error = state.get("cwd"), state.get("cwd_error")
    if cwd_error or not (cwd or "").startswith("/"):
        seen = f"fails with {cwd_error}" if cwd_error else f"returns {cwd!r}"
        climbed = state.get("climbed")
        outside = climbed == host and climbed != expected
        return wrong("the root changed — / now lists the rootfs — but the working directory is still outside it.\n"
                     f"  os.getcwd() {seen}: the kernel cannot name that directory from the new root.\n"
                     + ("  From there, chdir('..') climbs to the host's / — the escape above, handed over.\n"
                        if outside else "")
                     + "  chroot(2) changes the root directory only, never the working directory:\n"
                       "  move the working directory into the new root as well.")
    if cwd != "/":
        return wrong(f"the root is right, but the working directory is {cwd!r}; it should be '/'.")
    if state.get("climbed") != expected:
        return wrong(f"the root and working directory look right, but '..' from / leads to "
                     f"{_listing(state.get('climbed') or [])}.")
    return Verdict(True, printed + f"✔ Correct: after {name}(new_root), / lists the rootfs, the working directory "
                                   "is '/',\n  and chdir('..') stops at the new root.")


# --- reference solutions --------------------------------------------------------------------------

_SOLUTIONS = {
    "my_namespaces": '''
        def my_namespaces(pid):
            """Map each namespace kind in /proc/<pid>/ns to where its link points."""
            directory = f"/proc/{pid}/ns"
            return {kind: os.readlink(os.path.join(directory, kind)) for kind in os.listdir(directory)}
    ''',
    "enter_root": '''
        def enter_root(new_root):
            """Make new_root this process's root directory, and stand inside it."""
            os.chroot(new_root)  # the root moves; the working directory does not
            os.chdir("/")        # so move it into the new root as well
    ''',
}


def solution(name: str) -> None:
    """Print the reference solution of the exercise ``name`` (e.g. ``"enter_root"``)."""
    try:
        source = _SOLUTIONS[name]
    except KeyError:
        raise ValueError(f"no exercise named {name!r}; there are: {', '.join(sorted(_SOLUTIONS))}") from None
    print(textwrap.dedent(source).strip())


def reference(name: str) -> Callable[..., Any]:
    """The reference solution of ``name`` as a function (its source is the printed solution)."""
    source = textwrap.dedent(_SOLUTIONS[name])
    namespace: dict[str, Any] = {"os": os}
    exec(compile(source, f"<solution {name}>", "exec"), namespace)  # noqa: S102 - our own code
    function = namespace[name]
    import linecache

    filename = f"<solution {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for inspect.getsource
    return function


# --- pictures --------------------------------------------------------------------------------------

_FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


def _box(x: float, y: float, w: float, h: float, fill: str, label: str = "", *, dashed: bool = False,
         stroke: str = "#444", size: int = 12, bold: bool = False, rx: int = 4) -> str:
    dash = ' stroke-dasharray="5,3"' if dashed else ""
    out = f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{rx}" fill="{fill}" stroke="{stroke}"{dash}/>'
    if label:
        weight = ' font-weight="bold"' if bold else ""
        out += (f'<text x="{x + w / 2}" y="{y + h / 2 + size / 3}" text-anchor="middle" '
                f'font-size="{size}"{weight}>{label}</text>')
    return out


def _text(x: float, y: float, label: str, *, size: int = 12, anchor: str = "middle", bold: bool = False,
          fill: str = "#222", italic: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    style = ' font-style="italic"' if italic else ""
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}" font-size="{size}" fill="{fill}"{weight}{style}>{label}</text>'


def _svg(width: int, height: int, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" {_FONT}>' + "".join(body) + "</svg>")


APP, LIB, KERNEL, HYPER, HARDWARE = "#a8dadc", "#e8f1f8", "#f4a261", "#e9c46a", "#ced4da"


def svg_vm_vs_containers() -> str:
    """Virtual machines (a guest kernel each, on a hypervisor) beside containers (processes of one kernel)."""
    body: list[str] = []
    # left: virtual machines
    x0 = 10
    body.append(_text(x0 + 175, 22, "Virtual machines", size=15, bold=True))
    for i in range(3):
        x = x0 + 8 + i * 115
        body.append(_box(x, 36, 105, 176, "#fff", stroke="#1d3557", rx=6))
        body.append(_text(x + 52.5, 52, f"VM {i + 1}", size=11, italic=True))
        body.append(_box(x + 8, 60, 89, 34, APP, "app"))
        body.append(_box(x + 8, 100, 89, 34, LIB, "libraries"))
        body.append(_box(x + 8, 140, 89, 34, KERNEL, "guest kernel", bold=True))
        body.append(_text(x + 52.5, 200, "virtual hardware", size=10, italic=True, fill="#555"))
    body.append(_box(x0 + 8, 222, 335, 34, HYPER, "hypervisor (KVM, Xen, Hyper-V…)"))
    body.append(_box(x0 + 8, 262, 335, 34, HARDWARE, "hardware"))
    body.append(_text(x0 + 175, 318, "each VM boots a whole operating system", size=12, italic=True))
    # right: containers
    x1 = 390
    body.append(_text(x1 + 175, 22, "Containers", size=15, bold=True))
    for i in range(3):
        x = x1 + 8 + i * 92
        body.append(_box(x, 76, 84, 136, "#fff", dashed=True, stroke="#1d3557", rx=6))
        body.append(_text(x + 42, 92, f"container {i + 1}", size=11, italic=True))
        body.append(_box(x + 7, 100, 70, 34, APP, "process"))
        body.append(_box(x + 7, 140, 70, 58, LIB, ""))
        body.append(_text(x + 42, 164, "its own", size=11))
        body.append(_text(x + 42, 180, "root files", size=11))
    body.append(_box(x1 + 286, 100, 57, 34, APP, "sshd", size=11))
    body.append(_box(x1 + 286, 140, 57, 34, APP, "jupyter", size=11))
    body.append(_text(x1 + 314, 192, "host", size=10, italic=True, fill="#555"))
    body.append(_text(x1 + 314, 204, "processes", size=10, italic=True, fill="#555"))
    body.append(_box(x1 + 8, 222, 335, 34, KERNEL, "one Linux kernel: namespaces + cgroups", bold=True))
    body.append(_box(x1 + 8, 262, 335, 34, HARDWARE, "hardware"))
    body.append(_text(x1 + 175, 318, "containers are processes sharing the host's kernel", size=12, italic=True))
    body.append('<line x1="375" y1="10" x2="375" y2="325" stroke="#bbb"/>')
    return _svg(740, 330, body)


def svg_process_model() -> str:
    """The process model: the kernel spawns a fresh child, which sets up and then becomes the program."""
    body = [
        '<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
        '<path d="M0,0 L10,4 L0,8 z" fill="#444"/></marker></defs>',
        _box(10, 30, 190, 70, APP, ""),
        _text(105, 58, "Jupyter kernel", bold=True, size=13),
        _text(105, 78, "many threads; never changed", size=11),
        _box(270, 30, 230, 70, LIB, ""),
        _text(385, 52, "python -m minictr.process.child", size=11, bold=True),
        _text(385, 70, "one thread, fresh: unshare, mount,", size=11),
        _text(385, 86, "chroot / pivot_root, drop privileges", size=11),
        _box(570, 30, 160, 70, KERNEL, ""),
        _text(650, 58, "your program", bold=True, size=13),
        _text(650, 78, "(sh, a web server…)", size=11),
        '<line x1="200" y1="65" x2="268" y2="65" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>',
        _text(234, 57, "spawn", size=11),
        '<line x1="500" y1="65" x2="568" y2="65" stroke="#444" stroke-width="1.5" marker-end="url(#arrow)"/>',
        _text(534, 57, "execve", size=11),
        _text(385, 124, "config over a socketpair; READY, then START", size=11, italic=True, fill="#555"),
    ]
    return _svg(740, 135, body)


def svg_chroot_tree() -> str:
    """The host's tree with the rootfs inside it, and the same rootfs as a chrooted process sees it."""
    mono = 'font-family="DejaVu Sans Mono, Menlo, monospace"'
    left = ["/", "├── bin  etc  home  usr …", "├── proc  (the host's processes)", "└── var", "    └── lib/minictr/…",
            "        └── rootfs", "            ├── bin  (busybox)", "            ├── etc  proc  tmp …", "            └── usr"]
    right = ["/", "├── bin  (busybox)", "├── etc  proc  tmp …", "└── usr"]
    body = [_text(170, 22, "what the host sees", bold=True, size=14),
            _text(572, 22, "what the chrooted process sees", bold=True, size=14)]
    body.append(_box(76, 126, 256, 80, "#fff3e0", stroke="#f4a261", rx=6))
    body.append(_box(462, 126, 220, 80, "#fff3e0", stroke="#f4a261", rx=6))
    for i, line in enumerate(left):
        body.append(f'<text x="20" y="{50 + i * 18}" font-size="13" {mono} xml:space="preserve">{line}</text>')
    for i, line in enumerate(right):
        body.append(f'<text x="470" y="{140 + i * 18}" font-size="13" {mono} xml:space="preserve">{line}</text>')
    body.append('<defs><marker id="arr" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
                '<path d="M0,0 L10,4 L0,8 z" fill="#f4a261"/></marker></defs>')
    body.append('<line x1="334" y1="166" x2="458" y2="166" stroke="#f4a261" stroke-width="2" marker-end="url(#arr)"/>')
    body.append(_text(396, 156, "chroot(rootfs)", size=12, bold=True))
    body.append(_text(572, 228, "nothing above rootfs has a name any more —", size=12, italic=True))
    body.append(_text(572, 246, "but it is all still there, and still shared", size=12, italic=True))
    return _svg(740, 256, body)


def stop(process: subprocess.Popen[Any], timeout: float = 10) -> int:
    """Stop a ``minictr run`` started in the background, as ``docker stop`` does; return its exit status.

    SIGTERM first — minictr passes it on to the container's program — and
    SIGKILL if it is still running after ``timeout`` seconds. A process that
    has ended already is only reaped. Killed by signal N gives 128 + N.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    code = process.returncode
    return 128 - code if code < 0 else code


#: The usual top-level directories of a Linux root (the Filesystem Hierarchy Standard, plus lib64).
USUAL_ROOT = ("bin", "boot", "dev", "etc", "home", "lib", "lib64", "media", "mnt", "opt", "proc", "root",
              "run", "sbin", "srv", "sys", "tmp", "usr", "var")


def brief(names: list[str]) -> str:
    """A listing of some ``/``, shortened to its usual top-level directories and a count of the others.

    Hosts keep all sorts of things in ``/``; the usual names are enough to
    tell one root from another (a busybox rootfs has no ``boot`` or ``lib``).
    """
    usual = sorted(name for name in names if name in USUAL_ROOT)
    others = len(names) - len(usual)
    return " ".join(usual) + (f" (+ {others} more)" if others else "")


def interfaces(proc_net_dev: str) -> list[str]:
    """The network interface names in the text of a ``/proc/net/dev`` file, sorted."""
    return sorted(line.split(":", 1)[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line)


def clean(notebook: str) -> list[str]:
    """Remove the notebook's :func:`workdir` (and the ``tutorial`` directory if now empty); return what is left."""
    path = workdir(notebook)
    remove_tree(path)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # other notebooks' directories are still there, or it is gone already
    return leftovers(path)


def remove_tree(path: str) -> None:
    """Remove a directory tree this notebook made (nothing mounted may remain inside it)."""
    with open("/proc/self/mountinfo") as handle:
        mounted = [line.split()[4] for line in handle if line.split()[4].startswith(path.rstrip("/") + "/")]
    if mounted:
        raise RuntimeError(f"refusing to remove {path}: still mounted inside it: {', '.join(mounted)}")
    shutil.rmtree(path, ignore_errors=True)
