"""One verb, several names: Docker's rule for ``rm``, ``rmi``, ``stop``, ``kill``, ``volume rm``, ``network rm``.

Each name is tried in turn, whatever became of the ones before: a missing
container does not spare the others. Every failure is one line on stderr,
and the command exits 1 if any name failed (125 stays for a failure of the
command as a whole, before any name was tried).
"""

from __future__ import annotations

import sys
import traceback

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

from minictr.errors import MinictrError

#: The exit status when some of the names failed (Docker's).
SOME_FAILED = 1


def each(names: Iterable[str], action: Callable[[str], object], debug: bool = False) -> int:
    """Apply ``action`` to every name; print each result that is not None; 1 if any failed, else 0.

    ``debug`` (``minictr --debug``) prints each failure's traceback too.
    """
    failed = 0
    for name in names:
        try:
            result = action(name)
        except (MinictrError, OSError) as exc:  # OSError: a host problem with this one name
            if debug:
                traceback.print_exc()
            print(f"minictr: error: {exc}", file=sys.stderr)
            failed = SOME_FAILED
            continue
        if result is not None:
            print(result)
    return failed
