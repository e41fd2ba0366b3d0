"""seccomp: a filter the kernel runs on every system call, built with libseccomp through ctypes.

An OCI ``linux.seccomp`` section (``defaultAction``, ``architectures``,
``syscalls`` with names, actions, ``errnoRet`` and argument conditions,
``flags``) becomes a libseccomp filter context, which compiles it to a
classic BPF program and loads it with seccomp(2).

Why libseccomp rather than BPF assembled by hand: it is what runc and crun
use; it knows every architecture's syscall numbers (a name such as
``chown32`` exists on x86 but not on x86_64), adds the architecture checks
that stop a 32-bit ``int 0x80`` call from slipping past a filter written for
x86_64 numbers, and orders the comparisons of 64-bit arguments correctly.
It is one small C library, ``libseccomp.so.2`` (Debian's ``libseccomp2``,
present wherever systemd is); ctypes reaches it without a Python package.

Once loaded a filter cannot be removed, only added to, and it is inherited
across fork and execve: loading it is the last thing the child does.

Compiling Docker's profile takes libseccomp some 25 ms, so the parent does
it once per distinct profile (:func:`program`, cached by a hash of the
section under the state root) and sends the container's first process the
finished BPF program, which it installs with seccomp(2) (:func:`install`).
"""

from __future__ import annotations

import ctypes
import errno
import os

from minictr.errors import MinictrError, UsageError
from minictr.kernel import linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000

#: OCI action names -> (libseccomp action, takes an errno/trace value)
ACTIONS = {
    "SCMP_ACT_KILL": (ACT_KILL_THREAD, False), "SCMP_ACT_KILL_THREAD": (ACT_KILL_THREAD, False),
    "SCMP_ACT_KILL_PROCESS": (ACT_KILL_PROCESS, False), "SCMP_ACT_TRAP": (ACT_TRAP, False),
    "SCMP_ACT_ERRNO": (ACT_ERRNO, True), "SCMP_ACT_TRACE": (ACT_TRACE, True), "SCMP_ACT_LOG": (ACT_LOG, False),
    "SCMP_ACT_ALLOW": (ACT_ALLOW, False),
}  # fmt: skip

#: OCI operators -> enum scmp_compare
OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}  # fmt: skip

#: enum scmp_filter_attr
_ATTR_ACT_BADARCH = 2
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7

#: OCI flags -> seccomp(2)'s SECCOMP_FILTER_FLAG_* bits
KERNEL_FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": 1, "SECCOMP_FILTER_FLAG_LOG": 2, "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4}

#: OCI flags -> the libseccomp attribute that sets them
FLAGS = {"SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC, "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
         "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB}  # fmt: skip

_NR_SCMP_ERROR = -1


class SeccompError(MinictrError):
    """libseccomp refused a profile or the kernel refused the filter."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """libseccomp.so.2, loaded once (SeccompError with the package to install when missing)."""
    global _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError as exc:
            raise SeccompError(
                "libseccomp.so.2 not found: install libseccomp2 (or run with --security-opt seccomp=unconfined)"
            ) from exc
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_export_pfc.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


def action(name: str, value: int | None = None, default_errno: int = errno.EPERM) -> int:
    """An OCI action name (and its errnoRet) -> libseccomp's action word."""
    if name not in ACTIONS:
        raise UsageError(f"seccomp: unknown action {name!r}")
    word, takes_value = ACTIONS[name]
    if takes_value:
        return word | ((default_errno if value is None else value) & 0xFFFF)
    return word


def resolve(name: str) -> int:
    """A syscall name -> its number on this machine (negative pseudo-number when only other architectures have it)."""
    number: int = library().seccomp_syscall_resolve_name(name.encode())
    if number == _NR_SCMP_ERROR:
        raise UsageError(f"seccomp: unknown system call {name!r}")
    return number


class Filter:
    """A libseccomp filter context built from an OCI ``linux.seccomp`` section."""

    def __init__(self, config: dict[str, Any]) -> None:
        lib = library()
        self.default = action(config.get("defaultAction", "SCMP_ACT_ALLOW"), config.get("defaultErrnoRet"))
        self.default_errno = config.get("defaultErrnoRet") or errno.EPERM
        self.ctx = lib.seccomp_init(self.default)
        if not self.ctx:
            raise SeccompError(f"seccomp_init({config.get('defaultAction')}) failed")
        self._call("seccomp_attr_set", _ATTR_CTL_NNP, 0)  # no_new_privs is the spec's business, not libseccomp's
        for arch in config.get("architectures") or []:
            self._add_arch(arch)
        for flag in config.get("flags") or []:
            if flag not in FLAGS:
                raise UsageError(f"seccomp: unknown flag {flag!r}")
            self._call("seccomp_attr_set", FLAGS[flag], 1)
        for rule in config.get("syscalls") or []:
            self._add_rule(rule)

    def _call(self, function: str, *args: Any) -> None:
        result = getattr(library(), function)(self.ctx, *args)
        if result < 0:
            raise SeccompError(f"{function}{args}: {os.strerror(-result)}")

    def _add_arch(self, name: str) -> None:
        short = name.removeprefix("SCMP_ARCH_").lower()
        token = library().seccomp_arch_resolve_name(short.encode())
        if token == 0:
            raise UsageError(f"seccomp: unknown architecture {name!r}")
        result = library().seccomp_arch_add(self.ctx, token)
        if result < 0 and -result != errno.EEXIST:  # the native one is there already
            raise SeccompError(f"seccomp_arch_add({name}): {os.strerror(-result)}")

    def _add_rule(self, rule: dict[str, Any]) -> None:
        word = action(rule["action"], rule.get("errnoRet"), self.default_errno)
        if word == self.default:
            return  # libseccomp refuses a rule that repeats the default; it would change nothing
        args = rule.get("args") or []
        indexes = [a["index"] for a in args]
        # As runc does: conditions on distinct arguments must all hold (one rule); several on the
        # same argument are alternatives (one rule each).
        groups = [args] if len(set(indexes)) == len(indexes) else [[a] for a in args]
        for name in rule.get("names") or ([rule["name"]] if rule.get("name") else []):
            number = resolve(name)
            for group in groups:
                array = (_ArgCmp * max(len(group), 1))()
                for i, arg in enumerate(group):
                    if arg.get("op") not in OPERATORS:
                        raise UsageError(f"seccomp: {name}: unknown operator {arg.get('op')!r}")
                    array[i] = _ArgCmp(arg["index"], OPERATORS[arg["op"]], arg.get("value", 0), arg.get("valueTwo", 0))
                result = library().seccomp_rule_add_array(self.ctx, word, number, len(group), array)
                if result < 0:
                    raise SeccompError(f"seccomp: rule for {name}: {os.strerror(-result)}")

    def load(self) -> None:
        """Install the filter on this process (for good: inherited by every child and across execve)."""
        self._call("seccomp_load")

    def export(self, kind: str = "pfc") -> bytes:
        """The compiled filter: ``"pfc"`` (readable pseudo-code) or ``"bpf"`` (the raw program the kernel runs)."""
        fd = os.memfd_create("seccomp-export", os.MFD_CLOEXEC)  # a pipe could fill up and block
        try:
            self._call(f"seccomp_export_{kind}", fd)
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Free the context (a loaded filter stays loaded)."""
        if self.ctx:
            library().seccomp_release(self.ctx)
            self.ctx = None


def load(config: dict[str, Any]) -> None:
    """Build the filter for an OCI ``linux.seccomp`` section and load it on this process."""
    flt = Filter(config)
    try:
        flt.load()
    finally:
        flt.close()


def program(config: dict[str, Any], cache: str | None = None) -> bytes:
    """The BPF program for an OCI ``linux.seccomp`` section; compiled once per distinct section in ``cache``."""
    import json

    from minictr.hashing import sha256_hex  # not hashlib: see there

    key = sha256_hex(json.dumps([config, os.uname().machine], sort_keys=True).encode())
    path = os.path.join(cache, f"{key}.bpf") if cache else ""
    if path:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            pass
    flt = Filter(config)
    try:
        compiled = flt.export("bpf")
    finally:
        flt.close()
    if cache and path:
        try:
            os.makedirs(cache, mode=0o700, exist_ok=True)
            temporary = f"{path}.{os.getpid()}"
            with open(temporary, "wb") as f:
                f.write(compiled)
            os.replace(temporary, path)  # whole or absent: another start may read it meanwhile
        except OSError:
            pass  # a read-only state root: compile again next time
    return compiled


def install(compiled: bytes, flags: list[str] | None = None) -> None:
    """Load a compiled program on this process (the child's last step); ``flags`` as in the OCI section."""
    bits = 0
    for flag in flags or []:
        bits |= KERNEL_FLAGS.get(flag, 0)
    linux.seccomp_set_filter(compiled, bits)


def mode(pid: int | str = "self") -> tuple[int, int]:
    """(Seccomp, Seccomp_filters) of a process from /proc/<pid>/status: mode 2 means filtered."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Seccomp", "Seccomp_filters"):
                values[key] = int(value)
    return values.get("Seccomp", 0), values.get("Seccomp_filters", 0)
