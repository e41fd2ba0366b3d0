"""A file tree as a stream of entries, read and written by descriptor: no lookup ever follows a symlink.

:func:`walk` reads a tree below a directory descriptor, :func:`extract`
writes entries below another (each parent opened with ``O_NOFOLLOW``, each
file created with ``O_EXCL``), :func:`from_tar` and :func:`write_tar` turn a
tar stream into entries and back. ``minictr cp`` joins them; a container's
tree may hold any symlink, and none of them leads a copy out of it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat

TYPE_CHECKING = False  # typing is for checkers
if TYPE_CHECKING:
    import tarfile
    from collections.abc import Callable, Iterator
    from typing import IO

from minictr.errors import UsageError

O_PATH = getattr(os, "O_PATH", 0o10000000)


@dataclasses.dataclass
class Entry:
    """One file of a copy, by its name relative to the copy's top (``a/b``), with what a tar header holds."""

    name: str
    kind: str  #: file, dir, symlink, link (a hard link to ``target``), fifo, chr, blk
    mode: int
    uid: int
    gid: int
    mtime: float
    target: str = ""  #: a symlink's text, or the name of what a hard link links to
    rdev: int = 0
    reader: Callable[[], IO[bytes]] | None = None


_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
          stat.S_IFCHR: "chr", stat.S_IFBLK: "blk"}  # fmt: skip


def read_inside(root: str, path: str) -> bytes | None:
    """``path`` in the tree at ``root`` (a container's root), symlinks resolved inside it; None if missing."""
    from minictr.kernel.linux import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

    top = os.open(root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = openat2(top, path.lstrip("/"), os.O_RDONLY | os.O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    finally:
        os.close(top)
    with open(fd, "rb") as handle:
        return handle.read(1 << 22)


def lstat(top: int, name: str) -> os.stat_result:
    """The status of ``name`` in the directory ``top`` (``""``: of ``top`` itself), not following a symlink."""
    return os.fstat(top) if not name else os.stat(name, dir_fd=top, follow_symlinks=False)


def _reopen(top: int, name: str, flags: int) -> int:
    if not name:  # an O_PATH descriptor becomes a readable one through /proc (the same inode, no lookup)
        return os.open(f"/proc/self/fd/{top}", flags | os.O_CLOEXEC)
    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)


def walk(top: int, name: str, arcname: str) -> Iterator[Entry]:
    """Entries for ``name`` in the directory ``top`` and, for a directory, everything below it.

    Their names start with ``arcname``; an empty ``arcname`` gives a
    directory's contents without the directory itself.
    """
    info = lstat(top, name)
    kind = _KINDS.get(stat.S_IFMT(info.st_mode))
    if kind is None:
        return  # a socket: tar has no place for it
    mode = stat.S_IMODE(info.st_mode)
    entry = Entry(arcname, kind, mode, info.st_uid, info.st_gid, info.st_mtime, rdev=info.st_rdev)
    if kind == "symlink":
        entry.target = os.readlink(name, dir_fd=top)
    elif kind == "file":
        entry.reader = lambda: open(_reopen(top, name, os.O_RDONLY), "rb")  # noqa: SIM115 - the caller closes it
    if arcname:
        yield entry
    if kind != "dir":
        return
    fd = _reopen(top, name, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for child in sorted(os.listdir(fd)):
            yield from walk(fd, child, f"{arcname}/{child}" if arcname else child)
    finally:
        os.close(fd)


# --- tar -------------------------------------------------------------------------------------------


def from_tar(tar: tarfile.TarFile) -> Iterator[Entry]:
    """The entries of a tar stream (read once, in order)."""
    import tarfile

    types = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
             tarfile.LNKTYPE: "link", tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "chr",
             tarfile.BLKTYPE: "blk"}  # fmt: skip
    for member in tar:
        kind = types.get(member.type)
        if kind is None:
            continue
        entry = Entry(member.name.rstrip("/"), kind, member.mode & 0o7777, member.uid, member.gid, member.mtime,
                      member.linkname, os.makedev(member.devmajor, member.devminor))  # fmt: skip
        if kind == "file":
            entry.reader = _member_reader(tar, member)
        yield entry


def _member_reader(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def reader() -> IO[bytes]:
        data = tar.extractfile(member)
        assert data is not None  # a regular file's member always has data
        return data

    return reader


def write_tar(entries: Iterator[Entry], out: IO[bytes], owners: Callable[[int, int], tuple[int, int]]) -> None:
    """Write ``entries`` as a tar stream (POSIX format) to ``out``."""
    import tarfile

    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "fifo": tarfile.FIFOTYPE,
             "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE}  # fmt: skip
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.mtime, info.linkname = types[entry.kind], entry.mode, entry.mtime, entry.target
            info.uid, info.gid = owners(entry.uid, entry.gid)
            info.devmajor, info.devminor = os.major(entry.rdev), os.minor(entry.rdev)
            if entry.reader is None:
                tar.addfile(info)
                continue
            with entry.reader() as data:
                info.size = os.fstat(data.fileno()).st_size
                tar.addfile(info, data)


# --- writing ---------------------------------------------------------------------------------------


class _Parents:
    """Directories below the destination, opened (or made) one component at a time, never through a symlink."""

    def __init__(self, top: int) -> None:
        self.fds: dict[str, int] = {"": top}

    def of(self, name: str) -> tuple[int, str]:
        """(the descriptor of ``name``'s directory, its last component); refuses ``..`` and absolute names."""
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise UsageError(f"cp: refusing the name {name!r}: it could reach outside the destination")
        path = ""
        for part in parts[:-1]:
            parent, path = self.fds[path], f"{path}/{part}" if path else part
            if path not in self.fds:
                flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    self.fds[path] = os.open(part, flags, dir_fd=parent)
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=parent)
                    self.fds[path] = os.open(part, flags, dir_fd=parent)
        return self.fds[path], parts[-1]

    def close(self) -> None:
        for path, fd in self.fds.items():
            if path:
                os.close(fd)


def extract(entries: Iterator[Entry], top: int, owners: Callable[[int, int], tuple[int, int]]) -> None:
    """Write ``entries`` below the directory ``top``; each gets the owner ``owners(uid, gid)`` says."""
    # an O_PATH descriptor cannot be written in: the same directory, opened for real
    top = os.open(f"/proc/self/fd/{top}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parents = _Parents(top)
    directories: list[tuple[str, Entry]] = []
    try:
        for entry in entries:
            parent, name = parents.of(entry.name)
            uid, gid = owners(entry.uid, entry.gid)
            if entry.kind == "dir":
                _make_directory(parent, name)
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
                directories.append((entry.name, entry))  # modes last: a read-only one would stop its files
                continue
            _make_other(parents, parent, name, entry)
            if entry.kind != "link":
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
                if entry.kind != "symlink":
                    os.chmod(name, entry.mode, dir_fd=parent)
                os.utime(name, (entry.mtime, entry.mtime), dir_fd=parent, follow_symlinks=False)
        for path, entry in reversed(directories):
            parent, name = parents.of(path)
            os.chmod(name, entry.mode, dir_fd=parent)
            os.utime(name, (entry.mtime, entry.mtime), dir_fd=parent, follow_symlinks=False)
    finally:
        parents.close()
        os.close(top)


def _make_directory(parent: int, name: str) -> None:
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        os.mkdir(name, 0o700, dir_fd=parent)
        return
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"cp: cannot overwrite the non-directory {name!r} with a directory")


def _make_other(parents: _Parents, parent: int, name: str, entry: Entry) -> None:
    """A file, symlink, hard link, fifo or device node named ``name`` in ``parent``, replacing a non-directory."""
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise UsageError(f"cp: cannot overwrite the directory {name!r} with a non-directory")
        os.unlink(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    if entry.kind == "file":
        assert entry.reader is not None
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, 0o600, dir_fd=parent)
        with open(fd, "wb") as out, entry.reader() as data:
            shutil.copyfileobj(data, out, 1 << 20)
    elif entry.kind == "symlink":
        os.symlink(entry.target, name, dir_fd=parent)
    elif entry.kind == "link":
        source_parent, source = parents.of(entry.target)
        os.link(source, name, src_dir_fd=source_parent, dst_dir_fd=parent, follow_symlinks=False)
    elif entry.kind == "fifo":
        os.mkfifo(name, 0o600, dir_fd=parent)
    else:
        kind = stat.S_IFCHR if entry.kind == "chr" else stat.S_IFBLK
        os.mknod(name, 0o600 | kind, entry.rdev, dir_fd=parent)
