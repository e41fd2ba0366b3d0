"""The reference solutions of every exercise, gathered from the notebooks' modules
(``tutorial.solution("enter_root")``).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from typing import Any

from minictr.tutorial import (
    ex_chroot,
    images,
    limits,
    microservices,
    mounts,
    network,
    pid,
    security,
    step_exercises,
    users,
    uts_ipc,
    vms,
    welcome,
)

_SOLUTIONS: dict[str, str] = {
    **welcome.SOLUTIONS,
    **ex_chroot.SOLUTIONS,
    **mounts.SOLUTIONS,
    **uts_ipc.SOLUTIONS,
    **pid.SOLUTIONS,
    **users.SOLUTIONS,
    **network.SOLUTIONS,
    **limits.SOLUTIONS,
    **images.SOLUTIONS,
    **security.SOLUTIONS,
    **step_exercises.SOLUTIONS,
    **vms.SOLUTIONS,
    **microservices.SOLUTIONS,
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
    import linecache

    source = textwrap.dedent(_SOLUTIONS[name])
    filename = f"<solution {name}>"
    namespace: dict[str, Any] = {"os": os}
    exec(compile(source, filename, "exec"), namespace)  # our own code
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # for inspect.getsource
    function: Callable[..., Any] = namespace[name]
    return function
