"""Turning an image's layers into a root filesystem — safely.

Layers are tarballs applied bottom to top. Two kinds of entries are not files
but instructions (OCI image spec, "whiteouts"):

- ``dir/.wh.name`` deletes ``dir/name`` coming from a lower layer;
- ``dir/.wh..wh..opq`` makes ``dir`` opaque: everything lower layers put in it goes.

A layer is untrusted input. An entry is refused — with a clear
:class:`~minictr.errors.ImageError` and the half-written root removed — when it
would write outside the root: an absolute name or ``..``, a path through a
symlink that leaves the root, a hard link to outside; and device nodes are
refused unless explicitly allowed. Symlinks themselves may point anywhere: they
are resolved inside the container, never while unpacking.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
from typing import Iterator

from ..errors import ImageError
from . import oci
from .store import Image, ImageStore

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

_COMPRESSION = {
    oci.MEDIA_LAYER_TAR: "r|",
    oci.MEDIA_LAYER_GZIP: "r|gz",
    oci.MEDIA_DOCKER_LAYER_GZIP: "r|gz",
}


def _open_layer(path: str, media_type: str) -> tarfile.TarFile:
    mode = _COMPRESSION.get(media_type)
    if mode is None:
        raise ImageError(f"layer media type {media_type!r} is not supported yet")
    try:
        return tarfile.open(path, mode)
    except (tarfile.TarError, OSError) as exc:
        raise ImageError(f"layer {os.path.basename(path)} is not a readable tar archive: {exc}") from exc


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
    """First pass over a layer: delete what its whiteouts remove from the layers below."""
    with _open_layer(layer_path, media_type) as tar:
        for member in _iterate(tar, layer_path):
            directory, base = posixpath.split(member.name.rstrip("/"))
            if not base.startswith(WHITEOUT_PREFIX):
                continue
            parent = _inside(root, directory or ".")
            _check_parent(root, os.path.join(parent, "x"), member.name)
            if base == OPAQUE_WHITEOUT:
                if os.path.isdir(parent):
                    for child in os.listdir(parent):
                        _remove(os.path.join(parent, child))
            else:
                _remove(os.path.join(parent, base[len(WHITEOUT_PREFIX) :]))


def extract_layer(layer_path: str, media_type: str, root: str, *, allow_devices: bool = False) -> None:
    """Second pass: extract every entry that is not a whiteout, preserving owners, modes and times."""
    with _open_layer(layer_path, media_type) as tar:
        for member in _iterate(tar, layer_path):
            base = posixpath.basename(member.name.rstrip("/"))
            if base.startswith(WHITEOUT_PREFIX):
                continue
            target = _inside(root, member.name)
            if target == root:
                continue  # the "./" entry: the root exists already
            _check_parent(root, target, member.name)
            if (member.ischr() or member.isblk()) and not allow_devices:
                raise ImageError(f"layer entry {member.name!r} is a device node, which images may not carry")
            if member.islnk():
                link = _inside(root, member.linkname)
                _check_parent(root, link, member.linkname)
                if os.path.islink(link):
                    raise ImageError(f"layer entry {member.name!r} hard-links to a symlink ({member.linkname!r})")
            if os.path.lexists(target) and not (member.isdir() and os.path.isdir(target) and not os.path.islink(target)):
                _remove(target)  # never write *through* what a lower layer left there
            member.name = posixpath.normpath(member.name)
            _extract(tar, member, root)


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, root: str) -> None:
    """Extract one already-vetted member exactly as it is (no mode stripping)."""
    try:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extract(member, root, numeric_owner=True, filter="fully_trusted")
        else:  # Python < 3.11.4 has no extraction filters
            tar.extract(member, root, numeric_owner=True)
    except (tarfile.TarError, EOFError) as exc:
        raise ImageError(f"layer entry {member.name!r} could not be extracted: {exc}") from exc


def unpack_image(store: ImageStore, image: Image, dest: str, *, allow_devices: bool = False) -> None:
    """Apply ``image``'s layers, bottom to top, into the new directory ``dest``.

    ``dest`` appears complete or not at all: the layers are unpacked into a
    temporary sibling that is renamed into place at the end, and removed if
    anything fails.
    """
    if os.path.exists(dest):
        raise ImageError(f"cannot unpack into {dest}: it exists already")
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".unpacking-")
    try:
        os.chmod(staging, 0o755)
        root = os.path.realpath(staging)
        for layer in image.layers:
            path = store.blob_path(layer["digest"])
            if not os.path.exists(path):
                raise ImageError(f"layer {layer['digest']} of {image.name} is missing from the store")
            apply_whiteouts(path, layer["mediaType"], root)
            extract_layer(path, layer["mediaType"], root, allow_devices=allow_devices)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
