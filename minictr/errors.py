"""The one exception tree of minictr.

Every error minictr raises on purpose derives from :class:`MinictrError`, so a
caller (the CLI, a notebook, a test) can catch them all in one place and show a
single readable line::

    MinictrError
    ├── SyscallError (also an OSError)   a system call failed: errno, call, arguments
    ├── UsageError                       a wrong flag or argument from the user
    │   ├── SpecError                    an OCI runtime-spec config is invalid: every problem, by field
    │   ├── ComposeError                 a compose file is invalid (names the path in the file)
    │   └── StateTransitionError         a container's state forbids the move (start a stopped one)
    ├── ContainerError                   the container's set-up failed (message from the child)
    │   └── ExecError                    the container's program could not be executed
    ├── CgroupError                      a cgroup file refused a value: the path, the value, the flag
    ├── ImageError                       an image is malformed or cannot be built
    │   ├── ImageNotFound                no such image in the store
    │   ├── RegistryError                a registry refused or failed a request
    │   └── BuildError                   a Dockerfile cannot be built (names its line)
    └── HostError                        the host lacks something (a package, a kernel feature)

Errors from lower layers (``OSError`` from Python, ``json`` errors) are
translated at the boundary with ``raise ... from exc`` so the original stays
visible with ``--debug``.
"""

from __future__ import annotations

import errno as _errno
import os


class MinictrError(Exception):
    """Base class of every error minictr raises on purpose."""


class SyscallError(MinictrError, OSError):
    """A system call failed.

    It is an :class:`OSError` (``.errno`` and ``.strerror`` are set, and
    ``except FileNotFoundError`` style handlers do not apply because the
    subclass is fixed), and its message names the call and its arguments::

        mount('proc', '/x/proc', 'proc'): No such file or directory
    """

    def __init__(self, err: int, call: str, args: tuple[object, ...] = (), hint: str = "") -> None:
        self.call = call
        self.call_args = args
        self.hint = hint
        shown = ", ".join(repr(a) for a in args)
        text = f"{call}({shown}): {os.strerror(err)}"
        if hint:
            text += f" ({hint})"
        OSError.__init__(self, err, text)
        self.message = text

    def __str__(self) -> str:
        return self.message

    @property
    def errno_name(self) -> str:
        """The symbolic name of the error number, e.g. ``'ENOENT'``."""
        return _errno.errorcode.get(self.errno or 0, str(self.errno))


class UsageError(MinictrError):
    """The user asked for something that cannot be done as asked (a bad flag or value)."""


class SpecError(UsageError):
    """An OCI runtime-spec config is invalid; ``problems`` lists each as ``field.path: what is wrong``.

    The message holds them all on one line (the CLI prints one line)::

        invalid OCI runtime spec: linux.namespaces[2].type: unknown namespace "foo"; process.cwd: required
    """

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid OCI runtime spec: " + "; ".join(problems))
        self.problems = list(problems)


class ComposeError(UsageError):
    """A compose file is invalid, or a project cannot be brought up as it says.

    The message starts with the path in the file (``services.web.ports[0]: ...``)
    when the file is at fault.
    """


class StateTransitionError(UsageError):
    """A container cannot make this move from its state (``current``, ``wanted``: the state names)."""

    def __init__(self, message: str, current: str = "", wanted: str = "") -> None:
        super().__init__(message)
        self.current = current
        self.wanted = wanted


class ContainerError(MinictrError):
    """A container's set-up failed in the child process.

    ``step`` names the set-up step that failed (``'chroot'``, ``'mount-proc'``),
    ``errno`` is the child's errno when the failure was a system call.
    """

    def __init__(self, message: str, step: str = "", errno: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.errno = errno


class ExecError(ContainerError):
    """The container's program could not be executed (not found, not executable).

    Like Docker, the CLI exits 127 when the program was not found and 126 when
    it exists but cannot be run.
    """

    @property
    def exit_code(self) -> int:
        """The exit status a shell (and Docker) would give: 127 or 126."""
        return 127 if self.errno == _errno.ENOENT else 126


class CgroupError(MinictrError):
    """The kernel refused a cgroup operation: ``path``, ``value`` and ``errno`` say which.

    ``flag`` names the ``minictr run`` flag the value came from (``--memory``),
    when one did, so that the message leads back to what the user typed.
    """

    def __init__(
        self, message: str, *, path: str = "", value: str = "", errno: int | None = None, flag: str = ""
    ) -> None:
        super().__init__(message)
        self.path = path
        self.value = value
        self.errno = errno
        self.flag = flag


class ImageError(MinictrError):
    """An image is malformed, fails verification or cannot be built."""


class ImageNotFound(ImageError):
    """No image with this reference is in the store."""


class RegistryError(ImageError):
    """A registry answered with an error, or could not be reached.

    ``status`` is the HTTP status (0 when there was no answer), ``code`` the
    distribution spec's error code (``MANIFEST_UNKNOWN``, ``UNAUTHORIZED``…).
    """

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BuildError(ImageError):
    """A Dockerfile is malformed or one of its steps failed; the message names the file and line."""


class HostError(MinictrError):
    """The host lacks something minictr needs (a package, a kernel feature, privileges)."""
