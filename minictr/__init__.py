"""minictr: a small, real container runtime, built one kernel feature at a time.

The package reads as the curriculum: :mod:`minictr.kernel.linux` (the system calls),
:mod:`minictr.runtime.process` (how a container process is spawned), :mod:`minictr.runtime.chroot`,
:mod:`minictr.engine.images` (an OCI image store), :mod:`minictr.doctor` (what this
host allows) and :mod:`minictr.cli`.

Importing ``minictr`` is cheap on purpose: the container start path runs
``python -m minictr.runtime.process.child``, which imports this file first, so the
public names below are loaded lazily, on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds on every container start; only checkers need it
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "ContainerError": "minictr.errors",
    "ExecError": "minictr.errors",
    "HostError": "minictr.errors",
    "ImageError": "minictr.errors",
    "ImageNotFound": "minictr.errors",
    "MinictrError": "minictr.errors",
    "RegistryError": "minictr.errors",
    "Result": "minictr.runtime.chroot",
    "SpecError": "minictr.errors",
    "StateTransitionError": "minictr.errors",
    "SyscallError": "minictr.errors",
    "UsageError": "minictr.errors",
    "chroot": "minictr.runtime.chroot",
    "containers": "minictr.containers",
    "doctor": "minictr.doctor",
    "images": "minictr.engine.images",
    "linux": "minictr.kernel.linux",
    "process": "minictr.runtime.process",
    "system": "minictr.engine.system",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'minictr' has no attribute {name!r}")
    import sys  # not importlib: its import brings warnings, ms of every container's first process

    __import__(module_name)
    module = sys.modules[module_name]
    value = module if module_name.rpartition(".")[2] == name else getattr(module, name)  # a module by its name
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
