"""Reading layers safely: decompression, diff_id verification, vetted extraction, whiteouts.

Layers are tarballs applied bottom to top. Two kinds of entries are not files
but instructions (OCI image spec, "whiteouts"):

- ``dir/.wh.name`` deletes ``dir/name`` coming from a lower layer;
- ``dir/.wh..wh..opq`` makes ``dir`` opaque: everything lower layers put in it goes.

There are two ways to use a layer, and both go through :func:`extract_layer`:

- *flattened* (:func:`unpack_image`): every layer into one directory, the
  whiteouts applied by deleting — the copying fallback where overlayfs is
  unavailable;
- *one directory per layer* (:mod:`.layers`), stacked by overlayfs: then
  whiteouts are converted to what overlayfs reads — a ``0/0`` character
  device for ``.wh.name``, the ``trusted.overlay.opaque=y`` xattr for an
  opaque directory.

A layer is untrusted input. An entry is refused — with a clear
:class:`~minictr.errors.ImageError` and the half-written directory removed —
when it would write outside the root: an absolute name or ``..``, a path
through a symlink that leaves the root, a hard link to outside. Symlinks
themselves may point anywhere: they are resolved inside the container, never
while unpacking. The uncompressed stream is hashed as it is read and must
match the layer's ``diff_id`` from the image config, and it may not expand
past the limits of :mod:`.limits` (a gzip bomb is refused, not unpacked).

Device nodes (real root filesystems carry ``/dev/null``, ``/dev/full``…)
are made as the layer says — type, major/minor, mode, owner — where
:func:`can_make_devices` (root in the host's user namespace), as Docker and
podman do. Elsewhere (rootless, or root inside a user namespace) mknod is
not allowed: they are skipped with one warning per layer, never refusing
the image; the container gets its /dev from the runtime anyway. Fifos need
no privilege and are always made.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from typing import Any

from minictr import faults
from minictr.engine.images import oci
from minictr.engine.images.limits import Budget
from minictr.engine.images.store import Image, ImageStore
from minictr.engine.images.whiteouts import AUFS_META, OPAQUE_WHITEOUT, OPAQUE_XATTRS, WHITEOUT_PREFIX
from minictr.errors import ImageError

_COPY_BUFFER = 1 << 20

COMPRESSION = {
    oci.MEDIA_LAYER_TAR: "",
    "application/vnd.docker.image.rootfs.diff.tar": "",
    oci.MEDIA_LAYER_GZIP: "gzip",
    oci.MEDIA_DOCKER_LAYER_GZIP: "gzip",
    oci.MEDIA_LAYER_ZSTD: "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}


# _STREAM_STUBS: a stream ("r|") reads its file object and nothing else, but the stubs of tarfile.open ask
# for a seekable, writable one (and a name): the reader below is a stream, and passes as one.


class HashingReader:
    """The uncompressed tar stream of a layer file, hashed as it is read (for the diff_id)."""

    def __init__(self, path: str, media_type: str, budget: Budget | None = None) -> None:
        if media_type not in COMPRESSION:
            raise ImageError(f"layer media type {media_type!r} is not supported (tar, tar+gzip and tar+zstd are)")
        self.path = path
        self.raw = open(path, "rb")  # noqa: SIM115 - the reader's own file, closed by close()
        kind = COMPRESSION[media_type]
        self.stream: Any = self.raw
        if kind == "gzip":
            import gzip

            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb")
        elif kind == "zstd":
            try:
                import zstandard  # only zstd layers need it
            except ImportError as exc:
                self.raw.close()
                raise ImageError(
                    "this layer is zstd-compressed: install the zstandard package (pip install 'minictr[images]')"
                ) from exc

            self.stream = zstandard.ZstdDecompressor().stream_reader(self.raw, read_across_frames=True)
        self.hasher = hashlib.sha256()
        self.budget = budget

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self.stream.read(size)
        except (OSError, EOFError, ValueError) as exc:
            raise ImageError(f"layer {os.path.basename(self.path)} is corrupt: {exc}") from exc
        self.hasher.update(data)
        if self.budget is not None:
            self.budget.consume(len(data))
        return data

    def diff_id(self) -> str:
        """Read what the tar reader left (end-of-archive padding) and return the stream's digest."""
        while self.read(_COPY_BUFFER):
            pass
        return "sha256:" + self.hasher.hexdigest()

    def close(self) -> None:
        self.stream.close()
        self.raw.close()


def _iterate(tar: tarfile.TarFile, path: str) -> Iterator[tarfile.TarInfo]:
    """A layer's members, streamed; a truncated or corrupt archive becomes an :class:`ImageError`."""
    try:
        yield from tar
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageError(f"layer {os.path.basename(path)} is corrupt: {exc}") from exc


def _inside(root: str, relative: str) -> str:
    """``root/relative``, refusing names that are absolute or climb out with ``..``."""
    name = relative
    if name.startswith("/") or ".." in name.split("/"):
        raise ImageError(f"layer entry {relative!r} points outside the image (absolute path or '..')")
    normalized = posixpath.normpath(name)
    return root if normalized == "." else os.path.join(root, normalized)


def _check_parent(root: str, path: str, entry: str) -> None:
    """Refuse a path whose existing parent directories lead, through symlinks, out of ``root``."""
    parent = os.path.realpath(os.path.dirname(path))
    if parent != root and not parent.startswith(root + os.sep):
        raise ImageError(f"layer entry {entry!r} would be written through a symlink to {parent}, outside the image")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply_whiteouts(layer_path: str, media_type: str, root: str) -> None:
    """Flattening, first pass over a layer: delete what its whiteouts remove from the layers below."""
    reader = HashingReader(layer_path, media_type, _budget(layer_path, None))
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]  # see _STREAM_STUBS
            for member in _iterate(tar, layer_path):
                directory, base = posixpath.split(member.name.rstrip("/"))
                if not base.startswith(WHITEOUT_PREFIX):
                    continue
                parent = _inside(root, directory or ".")
                _check_parent(root, os.path.join(parent, "x"), member.name)
                if base.startswith(AUFS_META) and base != OPAQUE_WHITEOUT:
                    continue
                if base == OPAQUE_WHITEOUT:
                    if os.path.isdir(parent):
                        for child in os.listdir(parent):
                            _remove(os.path.join(parent, child))
                else:
                    _remove(os.path.join(parent, base[len(WHITEOUT_PREFIX) :]))
    except tarfile.TarError as exc:
        raise ImageError(f"layer {os.path.basename(layer_path)} is not a readable tar archive: {exc}") from exc
    finally:
        reader.close()


def _overlay_whiteout(root: str, member: tarfile.TarInfo, directory: str, base: str) -> None:
    """Write a whiteout the way overlayfs reads it, in a layer's own directory."""
    parent = _inside(root, directory or ".")
    _check_parent(root, os.path.join(parent, "x"), member.name)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    if base.startswith(AUFS_META) and base != OPAQUE_WHITEOUT:
        return  # AUFS bookkeeping (.wh..wh.plnk…): no meaning for overlayfs
    if base == OPAQUE_WHITEOUT:
        for name in OPAQUE_XATTRS:
            os.setxattr(parent, name, b"y")
        return
    target = os.path.join(parent, base[len(WHITEOUT_PREFIX) :])
    _remove(target)
    os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def can_make_devices() -> bool:
    """True when mknod of a device node is allowed: root, in the host's user namespace (whose map is the identity)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map") as handle:
            return handle.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


def _budget(layer_path: str, dest: str | None) -> Budget:
    return Budget(os.path.basename(layer_path)[:12], os.path.getsize(layer_path), dest)


def extract_layer(layer_path: str, media_type: str, root: str, *, diff_id: str | None = None,
                  devices: bool | None = None, overlay: bool = False) -> str:  # fmt: skip
    """Extract a layer's entries into ``root``, preserving owners, modes, xattrs and times.

    Whiteouts are skipped (flattening applies them first with
    :func:`apply_whiteouts`), or with ``overlay`` written as overlayfs
    whiteouts. Device nodes are made when ``devices`` (default:
    :func:`can_make_devices`), else skipped with one warning. Returns the
    diff_id read; with ``diff_id`` a mismatch is an :class:`ImageError`.
    """
    reader = HashingReader(layer_path, media_type, _budget(layer_path, os.path.dirname(root)))
    directories: list[tarfile.TarInfo] = []
    devices = can_make_devices() if devices is None else devices
    skipped = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]  # see _STREAM_STUBS
            tar.copybufsize = _COPY_BUFFER
            for member in _iterate(tar, layer_path):
                done = _place(tar, member, root, overlay, devices)
                skipped += done == "skipped"
                if done == "placed":
                    faults.point("unpack")
                    if member.isdir():
                        directories.append(member)
        found = reader.diff_id()
    except tarfile.TarError as exc:
        raise ImageError(f"layer {os.path.basename(layer_path)} is not a readable tar archive: {exc}") from exc
    finally:
        reader.close()
    if diff_id is not None and found != diff_id:
        raise ImageError(
            f"layer {os.path.basename(layer_path)} does not match its diff_id: expected {diff_id}, got {found}"
        )
    for member in reversed(directories):  # children changed the directories' times: set them last, deepest first
        os.utime(os.path.join(root, member.name), (member.mtime, member.mtime), follow_symlinks=False)
    if skipped:
        warn_devices_skipped(f"layer {os.path.basename(layer_path)[:12]}", skipped)
    return found


def _place(tar: tarfile.TarFile, member: tarfile.TarInfo, root: str, overlay: bool, devices: bool) -> str:
    """Put one entry of a layer into ``root`` (see :func:`extract_layer`).

    Returns ``"placed"``; ``"skipped"`` for a device node it may not make;
    ``""`` for a whiteout (or the root's own ``./`` entry).
    """
    directory, base = posixpath.split(member.name.rstrip("/"))
    if base.startswith(WHITEOUT_PREFIX):
        if overlay:
            _overlay_whiteout(root, member, directory, base)
        return ""
    target = _inside(root, member.name)
    if target == root:
        return ""  # the "./" entry: the root exists already
    _check_parent(root, target, member.name)
    _vet(root, member, overlay)
    if os.path.lexists(target) and not (member.isdir() and os.path.isdir(target) and not os.path.islink(target)):
        _remove(target)  # never write *through* what a lower layer left there
    if member.isdev() and not member.isfifo() and not devices:
        return "skipped"
    member.name = posixpath.normpath(member.name)
    try:
        _extract(tar, member, root)
    except PermissionError:
        if not member.isdev() or member.isfifo():
            raise
        return "skipped"  # mknod refused all the same (a device cgroup, a seccomp filter): skip as rootless
    _finish(member, target)
    return "placed"


def warn_devices_skipped(what: str, count: int) -> None:
    """The one line that says device nodes of ``what`` were left out (not root, or in a user namespace)."""
    print(f"minictr: warning: {what}: skipped {count} device node(s): making them needs root outside a user namespace",
          file=sys.stderr)  # fmt: skip


def _vet(root: str, member: tarfile.TarInfo, overlay: bool) -> None:
    """Refuse hard links that lead out of the root (or, per layer, out of this layer)."""
    if member.islnk():
        link = _inside(root, member.linkname)
        _check_parent(root, link, member.linkname)
        if os.path.islink(link):
            raise ImageError(f"layer entry {member.name!r} hard-links to a symlink ({member.linkname!r})")
        if overlay and not os.path.lexists(link):
            raise ImageError(
                f"layer entry {member.name!r} hard-links to {member.linkname!r}, which this layer does not hold"
            )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, root: str) -> None:
    """Extract one already-vetted member exactly as it is (no mode stripping)."""
    try:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extract(member, root, numeric_owner=True, filter="fully_trusted")
        else:  # Python < 3.11.4 has no extraction filters
            tar.extract(member, root, numeric_owner=True)
    except (tarfile.TarError, EOFError) as exc:
        raise ImageError(f"layer entry {member.name!r} could not be extracted: {exc}") from exc


def _finish(member: tarfile.TarInfo, path: str) -> None:
    """What tarfile leaves out: extended attributes (``SCHILY.xattr.*``) and a symlink's own time."""
    for key, value in member.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        name = key[len("SCHILY.xattr.") :]
        if name.startswith("trusted.") or (name.startswith("security.") and name != "security.capability"):
            continue  # trusted.overlay.* would let a layer forge whiteouts; security.selinux is the host's business
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise ImageError(f"layer entry {member.name!r}: setting xattr {name}: {exc.strerror}") from exc
    if member.issym():
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def layer_blob(store: ImageStore, image: Image, layer: dict[str, Any]) -> str:
    """The stored file of one of ``image``'s layers; an :class:`ImageError` when it is missing."""
    path = store.blob_path(layer["digest"])
    if not os.path.exists(path):
        raise ImageError(f"layer {layer['digest']} of {image.name} is missing from the store")
    return path


def unpack_image(store: ImageStore, image: Image, dest: str, *, devices: bool | None = None) -> None:
    """Apply ``image``'s layers, bottom to top, into the new directory ``dest`` (flattened).

    ``dest`` appears complete or not at all: the layers are unpacked into a
    temporary sibling that is renamed into place at the end, and removed if
    anything fails.
    """
    if os.path.exists(dest):
        raise ImageError(f"cannot unpack into {dest}: it exists already")
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".unpacking-")
    diff_ids = image.config.get("rootfs", {}).get("diff_ids") or []
    try:
        os.chmod(staging, 0o755)
        root = os.path.realpath(staging)
        for number, layer in enumerate(image.layers):
            path = layer_blob(store, image, layer)
            apply_whiteouts(path, layer["mediaType"], root)
            expected = diff_ids[number] if len(diff_ids) == len(image.layers) else None
            extract_layer(path, layer["mediaType"], root, diff_id=expected, devices=devices)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
