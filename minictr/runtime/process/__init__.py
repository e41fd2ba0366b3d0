"""How a container process is born: a fresh interpreter, a socketpair, a short recipe.

:mod:`.channel` is the protocol (drawn in its docstring), :mod:`.parent` the
side that spawns, :mod:`.child` the container's first process. The child
imports this package too, so the parent's names are loaded only on use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ContainerProcess", "call", "spawn"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from minictr.runtime.process import parent

        return getattr(parent, name)
    raise AttributeError(f"module 'minictr.runtime.process' has no attribute {name!r}")
