"""How much disk an image may take: expansion limits for layers, and a free-space reserve.

A layer is untrusted input, and compression hides its size: a file of
zeros compresses about 1000 times, so a 2 MB gzip layer can write 2 GiB.
While a layer is read, :class:`Budget` counts its *uncompressed* bytes (the
tar stream, which bounds what extraction writes) and stops it with an
:class:`~minictr.errors.ImageError` when it expands past

- ``MINICTR_LAYER_MAX_RATIO`` times its compressed size (default 100), but
  never less than ``MINICTR_LAYER_RATIO_FLOOR`` (default 64m), so that small
  layers of very compressible files are fine;
- ``MINICTR_LAYER_MAX_SIZE`` whatever the ratio (default 16g);
- or when the filesystem it is written to would keep less than
  ``MINICTR_DISK_RESERVE`` free (default 512m; checked with statvfs before
  writing and every :data:`RESERVE_CHECK_EVERY` bytes after).

Sizes take Docker's units (``512m``, ``16g``); ``0`` turns a limit off. The
caller removes what it had written (a layer is unpacked into a temporary
directory renamed into place only when complete).
"""

from __future__ import annotations

import os

from minictr.errors import ImageError, UsageError

#: (environment variable, default) of each setting; sizes in Docker's units.
MAX_RATIO = ("MINICTR_LAYER_MAX_RATIO", "100")
RATIO_FLOOR = ("MINICTR_LAYER_RATIO_FLOOR", "64m")
MAX_SIZE = ("MINICTR_LAYER_MAX_SIZE", "16g")
DISK_RESERVE = ("MINICTR_DISK_RESERVE", "512m")

#: How often (in uncompressed bytes) the free space is looked at again while a layer is unpacked.
RESERVE_CHECK_EVERY = 32 << 20


def setting(entry: tuple[str, str]) -> int:
    """A size setting from the environment (or its default), in bytes; a bad value is a :class:`UsageError`."""
    from minictr.kernel.cgroups.resources import parse_size

    name, default = entry
    return parse_size(os.environ.get(name, "").strip() or default, name)


def max_ratio() -> float:
    """``MINICTR_LAYER_MAX_RATIO``: how many times its compressed size a layer may expand (0: no limit)."""
    name, default = MAX_RATIO
    text = os.environ.get(name, "").strip() or default
    try:
        ratio = float(text)
    except ValueError:
        raise UsageError(f"{name} {text!r}: not a number") from None
    if ratio < 0:
        raise UsageError(f"{name} {text!r}: must not be negative")
    return ratio


def _human(size: int) -> str:
    """``1.5GiB``, ``1PiB``: binary units up to pebibytes (a reserve may be set that high to stop everything)."""
    for unit, shift in (("PiB", 50), ("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.3g}{unit}"
    return f"{size}B"


def check_reserve(path: str, more: int = 0) -> None:
    """Refuse to write ``more`` bytes under ``path`` if its filesystem would keep less than the reserve free."""
    reserve = setting(DISK_RESERVE)
    if not reserve:
        return
    info = os.statvfs(path)
    free = info.f_bavail * info.f_frsize
    if free - more < reserve:
        raise ImageError(
            f"not enough disk space: {_human(free)} free on the filesystem of {path}, and {DISK_RESERVE[0]} keeps "
            f"{_human(reserve)} "
            "free (make room with minictr image prune, or lower the reserve)"
        )


class Budget:
    """The uncompressed bytes one layer may still produce; :meth:`consume` raises once it is spent."""

    def __init__(self, what: str, compressed: int, dest: str | None) -> None:
        self.what, self.compressed, self.dest = what, compressed, dest
        self.used = 0
        self.limit, self.reason = self._limit(compressed)
        self._next_check = 0

    @staticmethod
    def _limit(compressed: int) -> tuple[int, str]:
        limits = []
        ratio = max_ratio()
        if ratio:
            floor = setting(RATIO_FLOOR)
            by_ratio = max(floor, int(compressed * ratio))
            limits.append(
                (
                    by_ratio,
                    f"{ratio:g} times its compressed size of {_human(compressed)}, or {_human(floor)} "
                    f"for small layers ({MAX_RATIO[0]}, {RATIO_FLOOR[0]})",
                )
            )
        cap = setting(MAX_SIZE)
        if cap:
            limits.append((cap, f"the limit of {_human(cap)} ({MAX_SIZE[0]})"))
        return min(limits) if limits else (0, "")

    def consume(self, size: int) -> None:
        """Count ``size`` more uncompressed bytes; an :class:`ImageError` past a limit or the reserve."""
        self.used += size
        if self.limit and self.used > self.limit:
            raise ImageError(
                f"layer {self.what} expands past {self.reason}: refused (a layer that could fill the disk)"
            )
        if self.dest is not None and self.used >= self._next_check:
            self._next_check = self.used + RESERVE_CHECK_EVERY
            check_reserve(self.dest)
