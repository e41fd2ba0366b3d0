"""The runtime grows with the notebooks: the recipe's steps taught so far, pictured, and the learner's own steps.

Each notebook runs its containers with the steps taught up to it
(``RunOptions(steps=tutorial.taught("03"))``, or ``minictr run --steps``).
:func:`run_with` runs a container whose steps are carried out by the
learner's exercise functions (``enter_root``, ``pivot_into``, ``new_uts``)
instead of the runtime's code; :func:`judge_own_steps` compares such a
container with one the runtime makes by itself.

How a function reaches the container: the container's first process is a
fresh interpreter (running ``minictr.runtime.process.child``), so a function
object cannot be handed over. Its *source* is: ``inspect.getsource`` reads
it (IPython keeps every cell's source, so notebook functions work), it
travels in the config, and the child defines and calls it at its step. A
reference to ``module:qualname`` would work only for functions in files
the child can import — never for the one a learner just typed in a cell.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from minictr.runtime.process import recipe
from minictr.tutorial.checking import Verdict, source_of
from minictr.tutorial.pictures import _mono, _svg, _text

if TYPE_CHECKING:
    from minictr.engine.container import Finished


def taught(notebook: str) -> list[str]:
    """The steps taught up to and including ``notebook`` ("01" … "09"): what its demonstrations use."""
    return [step for step in recipe.STEPS if recipe.NOTEBOOK[step] <= notebook]


def own_steps(functions: Any) -> dict[str, dict[str, str]]:
    """``RunOptions.own_steps`` for the learner's functions: a list (named as the exercises) or a dict by step name."""
    named = functions if isinstance(functions, dict) else {function.__name__: function for function in functions}
    return {step: {"name": function.__name__, "source": source_of(function)} for step, function in named.items()}


def run_with(
    functions: Any, command: list[str], *, steps: list[str] | None = None, image: str = "busybox", **options: Any
) -> Finished:
    """Run ``command`` in a container whose steps ``functions`` (the learner's) carry out; return what it printed.

    ``functions`` are exercise functions such as ``[pivot_into, new_uts]``
    (or ``{"pivot_into": my_pivot}``); ``steps`` the recipe's steps (default:
    all); other keywords are :class:`~minictr.engine.run_options.RunOptions` fields.
    The functions run in the container's first process, at their step; what
    one raises comes back as :class:`~minictr.errors.ContainerError` naming it.
    """
    from minictr.engine.container import run
    from minictr.engine.run_options import RunOptions

    return run(image, command, RunOptions(steps=steps, own_steps=own_steps(functions), **options), capture=True)


# --- the check: the learner's container against the runtime's ----------------------------------------

#: What the probe prints, one "key: value" line each: enough to tell two containers' views apart.
PROBE = (
    'echo "root: $(ls -a / | grep -v "^\\.\\.\\?$" | tr "\\n" " ")"; echo "cwd: $(pwd)"; '
    'echo "hostname: $(hostname)"; echo "domainname: $(cat /proc/sys/kernel/domainname)"; '
    'for ns in mnt uts ipc pid net user cgroup; do echo "ns $ns: $(readlink /proc/self/ns/$ns)"; done; '
    'echo "mounts: $(cut -d" " -f5 /proc/self/mountinfo | tr "\\n" " ")"; '
    'echo "PID 1: $(cat /proc/1/comm)"; echo "uid_map: $(tr -s " " < /proc/self/uid_map)"; '
    'echo "bounding set: $(sed -n "s/^CapBnd:\\s*//p" /proc/self/status)"'
)


def probe(functions: Any, steps: list[str], **options: Any) -> dict[str, str]:
    """What a container of ``steps`` sees (root, cwd, names, namespaces, mounts, PID 1, uid map, bounding set),
    built with ``functions`` (or none); ``options`` are more RunOptions."""
    if "uts" in steps:
        options.update(hostname="steps", domainname="example.org")
    done = run_with(
        functions, ["sh", "-c", PROBE], steps=steps, network="none" if "network" in steps else None, **options
    )
    if done.exit_code:
        raise RuntimeError(f"the probe failed (exit status {done.exit_code}): {done.stderr.decode(errors='replace')}")
    seen = dict(line.split(": ", 1) for line in done.stdout.decode().splitlines() if ": " in line)
    with open("/proc/sys/kernel/domainname") as handle:
        host = {"hostname": os.uname().nodename, "domainname": handle.read().strip()}
    for key, value in host.items():
        if seen.get(key) == value:
            seen[key] = "the host's"  # the same on every host, unlike the name itself
    for key in [key for key in seen if key.startswith("ns ")]:
        hosts_namespace = os.readlink(f"/proc/self/ns/{key[3:]}")
        seen[key] = "the host's" if seen[key] == hosts_namespace else "its own"
    if "mount" not in steps:
        seen["mounts"] = "(the host's table, copied)"  # without the mount step the container sees the host's mounts
    return seen


def judge_own_steps(functions: Any, steps: list[str]) -> Verdict:
    """Run the same probe in a container built with the learner's ``functions`` and in one of the runtime's own.

    ✔ when both see the same: the same root, working directory, hostname,
    domain name, namespaces, mount table, PID 1, uid map and bounding set.
    With the learner's ``init`` both run with ``--init``, with ``new_user`` with ``--userns private``.
    Otherwise the table says where they differ.
    """
    from minictr.errors import MinictrError

    own = set(own_steps(functions))  # by the step they stand for, which a dict's keys name
    options = {"init": "init" in own, "userns": "private" if "new_user" in own else "host"}  # where they run
    try:
        mine = probe(functions, steps, **options)
    except (MinictrError, RuntimeError) as exc:
        return Verdict(False, f"✘ the container built with your steps did not run: {exc}")
    theirs = probe([], steps, **options)
    rows = [f"{'':13}{'the runtime':34} your steps"]
    differ = []
    for key in theirs:
        same = mine.get(key) == theirs[key]
        if not same:
            differ.append(key)
        shown = "same" if same else _mounts_apart(mine[key], theirs[key]) if key == "mounts" else mine.get(key, "")
        rows.append(f"{key:13}{_cut(theirs[key]):34} {_cut(shown or '(nothing)')}")
    table = "\n".join(rows)
    if differ:
        return Verdict(False, table + f"\n✘ your container differs from the runtime's in: {', '.join(differ)}.")
    names = ", ".join(f"{f.__name__}()" for f in (functions.values() if isinstance(functions, dict) else functions))
    return Verdict(True, table + f"\n✔ the same container: {names} did the runtime's work.")


def check_own_steps(functions: Any, steps: list[str]) -> None:
    """Print the comparison of :func:`judge_own_steps`."""
    judge_own_steps(functions, steps).show()


def _mounts_apart(mine: str, theirs: str) -> str:
    """How the learner's mount table differs: the topmost extra mount points (not the host's paths below them)."""
    extra = [point for point in mine.split() if point not in theirs.split()]
    top = [point for point in extra if not any(point.startswith(other.rstrip("/") + "/") for other in extra)]
    missing = [point for point in theirs.split() if point not in mine.split()]
    said = [f"+{point} ({sum(p.startswith(point + '/') for p in extra)} below)" for point in top]
    return " ".join(said + [f"-{point}" for point in missing])


def _cut(text: str, width: int = 32) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- the picture ------------------------------------------------------------------------------------

TAUGHT, NEW, MINE, LATER = "#a8dadc", "#2a9d8f", "#f4a261", "#ffffff"


def svg_recipe(steps: list[str], new: tuple[str, ...] = (), own: tuple[str, ...] = ()) -> str:
    """The recipe's nine steps: those in ``steps`` filled (``new`` ones darker), the child's functions below each.

    ``own`` names the learner's functions that carry out a step (drawn in orange).
    """
    chosen = recipe.choose(steps)
    mine = {recipe.OWN_STEPS[name][0]: name for name in own}
    width, box = 104, 96
    title = f"the recipe: {len(chosen)} of {len(recipe.STEPS)} steps"
    body = [_text(10, 18, title, size=13, anchor="start", bold=True)]
    for index, step in enumerate(recipe.STEPS):
        x = 10 + index * width
        on = step in chosen
        fill = MINE if step in mine else NEW if step in new else TAUGHT if on else LATER
        colour = "#fff" if fill == NEW else "#222" if on else "#999"
        dash = "" if on else ' stroke-dasharray="5,3"'
        body.append(
            f'<rect x="{x}" y="28" width="{box}" height="40" rx="4" fill="{fill}" '
            f'stroke="{"#444" if on else "#bbb"}"{dash}/>'
        )
        body.append(_text(x + box / 2, 45, step, size=13, bold=True, fill=colour))
        body.append(_text(x + box / 2, 61, f"notebook {recipe.NOTEBOOK[step]}", size=10, fill=colour))
        if not on:
            continue
        for row, name in enumerate(recipe.doers(step, own) or ["(unshare)"]):
            body.append(
                _mono(x + 2, 82 + row * 11, name[:20], size=8, fill="#c0392b" if name.startswith("your ") else "#333")
            )
    body.append(
        _text(
            10,
            178,
            "Every container also runs the plumbing: spawn, unshare_namespaces (one unshare for the "
            "namespaces above), rlimits, the terminal, exec.",
            size=10,
            anchor="start",
            italic=True,
        )
    )
    return _svg(10 + len(recipe.STEPS) * width, 188, body)


def show_recipe(steps: list[str], new: tuple[str, ...] = (), own: tuple[str, ...] = ()) -> Any:
    """The picture of :func:`svg_recipe`, displayed, and the same as text (for a page without pictures)."""
    from minictr.tutorial.common import picture

    print(recipe.table(steps, own))
    return picture(svg_recipe(steps, new, own))
