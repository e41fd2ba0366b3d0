"""The container's program: exec'd in place of the child (``PATH`` searched as the
container sees it, ``HOME`` from its /etc/passwd), or a Python function called in
the container for the notebooks (:func:`call_function`).
"""

from __future__ import annotations

import errno
import os
import warnings  # noqa: F401  os.execvpe imports it (get_exec_path) when the root has changed: load it now

TYPE_CHECKING = False  # the child imports only what it uses: typing is for checkers
if TYPE_CHECKING:
    import signal
    from typing import Any
else:  # signal's own functions, without the enums its wrapper builds (ms of every start); checkers read signal
    import _signal as signal

from minictr.runtime.process.setup import StepFailed, innermost_line


def exec_program(spec: dict[str, Any]) -> None:
    """Replace this interpreter with the container's program (searching the container's PATH)."""
    process = spec.get("process", {})
    args = process.get("args") or []
    env = dict(item.split("=", 1) for item in process.get("env", []) if "=" in item)
    if not args:
        raise StepFailed("exec", "no command given: the image has no Cmd or Entrypoint", errno.EINVAL)
    if "HOME" not in env:  # as runc: the user's home in the container's /etc/passwd, else /
        env["HOME"] = home_of(os.getuid())
    if process.get("user", {}).get("umask") is not None:
        os.umask(process["user"]["umask"])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # Python ignores SIGPIPE; programs expect the default
    try:
        if "/" in args[0]:
            os.execve(args[0], args, env)
        os.execvpe(args[0], args, env)
    except FileNotFoundError as exc:
        what = "no such file or directory" if "/" in args[0] else "executable file not found in $PATH"
        raise StepFailed("exec", f'exec: "{args[0]}": {what}', exc.errno) from exc
    except OSError as exc:
        raise StepFailed("exec", f'exec: "{args[0]}": {(exc.strerror or str(exc)).lower()}', exc.errno) from exc


def home_of(uid: int) -> str:
    """The home directory of ``uid`` in this root's /etc/passwd; ``/`` without one."""
    try:
        with open("/etc/passwd") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def call_function(call: dict[str, Any]) -> Any:
    """Run a Python function, sent as source, inside the container; return its value.

    Only what is already imported works after the root changed: ``os`` and the
    built-ins are there, new imports are not.
    """
    namespace: dict[str, Any] = {"__name__": "__minictr_call__", "os": os}
    try:
        exec(compile(call["source"], f"<{call['name']}>", "exec"), namespace)  # the caller's own code
        return namespace[call["name"]](*call.get("args", []))
    except Exception as exc:
        line = innermost_line(exc, f"<{call['name']}>")
        raise StepFailed(
            "call", f"{call['name']}(){line} raised {type(exc).__name__}: {exc}", getattr(exc, "errno", None)
        ) from exc
