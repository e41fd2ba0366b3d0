"""Waiting for a condition the kernel gives no event for: one polling loop with a deadline.

A container's process gone, its monitor done, a file written by another
process: minictr (and its tests) wait for such things by asking again every
few milliseconds until a deadline, never by sleeping a fixed time. Only the
standard library: the engine's stop and rm paths use it.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout: float = 10, interval: float = 0.02) -> bool:
    """Call ``predicate`` every ``interval`` s until it is true (True) or ``timeout`` s pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
