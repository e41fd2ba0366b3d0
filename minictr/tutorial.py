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


# --- 04 · PID namespace: a container's processes, from inside and from the host -------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 10, what: str = "the condition") -> Any:
    """Call ``predicate`` until it returns something true, and return that; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def status(pid: int) -> dict[str, str]:
    """The lines of ``/proc/<pid>/status`` as a dict: ``{"Name": "sleep", "State": "S (sleeping)", ...}``."""
    with open(f"/proc/{pid}/status") as handle:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in handle)}


def alive(pid: int) -> bool:
    """True while ``pid`` runs: it exists and is not a zombie (exited, waiting to be reaped)."""
    try:
        return _stat(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def caught_signals(pid: int) -> list[str]:
    """The signals ``pid`` has installed a handler for (the ``SigCgt:`` mask of ``/proc/<pid>/status``)."""
    mask = int(status(pid)["SigCgt"], 16)
    names = []
    for number in range(1, 65):
        if mask & (1 << (number - 1)):
            try:
                names.append(signal.Signals(number).name)
            except ValueError:
                names.append(f"signal {number}")
    return names


def zombies(pid: int) -> list[int]:
    """The children of ``pid`` that are zombies: they exited, and ``pid`` has not waited for them yet."""
    found = []
    for child in children(pid):
        try:
            if _stat(child)[0] == "Z":
                found.append(child)
        except (OSError, IndexError):
            continue
    return found


def pid_table(pid: int) -> str:
    """``pid`` and its descendants: name, pid on the host, pid inside its own pid namespace, state.

    The inner pid is the last number of the ``NSpid:`` line of
    ``/proc/<pid>/status``, which lists a process's pid in every pid
    namespace it belongs to, outermost first; "-" when it is in ours only.
    """
    rows = [("process", "host pid", "pid inside", "state")]

    def walk(current: int, depth: int) -> None:
        try:
            info = status(current)
        except OSError:
            return  # it exited while we looked
        numbers = info.get("NSpid", str(current)).split()
        name = ("   " * (depth - 1) + "└─ " if depth else "") + info.get("Name", "?")
        rows.append((name, numbers[0], numbers[-1] if len(numbers) > 1 else "-", info.get("State", "?")))
        for child in children(current):
            walk(child, depth + 1)

    walk(pid, 0)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}   {b:>{widths[1]}}   {c:<{widths[2]}}   {d}" for a, b, c, d in rows)


def pid_of(container_id: str) -> int:
    """The host pid of a running (detached) container's first process: its PID 1 (``state.json``)."""
    from . import container

    return int(container.find(container_id)["pid"])


def _exec(container_id: str, command: tuple[str, ...]) -> Any:
    """:func:`minictr.container.exec_in`, capturing the output."""
    from . import container
    from .process.channel import ProtocolError

    for attempt in (1, 2):
        try:
            return container.exec_in(container_id, list(command), capture=True)
        except ProtocolError as exc:
            # exec's set-up messages may cross (INIT_PID after READY): it did not run, so try once more
            if attempt == 2 or "init-pid" not in str(exc):
                raise
    raise AssertionError("unreachable")


def exec_in(container_id: str, *command: str) -> None:
    """Run ``command`` in a running container, as ``minictr exec`` does, and print what it printed.

    This is :func:`minictr.container.exec_in` with the output captured and
    printed, and the exit status when it is not 0.
    """
    print("$ minictr exec " + shlex.join([container_id, *command]))
    done = _exec(container_id, command)
    sys.stdout.write(done.stdout.decode(errors="replace"))
    sys.stdout.write(done.stderr.decode(errors="replace"))
    if done.exit_code:
        print(f"(exit status {done.exit_code})")


def exec_output(container_id: str, *command: str) -> str:
    """The standard output of ``command`` run in a running container (printing nothing)."""
    return str(_exec(container_id, command).stdout.decode(errors="replace"))


def remove_container(container_id: str, timeout: float = 10) -> None:
    """Make sure a detached container is gone: SIGKILL its PID 1 if it still runs, wait, remove its directory.

    A container started with ``RunOptions(detach=True)`` from this process
    leaves its waiting process (``minictr-wait``) as a child of ours; it is
    reaped here, so that no zombie is left either.
    """
    from . import container
    from .errors import UsageError

    try:
        pid = int(container.find(container_id)["pid"])
    except UsageError:
        pid = 0  # it has ended already
    waiter = 0
    if pid:
        try:
            waiter = int(_stat(pid)[1])  # its parent: the minictr-wait process
            os.kill(pid, signal.SIGKILL)  # PID 1 cannot ignore a SIGKILL sent from the host
        except (OSError, IndexError):
            pass
        wait_until(lambda: not alive(pid), timeout, f"the end of container {container_id}")
    if waiter:
        wait_until(lambda: _reaped(waiter), timeout, f"the end of minictr-wait (pid {waiter})")
    for child in children(os.getpid()):  # the waiters of containers that ended on their own
        if _comm_or_none(child) == "minictr-wait" and not alive(child):
            _reaped(child)
    container.remove_stale(container.containers_dir())


def _reaped(pid: int) -> bool:
    """Reap ``pid`` if it is an exited child of ours; True once it is no child of ours any more."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return True  # not our child (or reaped already): nothing to do


def _comm_or_none(pid: int) -> str | None:
    try:
        return comm(pid)
    except OSError:
        return None


def svg_pid_trees() -> str:
    """The same processes numbered twice: in the host's pid namespace and in the container's."""
    mono = 'font-family="DejaVu Sans Mono, Menlo, monospace"'
    host = [("1", "init (systemd…)", 0), ("…", "", 0), ("3120", "python (this kernel)", 1),
            ("4211", "minictr", 2), ("4212", "minictr-wait", 3), ("4213", "minictr-init", 4), ("4214", "sleep", 5)]
    body = [_text(180, 22, "the host's PID namespace", bold=True, size=14),
            _text(585, 22, "the container's PID namespace", bold=True, size=14),
            '<defs><marker id="pidarrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
            '<path d="M0,0 L10,4 L0,8 z" fill="#e76f51"/></marker></defs>']
    body.append(_box(20, 164, 330, 54, "#fff3e0", stroke="#f4a261", dashed=True, rx=6))
    body.append(_box(470, 164, 230, 54, "#fff3e0", stroke="#f4a261", rx=6))
    for i, (number, name, depth) in enumerate(host):
        y = 52 + i * 26
        branch = "└─ " if depth else ""
        body.append(f'<text x="30" y="{y}" font-size="13" {mono} xml:space="preserve">'
                    f'{number:>5}  {"   " * max(depth - 1, 0)}{branch}{name}</text>')
    for i, (number, name) in enumerate((("1", "minictr-init"), ("2", "└─ sleep"))):
        y = 182 + i * 26
        body.append(f'<text x="480" y="{y}" font-size="13" {mono} xml:space="preserve">{number:>3}  {name}</text>')
        body.append(f'<line x1="354" y1="{y - 4}" x2="466" y2="{y - 4}" stroke="#e76f51" stroke-width="1.5" '
                    'stroke-dasharray="4,3" marker-end="url(#pidarrow)"/>')
    body.append(_text(410, 158, "same process", size=11, italic=True, fill="#e76f51"))
    body.append(_text(585, 70, "PID 1 is the first process of the namespace;", size=12, italic=True))
    body.append(_text(585, 88, "nothing outside it has a number here:", size=12, italic=True))
    body.append(_text(585, 106, "the container cannot see or signal it", size=12, italic=True))
    body.append(_text(370, 248, "one process, one pid per namespace it is in — /proc/4213/status says  NSpid: 4213  1",
                      size=12))
    body.append(_text(370, 268, "minictr-wait made the namespace but stays outside it: unshare(CLONE_NEWPID) moves only "
                      "its children", size=12, italic=True, fill="#555"))
    return _svg(740, 280, body)


# --- exercise: count_zombies (04-pid-namespace) ------------------------------------------------

#: A process with zombie children: it forks them (each named as told), never waits, and
#: prints their pids (the living child's first); it reaps them all when stdin closes.
_ZOMBIE_MAKER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
def child(name, seconds):
    pid = os.fork()
    if pid == 0:
        libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: the name /proc/<pid>/stat and ps show
        time.sleep(seconds)
        os._exit(0)
    return pid
def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""
living = child(sys.argv[1], 60)
dead = [child(name, 0) for name in sys.argv[2:]]
deadline = time.monotonic() + 10
while any(state(pid) != "Z" for pid in dead) and time.monotonic() < deadline:
    time.sleep(0.01)
print(" ".join(map(str, [living] + dead)), flush=True)
sys.stdin.read()
os.kill(living, 9)
for _ in range(1 + len(dead)):
    os.wait()
"""


def _zombie_maker(living: str, dead: list[str]) -> tuple[subprocess.Popen[str], list[int]]:
    """Start a process with one living child named ``living`` and a zombie child per name in ``dead``."""
    maker = subprocess.Popen([sys.executable, "-S", "-s", "-E", "-c", _ZOMBIE_MAKER, living, *dead],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert maker.stdout is not None
    import select

    ready, _, _ = select.select([maker.stdout], [], [], 15)
    line = maker.stdout.readline() if ready else ""
    if not line:
        _end_maker(maker)
        raise RuntimeError("the test process with zombie children did not start")
    return maker, [int(pid) for pid in line.split()]


def _end_maker(maker: subprocess.Popen[str]) -> None:
    try:
        if maker.stdin:
            maker.stdin.close()
        maker.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        maker.kill()
        maker.wait()


def check_count_zombies(function: Callable[[int], int]) -> None:
    """Run ``function(pid)`` in a child process for test processes; print ✔ or precisely what is wrong."""
    judge_count_zombies(function).show()


def judge_count_zombies(function: Callable[[int], int]) -> Verdict:
    """Check ``function(pid)`` counts the zombie children of ``pid``, and nothing else.

    Three test processes run meanwhile: one with 3 zombie children and a
    living one, one with 2 zombies (a decoy: their zombies are not the first
    one's), and one whose 3 zombies are named ``zombie child``, with a space
    (a naive split of ``/proc/<n>/stat`` misreads them).
    """
    name = function.__name__
    makers: list[subprocess.Popen[str]] = []
    try:
        plain, plain_pids = _zombie_maker("alive", ["zombie"] * 3)
        makers.append(plain)
        decoy, _ = _zombie_maker("alive", ["zombie"] * 2)
        makers.append(decoy)
        spaced, _ = _zombie_maker("still alive", ["zombie child"] * 3)
        makers.append(spaced)
        printed = ""

        def ask(pid: int) -> tuple[Any, Verdict | None]:
            nonlocal printed
            report = run_in_child(function, pid)
            printed = printed or _printed(report)
            if "error" in report:
                error = report["error"]
                hint = ""
                if error["type"] in ("FileNotFoundError", "ProcessLookupError"):
                    hint = ("\n  Processes come and go while you read /proc: skip an entry whose file has vanished "
                            "(try: ... except OSError: continue).")
                return None, Verdict(False, printed + _raised(name, error) + hint)
            value, kind = report.get("value"), report.get("type")
            if value is None:
                return None, Verdict(False, printed + f"✘ {name}(pid) returned None: did you forget `return`?")
            if kind != "int":
                return None, Verdict(False, printed + f"✘ {name}(pid) returned a {kind} ({value!r}); expected a number (int).")
            return value, None

        got, verdict = ask(plain.pid)
        if verdict:
            return verdict
        if got != 3:
            if got == 0:
                why = ("  A zombie's state is Z: the third field of /proc/<n>/stat ('4214 (sleep) Z 4213 ...'),\n"
                       "  or the State: line of /proc/<n>/status. Its parent is the fourth field (PPid: in status):\n"
                       "  compare it, as a number, with pid.")
            elif got == 4:
                why = "  4 is all its children: the living one is not a zombie. Count only those in state Z."
            elif got > 4:
                why = ("  That counts zombies that are not its children (other processes have zombies too):\n"
                       "  count only those whose parent (PPid) is pid.")
            else:
                why = "  Look at every process in /proc: its state (Z) and its parent (PPid)."
            return Verdict(False, printed + f"✘ {name}(pid) returned {got} for a test process that has 3 zombie "
                                            f"children (and 1 living child).\n" + why)
        got, verdict = ask(decoy.pid)
        if verdict:
            return verdict
        if got != 2:
            return Verdict(False, printed + f"✘ {name}(pid) was right for one test process but returned {got} for "
                                            "another, which has 2 zombie children: does it use its argument pid?")
        got, verdict = ask(spaced.pid)
        if verdict:
            return verdict
        if got != 3:
            return Verdict(False, printed + f"✘ {name}(pid) returned {got} for a process whose 3 zombie children are "
                                            "named 'zombie child' — with a space.\n"
                                            "  In /proc/<n>/stat the name, in parentheses, may hold spaces and ')':\n"
                                            "  split the line after its last ')' (stat.rsplit(')', 1)[1].split()), "
                                            "or read /proc/<n>/status.")
        got, verdict = ask(plain_pids[0])
        if verdict:
            return verdict
        if got != 0:
            return Verdict(False, printed + f"✘ {name}(pid) returned {got} for a process that has no children at all.")
        return Verdict(True, printed + f"✔ Correct: {name}(pid) counts the zombie children of pid — 3, 2, 3 and 0 for "
                                       "the four test processes —\n  whatever their names.")
    finally:
        for maker in makers:
            _end_maker(maker)


_SOLUTIONS["count_zombies"] = '''
    def count_zombies(pid):
        """How many children of process `pid` are zombies (state Z), read from /proc."""
        count = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    stat = handle.read()
            except OSError:
                continue  # it exited while we looked
            # "4214 (sleep) Z 4213 ...": the name may hold spaces and ')', so split after the last ')'
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if state == "Z" and int(parent) == pid:
                count += 1
        return count
'''

__all__ += ["alive", "caught_signals", "check_count_zombies", "exec_in", "exec_output", "judge_count_zombies", "pid_of", "pid_table",
            "remove_container", "status", "svg_pid_trees", "wait_until", "zombies"]


# --- 05 · user namespace: rootless minictr, pictures ------------------------------------------


class RootlessUser:
    """minictr as an unprivileged user (``nobody``, uid 65534 by default): rootless containers from a root notebook.

    That user cannot read this kernel's Python environment (it may live in a
    private home), so ``home`` gets a copy of the minictr package and state
    and data roots that the user owns; minictr runs there with a Python the
    user can run, under ``setpriv``. :meth:`clean` kills what is left and
    removes ``home``.
    """

    def __init__(self, home: str, uid: int = 65534, gid: int = 65534) -> None:
        self.home, self.uid, self.gid = home, uid, gid
        self.state_root = os.path.join(home, "state")
        self.data_root = os.path.join(home, "data")
        self.library = os.path.join(home, "lib")
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise HostLacks("The rootless cells need setpriv (util-linux) to run minictr as another user.")
        self.clean()
        for path in (self.home, self.library):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o755)
        tutorial_dir = os.path.dirname(workdir("-"))
        parent = os.path.dirname(self.home)
        while parent.startswith(tutorial_dir):  # the tutorial's own directories: let the user through
            os.chmod(parent, 0o755)
            parent = os.path.dirname(parent)
        while parent != os.path.dirname(parent):  # the others must let it through already
            if not os.stat(parent).st_mode & 0o001:
                raise HostLacks(f"The rootless cells need {parent} to be searchable by other users (chmod o+x).")
            parent = os.path.dirname(parent)
        shutil.copytree(os.path.join(_package_parent(), "minictr"), os.path.join(self.library, "minictr"),
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for directory, _, files in os.walk(self.library):
            os.chmod(directory, 0o755)
            for name in files:
                os.chmod(os.path.join(directory, name), 0o644)
        for path in (self.state_root, self.data_root):
            os.makedirs(path)
            os.chown(path, uid, gid)
        self.prefix = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "env", "-i",
                       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", f"HOME={self.data_root}",
                       "LC_ALL=C.UTF-8", f"PYTHONPATH={self.library}", f"MINICTR_ROOT={self.state_root}",
                       f"MINICTR_DATA_ROOT={self.data_root}"]
        self.python = self._find_python()
        try:
            import pwd

            self.name = pwd.getpwuid(uid).pw_name
        except KeyError:
            self.name = f"uid {uid}"

    def _find_python(self) -> str:
        """A Python >= 3.11 this user can run, and from which it can import the copied package."""
        candidates = [sys.executable, "/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3") or ""]
        for python in dict.fromkeys(c for c in candidates if c):
            test = [*self.prefix, python, "-c", "import sys, minictr; sys.exit(sys.version_info < (3, 11))"]
            if subprocess.run(test, capture_output=True, timeout=30).returncode == 0:
                return python
        raise HostLacks(f"The rootless cells need a Python 3.11 or newer that uid {self.uid} can run "
                        f"(tried {', '.join(dict.fromkeys(c for c in candidates if c))}).")

    def minictr(self, *args: str, timeout: float = 120) -> None:
        """Run ``minictr ARGS...`` as this user, and print what a terminal would show."""
        print(f"{self.name}$ minictr " + shlex.join(args))
        done = subprocess.run([*self.prefix, self.python, "-m", "minictr.cli", *args], capture_output=True, text=True,
                              timeout=timeout)
        sys.stdout.write(done.stdout)
        sys.stdout.write(done.stderr)
        if done.returncode:
            print(f"(exit status {done.returncode})")

    def containers(self) -> list[str]:
        """The ids of this user's detached containers (those with a state in the user's state root)."""
        base = os.path.join(self.state_root, "containers")
        return sorted(name for name in (os.listdir(base) if os.path.isdir(base) else [])
                      if os.path.exists(os.path.join(base, name, "state.json")))

    def pid_of(self, container_id: str) -> int:
        """The host pid of PID 1 of one of this user's detached containers."""
        with open(os.path.join(self.state_root, "containers", container_id, "state.json")) as handle:
            return int(json.load(handle)["pid"])

    def clean(self, timeout: float = 10) -> list[str]:
        """Kill this user's containers that still run, remove ``home``; return what is left (empty: nothing)."""
        containers = os.path.join(self.state_root, "containers")
        for name in os.listdir(containers) if os.path.isdir(containers) else []:
            try:
                with open(os.path.join(containers, name, "state.json")) as handle:
                    state = json.load(handle)
                pid = int(state["pid"])
                if _stat(pid)[19] != state.get("start"):
                    continue  # that pid is another process now
                os.kill(pid, signal.SIGKILL)
                wait_until(lambda: not alive(pid), timeout, f"the end of container {name}")
            except (OSError, ValueError, KeyError, IndexError):
                continue  # no state, or the container is gone already
        remove_tree(self.home)
        return leftovers(self.home)


def svg_id_map() -> str:
    """uid_map ``0 100000 65536``: ids inside the container land on a range of the host's ids."""
    body = ['<defs><linearGradient id="idmap" x1="0" y1="0" x2="0" y2="1">'
            '<stop offset="0" stop-color="#a8dadc"/><stop offset="1" stop-color="#a8dadc" stop-opacity="0.35"/>'
            '</linearGradient></defs>']
    body.append(_text(20, 28, "inside the container (its user namespace)", anchor="start", bold=True, size=13))
    body.append(_box(300, 40, 300, 30, APP, "0 … 65535", size=12))
    body.append(_text(292, 60, "root = 0", anchor="end", size=11))
    body.append(_text(608, 60, "65535", anchor="start", size=11))
    body.append(_text(20, 60, "uid_map:  0  100000  65536", anchor="start", size=12, italic=True))
    body.append(_text(20, 76, "(inside, outside, count)", anchor="start", size=11, fill="#555"))
    # the band from the inside range down to the host's range
    body.append('<polygon points="300,70 600,70 560,150 440,150" fill="url(#idmap)" stroke="#7fb8bb"/>')
    body.append(_text(20, 140, "on the host", anchor="start", bold=True, size=13))
    segments = [(20, 50, "#f4a261", "0 root"), (70, 170, LIB, "1 … 99999: host users"),
                (240, 200, HARDWARE, "…"), (440, 120, APP, "100000 … 165535"), (560, 160, HARDWARE, "165536 …")]
    for x, w, fill, label in segments:
        body.append(_box(x, 150, w, 30, fill, label, size=11, rx=0))
    body.append(_text(500, 198, "the container's range", size=11, italic=True))
    body.append(_text(20, 198, "not mapped: shows as nobody", anchor="start", size=11, italic=True, fill="#555"))
    body.append(_text(20, 212, "(65534) inside", anchor="start", size=11, italic=True, fill="#555"))
    body.append(_text(370, 240, "root inside is uid 100000 on the host: the kernel checks every access as that user",
                      size=12))
    body.append(_text(370, 258, "rootless: uid_map is  0  1000  1  — only your own uid, mapped to root inside",
                      size=12, italic=True, fill="#555"))
    return _svg(740, 268, body)


# --- exercise: parse_id_map and to_host (05-user-namespace) -------------------------------------

_PADDED = "         0     100000      65536\n"

#: (text of a uid_map, the list parse_id_map should return)
_ID_MAP_CASES: list[tuple[str, list[tuple[int, int, int]]]] = [
    (_PADDED, [(0, 100000, 65536)]),
    ("         0       1000          1\n         1     100000      65536\n", [(0, 1000, 1), (1, 100000, 65536)]),
    ("", []),
]

_ONE = [(0, 100000, 65536)]
_TWO = [(0, 1000, 1), (1, 100000, 65536)]

#: (uid, mapping, expected host uid, why)
_TO_HOST_CASES: list[tuple[int, list[tuple[int, int, int]], int | None, str]] = [
    (0, _ONE, 100000, "uid 0 inside is the first id of the range: 100000 outside"),
    (1000, _ONE, 101000, "an id inside the range moves by (outside - inside): 1000 inside is 101000 outside"),
    (65535, _ONE, 165535, "65535 is the last id of a range of 65536 ids that starts at 0"),
    (65536, _ONE, None, "a line 'inside outside count' maps inside … inside+count-1; 65536 is just past the range, "
                        "so it is not mapped"),
    (100000, _ONE, None, "100000 is where the range lands on the host; uid 100000 *inside* is not mapped "
                         "(to_host goes from inside to outside)"),
    (0, _TWO, 1000, "with two lines, uid 0 is in the first one (0 1000 1): 1000 outside"),
    (5, _TWO, 100004, "with two lines, uid 5 is in the second one (1 100000 65536): 100000 + (5 - 1)"),
    (7, [], None, "an empty map maps nothing"),
]


def check_id_maps(parse_id_map: Callable[[str], Any], to_host: Callable[[int, Any], Any]) -> None:
    """Run both functions in child processes; print ✔ or precisely what is wrong with each."""
    judge_id_maps(parse_id_map, to_host).show()


def _as_entries(value: Any) -> list[Any] | None:
    """A parse_id_map result as a list of tuples, or None when it is not a list of sequences."""
    if not isinstance(value, list) or not all(isinstance(entry, list) for entry in value):
        return None
    return [tuple(entry) for entry in value]


def _judge_parse(function: Callable[[str], Any]) -> tuple[bool, str]:
    name = function.__name__
    printed = ""
    for text, expected in _ID_MAP_CASES:
        report = run_in_child(function, text)
        printed = printed or _printed(report)
        call = f"{name}({text!r})"
        if "error" in report:
            error = report["error"]
            hint = ""
            if error["type"] == "ValueError" and ("unpack" in error["message"] or "invalid literal" in error["message"]):
                hint = (f"\n  The kernel pads the columns with spaces ({_PADDED.rstrip()!r}): line.split() with no "
                        "argument splits on any run of whitespace.")
            return False, printed + _raised(name, error).replace(f"{name}(...)", call, 1) + hint
        value, kind = report.get("value"), report.get("type")
        if value is None:
            return False, printed + f"✘ {call} returned None: did you forget `return`?"
        entries = _as_entries(value)
        if kind not in ("list", "tuple") or entries is None:
            return False, printed + (f"✘ {call} returned {value!r} (a {kind}); expected a list of (inside, outside, "
                                     f"count) tuples, such as {expected!r}")
        if entries == expected:
            continue
        if len(entries) != len(expected):
            return False, printed + (f"✘ {call} returned {len(entries)} entries; expected {len(expected)}, one per "
                                     f"line: {expected!r}")
        wrong = next(entry for entry, right in zip(entries, expected) if entry != right)
        right = expected[entries.index(wrong)]
        if len(wrong) != 3:
            why = "each entry is three numbers: (inside, outside, count)"
        elif any(isinstance(item, str) for item in wrong):
            why = "those are strings: convert each column with int()"
        elif sorted(wrong) == sorted(right):
            why = "the columns are in the order inside, outside, count ('0 100000 65536': uid 0 inside is 100000 outside)"
        else:
            why = "read the three columns of each line"
        return False, printed + f"✘ {call} gave the entry {wrong!r}; expected {right!r}: {why}."
    return True, printed + f"✔ {name} reads the kernel's padded columns, one entry per line (and [] for an empty map)."


def _judge_to_host(function: Callable[[int, Any], Any]) -> tuple[bool, str]:
    name = function.__name__
    printed = ""
    for uid, mapping, expected, why in _TO_HOST_CASES:
        report = run_in_child(function, uid, [list(entry) for entry in mapping])
        printed = printed or _printed(report)
        call = f"{name}({uid}, {mapping!r})"
        if "error" in report:
            return False, printed + _raised(name, report["error"]).replace(f"{name}(...)", call, 1)
        value, kind = report.get("value"), report.get("type")
        if value == expected and kind in ("int", "NoneType"):
            continue
        if isinstance(value, str):
            return False, printed + f"✘ {call} returned the string {value!r}; return an int (or None)."
        got = "None" if value is None else repr(value)
        return False, printed + f"✘ {call} returned {got}; expected {expected}: {why}."
    return True, printed + (f"✔ {name} maps an id inside to the host, through the right line, and gives None for "
                            "ids no line maps.")


def judge_id_maps(parse_id_map: Callable[[str], Any], to_host: Callable[[int, Any], Any]) -> Verdict:
    """Check ``parse_id_map(text)`` on uid_map texts, and ``to_host(uid, mapping)`` on mappings (each in a child)."""
    parse_ok, parse_message = _judge_parse(parse_id_map)
    host_ok, host_message = _judge_to_host(to_host)
    if parse_ok and host_ok:
        return Verdict(True, parse_message + "\n" + host_message + "\n✔ Correct: both functions are right.")
    return Verdict(False, parse_message + "\n" + host_message)


_SOLUTIONS["parse_id_map"] = '''
    def parse_id_map(text):
        """'0 100000 65536' lines (as in /proc/<pid>/uid_map) -> [(inside, outside, count), ...]."""
        mapping = []
        for line in text.splitlines():
            inside, outside, count = line.split()  # split() with no argument: the columns are padded
            mapping.append((int(inside), int(outside), int(count)))
        return mapping
'''

_SOLUTIONS["to_host"] = '''
    def to_host(uid, mapping):
        """The host uid that `uid` inside is, through `mapping`; None when no line maps it."""
        for inside, outside, count in mapping:
            if inside <= uid < inside + count:  # a line maps inside ... inside+count-1
                return outside + (uid - inside)
        return None
'''

__all__ += ["RootlessUser", "check_id_maps", "judge_id_maps", "svg_id_map"]


# --- containers seen from the host (00, 02, 03) ----------------------------------------------------


def wait_for_descendant(parent: int | subprocess.Popen[Any], name: str, timeout: float = 15) -> int:
    """Like :func:`wait_for_child`, but ``name`` may be any descendant of ``parent``; return its pid.

    ``minictr run`` starts ``minictr-wait``, whose child is the container's
    PID 1: ``wait_for_descendant(cli, "sleep")`` finds that grandchild.
    """
    pid = parent if isinstance(parent, int) else parent.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        level = children(pid)
        while level:
            for child in level:
                try:
                    if comm(child) == name:
                        return child
                except OSError:
                    continue
            level = [grandchild for child in level for grandchild in children(child)]
        if not isinstance(parent, int) and parent.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, parent.args))} exited with status {parent.returncode} "
                               f"before a {name!r} process appeared")
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} has no descendant named {name!r} after {timeout:g} s")


def kill_container(cli: subprocess.Popen[Any], pid: int, timeout: float = 10) -> int:
    """End a ``minictr run`` started in the background: SIGKILL to its PID 1 (host pid ``pid``); return the status.

    Its PID 1 ignores SIGTERM unless it has a handler for it (notebook 04), so
    :func:`stop` would wait in vain. Once PID 1 is gone, ``minictr`` removes
    the container's directory and exits with 137 (128 + SIGKILL). Does
    nothing but reap when it has ended already.
    """
    if cli.poll() is None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    code = cli.wait(timeout)
    return 128 - code if code < 0 else code


def call_in(pid: int, function: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
    """Run ``function(*args)`` inside the running container whose PID 1 is host pid ``pid``; return its value.

    A spawned child enters the container as ``minictr exec`` does — every
    namespace of ``pid`` with setns(2), then its root directory — and runs the
    function there (never this process). The function travels as source and
    sees ``os``; inside, ``import`` works only for modules that child had
    loaded already (``ctypes``, ``minictr.linux``), as after any change of root.
    """
    import inspect

    from .process.channel import Message, ProtocolError, raise_if_error
    from .process.parent import spawn
    from .spec import default_spec

    payload = {"source": textwrap.dedent(inspect.getsource(function)), "name": function.__name__, "args": list(args)}
    process = spawn(default_spec(f"/proc/{pid}/root", ["python-function"]), call=payload, join=pid,
                    stdin=subprocess.DEVNULL)
    try:
        process.channel.send(Message.START)
        while True:
            message = process.channel.receive(timeout)
            if message is None:
                raise ProtocolError("result", "end of file (the child exited)")
            raise_if_error(message)
            if message["type"] == Message.RESULT.value:
                return message.get("value")
            # anything else is the init-pid notice, which may arrive after READY: skip it
    finally:
        process.channel.close()
        try:
            process.popen.wait(5)  # it exits right after its result
        except subprocess.TimeoutExpired:
            process.kill()


def mount_points(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) for each line of a ``/proc/<pid>/mountinfo`` text."""
    table = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" in fields:
            table.append((fields[4], fields[fields.index("-") + 1]))
    return table


def propagation(mountinfo_line: str) -> str:
    """The propagation of one mountinfo line: ``shared``, ``slave``, ``shared+slave``, ``unbindable`` or ``private``.

    It is in the optional fields between the mount options and ``-``:
    ``shared:N`` (peer group N), ``master:N`` (receives from group N).
    """
    fields = mountinfo_line.split()
    optional = fields[6:fields.index("-")] if "-" in fields else []
    kinds = [{"shared": "shared", "master": "slave", "unbindable": "unbindable"}.get(tag.split(":")[0], "")
             for tag in optional]
    return "+".join(kind for kind in kinds if kind) or "private"


# --- exercise: pivot_into (02-mount-namespace) --------------------------------------------------------


def check_pivot_into(function: Callable[[str], Any], rootfs: str) -> None:
    """Run ``function(new_root)`` in a child process; print ✔ or precisely what is wrong (see :func:`judge_pivot_into`)."""
    judge_pivot_into(function, rootfs).show()


def _pivot_check(source, name, rootfs, new_root):  # no annotations: it travels as source to a bare child
    """(Runs in the check's child.) Prepare a private mount namespace and a copy of ``rootfs``, run the
    learner's function on it, and report what the process sees afterwards."""
    import subprocess

    from minictr import linux, rootfs as mounts

    linux.unshare(linux.CLONE_NEWNS)  # a mount table of our own, a copy of the host's
    mounts.make_private("/")  # nothing below may propagate back to the host
    linux.mount("tmpfs", new_root, "tmpfs", 0, "mode=755")  # a mount point, as pivot_root wants
    copied = subprocess.run(["cp", "-a", rootfs + "/.", new_root], capture_output=True, text=True)
    if copied.returncode:
        return {"setup_error": f"copying the rootfs failed: {copied.stderr.strip()}"}
    linux.mount("proc", os.path.join(new_root, "proc"), "proc")  # to read mountinfo afterwards
    report: dict[str, Any] = {"expected": sorted(os.listdir(new_root)), "host": sorted(os.listdir("/"))}
    namespace: dict[str, Any] = {"__name__": "__exercise__", "os": os}
    try:
        exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - the learner's own code
        namespace[name](new_root)
    except BaseException as exc:
        line, tb = 0, exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == f"<{name}>":
                line = tb.tb_lineno
            tb = tb.tb_next
        report["error"] = {"type": type(exc).__name__, "message": str(exc), "line": line,
                           "errno": getattr(exc, "errno", None)}
    report["root"] = sorted(os.listdir("/"))
    try:
        report["cwd"] = os.getcwd()
    except OSError as exc:
        report["cwd_error"] = f"{type(exc).__name__} ({exc.strerror})"
    try:
        with open("/proc/self/mountinfo") as handle:
            report["mounts"] = [line.split()[4] for line in handle]
    except OSError as exc:
        report["mounts_error"] = f"{type(exc).__name__}: {exc}"
    try:  # 01's escape: does '..' lead anywhere above this root? (only in the copy: it makes a directory)
        if not set(report["expected"]) <= set(report["root"]) or report["root"] == report["host"]:
            raise RuntimeError("the root is not the copy")
        os.makedirs("/.check-escape", exist_ok=True)
        os.chroot("/.check-escape")
        for _ in range(64):
            os.chdir("..")
        os.chroot(".")
        report["escaped"] = sorted(name for name in os.listdir("/") if name != ".check-escape")
    except (OSError, RuntimeError) as exc:
        report["escape_error"] = f"{type(exc).__name__}: {exc}"
    return report


def judge_pivot_into(function: Callable[[str], Any], rootfs: str) -> Verdict:
    """Run ``function(new_root)`` in a child process with a mount namespace of its own, and check it.

    The child makes ``/`` private, mounts a tmpfs holding a copy of ``rootfs``
    (with a /proc) and calls ``function`` on it. Afterwards ``/`` must list the
    copy and nothing else (no leftover put_old directory), the mount table
    must hold only the new root and its /proc (the old root unmounted), the
    working directory must be ``/``, and 01's escape must find only the new
    root. Nothing of this reaches the host: the child's mounts die with it.
    """
    name = function.__name__
    source = _source(function)
    new_root = os.path.join(os.path.dirname(rootfs.rstrip("/")), "exercise-root")
    os.makedirs(new_root, exist_ok=True)
    try:
        report = run_in_child(_pivot_check, source, name, rootfs, new_root, timeout=30)
    finally:
        try:
            os.rmdir(new_root)  # an empty directory: the tmpfs on it lived in the child's namespace only
        except OSError:
            pass
    printed = _printed(report)

    def wrong(message: str) -> Verdict:
        return Verdict(False, printed + "✘ " + message)

    if "error" in report:  # the check itself failed
        return wrong(f"the check could not run: {report['error']['type']}: {report['error']['message']}")
    state = report.get("value") or {}
    if "setup_error" in state:
        return wrong(f"the check could not prepare a root: {state['setup_error']}")
    expected, host = state["expected"], state["host"]
    if "error" in state:
        error = state["error"]
        message = _raised(name, error)
        text, number = error["message"], error.get("errno")
        if error["type"] == "AttributeError" and "pivot_root" in text:
            hint = "Python's os has no pivot_root: use linux.pivot_root(new_root, put_old) (from minictr import linux)."
        elif "pivot_root(" in text and number == 2:
            hint = "put_old must exist: make the directory (os.makedirs) under new_root before pivot_root."
        elif "pivot_root(" in text and number == 22:
            hint = ("pivot_root's rules: put_old must be at or under new_root, and both must be directories\n"
                    "  (new_root here is a mount point already, and the mount tree is private).")
        elif "umount2(" in text and new_root in text:
            hint = (f"after pivot_root, {new_root} means nothing any more: / is the new root,\n"
                    "  so the old root is at '/' + the name of put_old (e.g. '/.oldroot').")
        elif "umount2(" in text and number == 16:
            hint = ("the old root is busy: mounts below it (its /proc, /dev…) and maybe your working directory.\n"
                    "  umount2(put_old, linux.MNT_DETACH) detaches the whole tree at once.")
        elif "umount2(" in text and number == 22:
            hint = "umount2 needs the mount point of the old root: '/' + the name of put_old (e.g. '/.oldroot')."
        elif "rmdir" in text or number == 39:
            hint = "the old root must be unmounted (umount2 with MNT_DETACH) before its directory can go."
        else:
            hint = ""
        return Verdict(False, printed + message + ("\n  " + hint if hint else ""))
    root = state["root"]
    if root == host and root != expected:
        return wrong(f"after {name}(new_root), / is still the host's root ({brief(root)}).\n"
                     "  Call linux.pivot_root(new_root, put_old), with put_old a directory under new_root.")
    missing = [entry for entry in expected if entry not in root]
    if missing:
        return wrong(f"after {name}(new_root), / lists {_listing(root)}\n"
                     f"  but new_root holds {_listing(expected)}: make new_root itself the new root.")
    mounts = state.get("mounts")
    if mounts is None:
        return wrong(f"after {name}(new_root), /proc/self/mountinfo cannot be read ({state.get('mounts_error')}).")
    others = [point for point in mounts if point not in ("/", "/proc")]
    if others:
        top = min(others, key=len)
        below = [point for point in others if point != top and point.startswith(top.rstrip("/") + "/")]
        return wrong(f"/ is the new root, but the old root is still mounted at {top}"
                     + (" (with its own mounts below it)" if below else "") + ":\n"
                     "  every file of the host is still reachable there. After pivot_root, detach it:\n"
                     f"  linux.umount2({top!r}, linux.MNT_DETACH).")
    escaped = state.get("escaped")
    extra = [entry for entry in root if entry not in expected]
    if extra:
        return wrong(f"the old root is unmounted, but its directory is still there: /{extra[0]}.\n"
                     f"  Remove it (os.rmdir('/{extra[0]}')) once the old root is detached.")
    cwd, cwd_error = state.get("cwd"), state.get("cwd_error")
    if cwd_error or cwd != "/":
        seen = f"os.getcwd() fails with {cwd_error}" if cwd_error else f"the working directory is {cwd!r}"
        way_out = escaped is not None and escaped == host and host != expected
        return wrong(f"the root is right, but {seen}:\n"
                     "  the working directory is still in the old root" + (", detached but not gone" if cwd_error else "")
                     + (". From there, '..' climbs to the host's /." if way_out else ".")
                     + "\n  pivot_root does not move it: os.chdir('/') after pivot_root.")
    if escaped is not None and escaped == host and host != expected:
        return wrong("/ lists the rootfs and the mount table looks right, but 01's escape still reaches the host's /.\n"
                     "  chroot only hides the old root: it is still mounted in this namespace, above the new root,\n"
                     "  and mountinfo does not show what lies outside the root. pivot_root moves the old root\n"
                     "  below the new one, where it can be unmounted.")
    if escaped != expected:
        return wrong(f"the root and working directory look right, but the escape leads to {_listing(escaped or [])}.")
    return Verdict(True, printed + f"✔ Correct: after {name}(new_root), / is the copy of the rootfs, the old root is\n"
                                   "  unmounted and its directory gone, the working directory is '/', and\n"
                                   "  01's escape finds nothing above the new root.")


# --- exercise: new_uts (03-uts-ipc) ------------------------------------------------------------------


def check_new_uts(function: Callable[[str, str], Any], hostname: str = "exercise", domainname: str = "example.org") -> None:
    """Run ``function(hostname, domainname)`` in a child process; print ✔ or precisely what is wrong."""
    judge_new_uts(function, hostname, domainname).show()


def _uts_check(source, name, hostname, domainname):  # no annotations: it travels as source to a bare child
    """(Runs in the check's child.) Stand in a throwaway UTS namespace, run the learner's function,
    and report the names inside and in the namespace it started in."""
    from minictr import linux

    def names():
        with open("/proc/sys/kernel/domainname") as handle:
            return [os.uname().nodename, handle.read().strip()]

    linux.unshare(linux.CLONE_NEWUTS)  # the stand-in for the host's UTS namespace: a wrong answer renames only it
    start = os.open("/proc/self/ns/uts", os.O_RDONLY)
    report: dict[str, Any] = {"before": names(), "start_ns": os.readlink("/proc/self/ns/uts")}
    namespace: dict[str, Any] = {"__name__": "__exercise__", "os": os}
    try:
        exec(compile(source, f"<{name}>", "exec"), namespace)  # noqa: S102 - the learner's own code
        namespace[name](hostname, domainname)
    except BaseException as exc:
        line, tb = 0, exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == f"<{name}>":
                line = tb.tb_lineno
            tb = tb.tb_next
        report["error"] = {"type": type(exc).__name__, "message": str(exc), "line": line}
    report["ns"] = os.readlink("/proc/self/ns/uts")
    report["inside"] = names()
    linux.setns(start, linux.CLONE_NEWUTS)  # back where it started: did anything change there?
    report["start_after"] = names()
    return report


def judge_new_uts(function: Callable[[str, str], Any], hostname: str = "exercise", domainname: str = "example.org") -> Verdict:
    """Run ``function(hostname, domainname)`` in a child and check it made a UTS namespace of its own, so named.

    The child first moves into a throwaway UTS namespace that stands in for the
    host's, so a function that renames the namespace it is in (the classic
    mistake: sethostname without unshare) renames only that stand-in — and the
    verdict says what it would have done to the host.
    """
    name = function.__name__
    report = run_in_child(_uts_check, _source(function), name, hostname, domainname)
    printed = _printed(report)

    def wrong(message: str) -> Verdict:
        return Verdict(False, printed + "✘ " + message)

    if "error" in report:
        return wrong(f"the check could not run: {report['error']['type']}: {report['error']['message']}")
    state = report.get("value") or {}
    before, after, inside = state["before"], state["start_after"], state["inside"]
    own = state["ns"] != state["start_ns"]
    renamed = after != before
    if "error" in state:
        error = state["error"]
        hint = ""
        if error["type"] == "AttributeError" and "unshare" in error["message"]:
            hint = "Python 3.11's os has no unshare (3.12 adds one): use linux.unshare(linux.CLONE_NEWUTS)."
        elif error["type"] == "AttributeError" and "sethostname" in error["message"]:
            hint = "os has no sethostname: use linux.sethostname(name) and linux.setdomainname(name)."
        return Verdict(False, printed + _raised(name, error) + ("\n  " + hint if hint else "")
                       + ("\n  And before that, it renamed the namespace it started in — on a host, the host's."
                          if renamed else ""))
    if renamed and not own:
        return wrong(f"{name} renamed the UTS namespace it was in to {after[0]!r}"
                     + (f" (domain {after[1]!r})" if after[1] != before[1] else "") + ".\n"
                     "  Run in a notebook, that namespace is the host's: every process on it would see the new name.\n"
                     "  (The check ran it in a throwaway namespace, so nothing happened.)\n"
                     "  Give the process a UTS namespace of its own first: linux.unshare(linux.CLONE_NEWUTS).")
    if renamed:
        return wrong(f"{name} made a UTS namespace of its own, but too late: the namespace it started in\n"
                     f"  (on a host, the host's) was renamed to {after[0]!r} first. unshare before setting the names.")
    if not own:
        return wrong(f"{name} stayed in the UTS namespace it started in (and changed nothing):\n"
                     "  call linux.unshare(linux.CLONE_NEWUTS), then set the names.")
    if inside[0] != hostname:
        return wrong(f"the process has a UTS namespace of its own, but its hostname is {inside[0]!r}, not {hostname!r}:\n"
                     "  the new namespace starts as a copy of the old names; set it with linux.sethostname(hostname).")
    if inside[1] != domainname:
        return wrong(f"the hostname is right, but the NIS domain name is {inside[1]!r}, not {domainname!r}:\n"
                     "  set it with linux.setdomainname(domainname).")
    return Verdict(True, printed + f"✔ Correct: {name} made a UTS namespace of its own, named {hostname!r} in domain\n"
                                   f"  {domainname!r}, and the namespace it started in kept its names.")


def _source(function: Callable[..., Any]) -> str:
    """A function's source, dedented (what travels to a child)."""
    import inspect

    try:
        return textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return f"def {function.__name__}(*args):\n    raise RuntimeError('the source of this function cannot be read')\n"


_SOLUTIONS["pivot_into"] = '''
    def pivot_into(new_root):
        """Make new_root (a mount point) the root of this mount namespace; detach and remove the old root."""
        from minictr import linux
        put_old = os.path.join(new_root, ".oldroot")
        os.makedirs(put_old, exist_ok=True)            # pivot_root wants put_old at or under new_root
        linux.pivot_root(new_root, put_old)             # new_root becomes /, the old root moves to /.oldroot
        os.chdir("/")                                   # pivot_root leaves the working directory where it was
        linux.umount2("/.oldroot", linux.MNT_DETACH)    # detach the old root and every mount below it
        os.rmdir("/.oldroot")                           # and remove the empty directory
'''

_SOLUTIONS["new_uts"] = '''
    def new_uts(hostname, domainname):
        """Give this process a UTS namespace of its own, named hostname in NIS domain domainname."""
        from minictr import linux
        linux.unshare(linux.CLONE_NEWUTS)   # a new UTS namespace: a copy of the old names
        linux.sethostname(hostname)         # from now on, these change only the new one
        linux.setdomainname(domainname)
'''


# --- pictures: the mount tree around pivot_root (02) ---------------------------------------------------


def svg_pivot_root() -> str:
    """The container's mount tree before pivot_root, after it, and after the old root is detached."""
    mono = 'font-family="DejaVu Sans Mono, Menlo, monospace"'
    old, new, gone = "#ced4da", "#a8dadc", "#bbb"

    def line(x: float, y: float, text: str, color: str = "#222") -> str:
        return f'<text x="{x}" y="{y}" font-size="12" fill="{color}" {mono} xml:space="preserve">{text}</text>'

    body = ['<defs><marker id="pv" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">'
            '<path d="M0,0 L10,4 L0,8 z" fill="#444"/></marker></defs>']
    titles = [(125, "1 · before"), (375, "2 · pivot_root(new, new/.oldroot)"), (620, "3 · umount2(/.oldroot), rmdir")]
    for x, title in titles:
        body.append(_text(x, 20, title, bold=True, size=12))
    # 1: the host's tree (a copy, in the container's own mount namespace) with the new root inside
    body.append(_box(8, 34, 234, 214, old, rx=6))
    for i, text in enumerate(["/           the host's root", "├── proc dev sys …", "└── run/minictr/…/rootfs"]):
        body.append(line(16, 54 + i * 17, text))
    body.append(_box(26, 108, 208, 118, new, rx=6))
    for i, text in enumerate(["new root (a mount point)", "├── bin etc usr …", "├── proc  dev  sys", "└── .oldroot  (empty)"]):
        body.append(line(34, 128 + i * 17, text))
    body.append(_text(125, 242, "every host mount is still here", size=11, italic=True))
    # 2: the new root on top, the old root hanging below it
    body.append(_box(258, 34, 234, 214, new, rx=6))
    for i, text in enumerate(["/           the new root", "├── bin etc usr …", "├── proc  dev  sys", "└── .oldroot"]):
        body.append(line(266, 54 + i * 17, text))
    body.append(_box(276, 126, 208, 96, old, rx=6))
    for i, text in enumerate(["the host's old root", "├── proc dev sys …", "└── run/minictr/…"]):
        body.append(line(284, 146 + i * 17, text))
    body.append(_text(375, 242, "the old root: reachable, still mounted", size=11, italic=True))
    # 3: only the new root is left
    body.append(_box(508, 34, 224, 110, new, rx=6))
    for i, text in enumerate(["/           the new root", "├── bin etc usr …", "└── proc  dev  sys"]):
        body.append(line(516, 54 + i * 17, text))
    body.append(_box(526, 160, 188, 62, "#fff", stroke=gone, dashed=True, rx=6))
    body.append(line(534, 184, "the host's root:", gone))
    body.append(line(534, 202, "not in this namespace", gone))
    body.append(_text(620, 242, "nothing above / to climb to", size=11, italic=True))
    for x in (244, 494):
        body.append(f'<line x1="{x}" y1="140" x2="{x + 12}" y2="140" stroke="#444" stroke-width="1.5" '
                    'marker-end="url(#pv)"/>')
    return _svg(740, 256, body)


__all__ += ["call_in", "check_new_uts", "check_pivot_into", "judge_new_uts", "judge_pivot_into", "kill_container",
            "mount_points", "propagation", "svg_pivot_root", "wait_for_descendant"]
