"""The files COPY and ADD read: the build context, ``.dockerignore``, globs, and what they add to a layer.

A source is a path in the *build context* (the directory given to
``minictr build``), never outside it: ``..`` and symlinks that lead out are
refused. ``.dockerignore`` in the context's root removes files from what
COPY sees, with Docker's pattern rules (``*``, ``?``, ``**`` for any number
of directories, ``!`` to bring a file back; the last matching line wins; a
pattern that matches a directory matches everything in it).

:func:`digest_sources` hashes exactly what a COPY would read (names, modes,
link targets and contents): the layer cache's key, so that a change in one
copied file reruns the build from that step on, and nothing else does.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One thing a COPY reads: ``path`` on this host, shown to the user as ``name``."""

    path: str
    name: str


class Ignore:
    """The patterns of a ``.dockerignore`` (an empty one ignores nothing)."""

    def __init__(self, lines: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if keep else line).lstrip("/")
            self.rules.append((keep, re.compile(_pattern_regex(pattern))))

    @classmethod
    def of(cls, context: str) -> Ignore:
        """The rules of ``context/.dockerignore`` (none when it does not exist)."""
        try:
            with open(os.path.join(context, ".dockerignore")) as handle:
                return cls(handle.read().splitlines())
        except FileNotFoundError:
            return cls([])

    def ignored(self, relative: str) -> bool:
        """True when ``relative`` (a path in the context) is excluded; the last matching rule decides."""
        result = False
        for keep, regex in self.rules:
            if regex.match(relative):
                result = not keep
        return result


def _pattern_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression matching the path or anything below it."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 3 if pattern.startswith("**/", i) else 2
            continue
        out.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        i += 1
    return "^" + "".join(out) + "(/.*)?$"


def inside(base: str, path: str) -> bool:
    """True when ``path`` is ``base`` or below it."""
    return path == base or path.startswith(base.rstrip("/") + "/")


def resolve_sources(
    context: str, patterns: list[str], ignore: Ignore, fail: Callable[[str], Exception]
) -> list[Source]:
    """The context's files named by ``patterns`` (globs allowed), ignored ones left out.

    ``fail(message)`` makes the error to raise (it names the Dockerfile's line).
    """
    root = os.path.realpath(context)
    found: list[Source] = []
    for pattern in patterns:
        relative = os.path.normpath(pattern.lstrip("/"))
        if relative == ".." or relative.startswith("../"):
            raise fail(f"{pattern} is outside the build context")
        matches = (
            sorted(glob.glob(os.path.join(glob.escape(root), relative)))
            if glob.has_magic(relative)
            else [os.path.join(root, relative)]
        )
        matches = [
            m for m in matches if os.path.lexists(m) and (m == root or not ignore.ignored(os.path.relpath(m, root)))
        ]
        if not matches:
            raise fail(f"{pattern}: no such file or directory in the build context")
        for match in matches:
            real = os.path.realpath(match)
            if not inside(root, real):
                raise fail(f"{pattern} is outside the build context (through a symlink)")
            found.append(Source(real, os.path.relpath(match, root)))
    return found


def walk(source: str) -> Iterator[tuple[str, str]]:
    """``(relative, path)`` for ``source`` and, for a directory, everything in it, sorted, directories first."""
    yield "", source
    if os.path.isdir(source) and not os.path.islink(source):
        for directory, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(dirs + files):
                path = os.path.join(directory, name)
                yield os.path.relpath(path, source), path


def digest_sources(sources: list[Source], keep: Callable[[str], bool] = lambda _path: True) -> str:
    """sha256 over the names, types, modes, link targets and contents of everything ``sources`` hold."""
    hasher = hashlib.sha256()
    for source in sources:
        hasher.update(f"source {source.name}\0".encode())
        for relative, path in walk(source.path):
            if not keep(path):
                continue
            info = os.lstat(path)
            hasher.update(
                f"{relative}\0{stat.S_IFMT(info.st_mode)}\0{info.st_mode & 0o7777}\0"
                f"{info.st_uid}:{info.st_gid}\0".encode()
            )
            if stat.S_ISLNK(info.st_mode):
                hasher.update(os.readlink(path).encode())
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        hasher.update(chunk)
            hasher.update(b"\0")
    return "sha256:" + hasher.hexdigest()


@dataclass
class Placement:
    """How copied files are owned and moded in the layer (COPY's --chown and --chmod)."""

    uid: int | None = None  #: None keeps the source's owner (COPY --from); the context's files get 0
    gid: int | None = None
    mode: int | None = None


def copy_into(source: str, target: str, placement: Placement, keep: Callable[[str], bool] = lambda _path: True) -> None:
    """Copy ``source`` (a file, symlink or directory's contents) to ``target``, keeping hard links together."""
    links: dict[tuple[int, int], str] = {}
    for relative, path in walk(source):
        if not keep(path):
            continue
        dest = os.path.join(target, relative) if relative else target
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            os.makedirs(dest, exist_ok=True)
        elif stat.S_ISLNK(info.st_mode):
            os.makedirs(os.path.dirname(dest), exist_ok=True)  # its directory may be ignored, the link brought back
            _replace(dest)
            os.symlink(os.readlink(path), dest)
        elif stat.S_ISREG(info.st_mode):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            _replace(dest)
            first = links.get((info.st_dev, info.st_ino)) if info.st_nlink > 1 else None
            if first:
                os.link(first, dest)
                continue
            shutil.copyfile(path, dest, follow_symlinks=False)
            links[(info.st_dev, info.st_ino)] = dest
        else:
            continue  # sockets, fifos, devices: not something COPY carries from a context
        _apply(dest, info, placement)
    for relative, path in reversed(list(walk(source))):  # directory times last: filling them changed them
        dest = os.path.join(target, relative) if relative else target
        if os.path.isdir(dest) and not os.path.islink(dest) and keep(path):
            info = os.lstat(path)
            os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))


def _replace(dest: str) -> None:
    if os.path.lexists(dest) and not os.path.isdir(dest):
        os.unlink(dest)


def _apply(dest: str, info: os.stat_result, placement: Placement) -> None:
    uid = info.st_uid if placement.uid is None else placement.uid
    gid = info.st_gid if placement.gid is None else placement.gid
    os.lchown(dest, uid, gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(dest, placement.mode if placement.mode is not None else info.st_mode & 0o7777)
        os.utime(dest, ns=(info.st_atime_ns, info.st_mtime_ns))


def resolve_in_layers(lowers: list[str], path: str, follow: bool = False, hops: int = 40) -> str:
    """``path`` with the symlinks of its directories resolved as the image's layers show them.

    ``COPY x /bin/`` into an image whose ``/bin`` is a symlink to ``usr/bin``
    must write ``usr/bin/x``, not replace the link with a directory. With
    ``follow`` the last component is resolved too.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    done: list[str] = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = done[:-1]
            continue
        candidate = "/".join([*done, part])
        link = _top_link(lowers, candidate) if parts or follow else None
        if link is None:
            done.append(part)
            continue
        hops -= 1
        if hops < 0:
            break
        parts = [p for p in link.split("/") if p and p != "."] + parts
        if link.startswith("/"):
            done = []
    return "/" + "/".join(done)


def _top_link(lowers: list[str], relative: str) -> str | None:
    """The symlink target of ``relative`` in the topmost layer that has it, or None if that is not a link."""
    for layer in reversed(lowers):
        path = os.path.join(layer, relative)
        if os.path.lexists(path):
            return os.readlink(path) if os.path.islink(path) else None
    return None


def is_directory_in(lowers: list[str], relative: str) -> bool:
    """True when the topmost layer holding ``relative`` holds a directory there."""
    for layer in reversed(lowers):
        path = os.path.join(layer, relative.strip("/"))
        if os.path.lexists(path):
            return os.path.isdir(path) and not os.path.islink(path)
    return False
