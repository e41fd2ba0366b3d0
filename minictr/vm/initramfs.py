"""An initramfs from the host's static busybox: the whole root filesystem of a small virtual machine.

An initramfs is a gzip-compressed ``cpio`` archive in the "newc" format: a
header of thirteen 8-digit hexadecimal fields, the name, the data, each padded
to 4 bytes, and an entry called ``TRAILER!!!`` at the end. The kernel unpacks it
into a tmpfs and runs ``/init`` from it as PID 1 (``rdinit=/init``). Nothing
here needs the ``cpio`` program or root: entries, device nodes included, are
written straight into the archive.

Used by :mod:`minictr.vm.guest` and by ``scripts/cgroup2-vm.sh``::

    python -m minictr.vm.initramfs OUT.gz --init INIT [--release R] [--module NAME ...] [--dir PATH ...]
"""

from __future__ import annotations

import argparse
import gzip
import os
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from minictr.errors import HostError

#: Directories every guest root gets (``/dev`` also gets ``console``, for the kernel's first open).
BASE_DIRS = ("bin", "dev", "proc", "sys", "tmp")


@dataclass(frozen=True)
class Entry:
    """One member of the archive: a directory, a file (with its bytes) or a character device."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(name: str) -> Entry:
    """A directory entry, mode 0755."""
    return Entry(name, stat.S_IFDIR | 0o755)


def file(name: str, data: bytes, mode: int = 0o644) -> Entry:
    """A regular file holding ``data``."""
    return Entry(name, stat.S_IFREG | mode, data)


def char_device(name: str, major: int, minor: int) -> Entry:
    """A character device node, mode 0600 (made in the archive: no mknod on the host)."""
    return Entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def newc(entries: list[Entry]) -> bytes:
    """The entries as one newc ``cpio`` archive, with its trailer."""
    out = bytearray()
    for inode, entry in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (inode, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        out += header + name + _pad(len(header) + len(name)) + entry.data + _pad(len(entry.data))
    return bytes(out)


def module_files(release: str, modules: list[str]) -> list[str]:
    """The ``.ko`` files of ``modules`` and their dependencies, in the order they must be loaded.

    ``modprobe --show-depends`` resolves them from ``/lib/modules/<release>``;
    modules built into the kernel have no file and are left out.
    """
    found: list[str] = []
    for module in modules:
        try:
            shown = subprocess.run(
                ["modprobe", "-S", release, "--show-depends", module], capture_output=True, text=True, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise HostError(f"cannot resolve kernel module {module} for {release}: {exc}") from exc
        for line in shown.splitlines():
            verb, _, rest = line.partition(" ")
            path = rest.split(" ")[0]
            if verb == "insmod" and path not in found:
                found.append(path)
    return found


def busybox_root(
    init: str,
    busybox: str,
    *,
    modules: Sequence[str] = (),
    dirs: Sequence[str] = (),
    files: dict[str, bytes] | None = None,
) -> list[Entry]:
    """The entries of a busybox root: ``/bin/busybox``, ``/init`` (the text ``init``), ``/dev/console``,
    the module files at the top (``/<name>.ko``) listed in load order in ``/modules.list``, extra
    directories and extra files."""
    with open(busybox, "rb") as handle:
        entries = [directory(name) for name in BASE_DIRS]
        entries.append(file("bin/busybox", handle.read(), 0o755))
    entries.append(char_device("dev/console", 5, 1))
    entries.append(file("init", init.encode(), 0o755))
    for path in modules:
        with open(path, "rb") as handle:
            entries.append(file(os.path.basename(path), handle.read()))
    if modules:
        entries.append(file("modules.list", "".join(os.path.basename(p) + "\n" for p in modules).encode()))
    for name in dirs:
        parts = name.strip("/").split("/")
        entries += [directory("/".join(parts[:depth])) for depth in range(1, len(parts) + 1)]
    for name, data in (files or {}).items():
        entries.append(file(name.strip("/"), data, 0o755))
    unique = {entry.name: entry for entry in entries}  # a directory named twice is one entry
    return list(unique.values())


def write(path: str, entries: list[Entry]) -> int:
    """Write the entries as a gzip-compressed initramfs at ``path``; return its size in bytes."""
    with open(path, "wb") as handle:
        handle.write(gzip.compress(newc(entries), compresslevel=1, mtime=0))  # level 1: fast, and small enough
    return os.path.getsize(path)


def main(argv: list[str] | None = None) -> None:
    """The command line the shell scripts use (see the module's docstring)."""
    from minictr.engine.images.busybox import find_static_busybox

    parser = argparse.ArgumentParser(description="Write a busybox initramfs.")
    parser.add_argument("output")
    parser.add_argument("--init", required=True, help="a file whose text becomes /init")
    parser.add_argument("--release", default=os.uname().release, help="kernel release of the modules")
    parser.add_argument("--module", action="append", default=[], help="a kernel module to add, with its dependencies")
    parser.add_argument("--dir", action="append", default=[], help="an empty directory to create")
    args = parser.parse_args(argv)
    with open(args.init) as handle:
        init = handle.read()
    modules = module_files(args.release, args.module)
    write(args.output, busybox_root(init, find_static_busybox(), modules=modules, dirs=args.dir))


if __name__ == "__main__":
    main()
