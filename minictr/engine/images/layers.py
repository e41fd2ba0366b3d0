"""Each layer unpacked once, into a directory of its own, ready to be stacked by overlayfs.

On disk, beside the image store::

    <data-root>/layers/<hex of the diff_id>/     one layer's files, whiteouts as overlayfs reads them
    <data-root>/layers/<hex>.shift-<uid>/        the same, owned by a user namespace's root (see container_root.py)

The directory is named by the layer's *diff_id* (the digest of its
uncompressed tar, from the image config), and the stream is verified
against it while it is unpacked: two images sharing a layer share its
directory, and a directory's name is a promise about its content. A layer
is unpacked into a temporary sibling and renamed into place, under a lock of
its own, so concurrent runs and pulls unpack it once and a crash leaves only
a ``.unpacking-*`` directory that :mod:`.prune` removes.

A container's root is then an overlay of these directories, top layer first
(``lowerdir=top:…:bottom``), with the container's own upper directory above.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False  # typing is for checkers; the container start path does without it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

from minictr.engine.images.store import Image, ImageStore
from minictr.engine.images.whiteouts import is_opaque, is_whiteout
from minictr.errors import ImageError
from minictr.files import locked


def layers_root(store: ImageStore) -> str:
    """``<data-root>/layers``, beside the store."""
    return os.path.join(os.path.dirname(store.root), "layers")


def layer_dir(store: ImageStore, diff_id: str) -> str:
    """Where the layer with ``diff_id`` is (or will be) unpacked."""
    algorithm, _, encoded = diff_id.partition(":")
    if algorithm != "sha256" or len(encoded) != 64 or not all(c in "0123456789abcdef" for c in encoded):
        raise ImageError(f"the image config names a layer by {diff_id!r}, which is not a sha256 diff_id")
    return os.path.join(layers_root(store), encoded)


@contextlib.contextmanager
def _layer_lock(store: ImageStore, diff_id: str) -> Iterator[None]:
    with locked(os.path.join(layers_root(store), ".locks", os.path.basename(layer_dir(store, diff_id)))):
        yield


def diff_ids(image: Image) -> list[str]:
    """The image's diff_ids, one per layer (an :class:`ImageError` when the config disagrees with the manifest)."""
    found = list(image.config.get("rootfs", {}).get("diff_ids") or [])
    if len(found) != len(image.layers):
        raise ImageError(f"{image.name}: the config lists {len(found)} diff_ids for {len(image.layers)} layers")
    return found


def unpack_layer(store: ImageStore, image: Image, number: int) -> str:
    """Layer ``number`` (0 is the bottom) of ``image`` unpacked and verified; return its directory."""
    diff_id = diff_ids(image)[number]
    final = layer_dir(store, diff_id)
    if os.path.isdir(final):
        return final
    from minictr.engine.images.unpack import extract_layer, layer_blob  # tarfile and friends: only when a layer is new

    layer = image.layers[number]
    blob = layer_blob(store, image, layer)
    with _layer_lock(store, diff_id):
        if os.path.isdir(final):
            return final  # another process unpacked it while we waited
        import shutil
        import tempfile

        staging = tempfile.mkdtemp(dir=layers_root(store), prefix=".unpacking-")
        try:
            os.chmod(staging, 0o755)
            extract_layer(blob, layer["mediaType"], os.path.realpath(staging), diff_id=diff_id, overlay=True)
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return final


def unpack_layers(store: ImageStore, image: Image) -> list[str]:
    """Every layer of ``image`` unpacked (each once); return their directories, bottom first."""
    return [unpack_layer(store, image, number) for number in range(len(image.layers))]


def read_file(layers: list[str], relative: str) -> bytes | None:
    """A file's content as the stacked layers (bottom first) show it, or None; without mounting anything.

    Looks from the top layer down, stopping at a whiteout of the file or of
    one of its directories, and below an opaque directory.
    """
    parts = [p for p in relative.strip("/").split("/") if p]
    for layer in reversed(layers):
        stop = False
        for depth in range(1, len(parts)):
            ancestor = os.path.join(layer, *parts[:depth])
            if is_whiteout(ancestor) or (os.path.lexists(ancestor) and not os.path.isdir(ancestor)):
                return None
            if os.path.isdir(ancestor) and is_opaque(ancestor):
                stop = True
        path = os.path.join(layer, *parts)
        if is_whiteout(path):
            return None
        if os.path.lexists(path):
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    return handle.read()
            return None
        if stop:
            return None
    return None


def overlay_lowerdir(layers: list[str]) -> str:
    """The ``lowerdir=`` value for ``layers`` (bottom first): overlayfs wants the top layer first."""
    return ":".join(reversed(layers))


def layer_summary(store: ImageStore, image: Image) -> list[dict[str, Any]]:
    """One row per layer: digest, media type, compressed size, diff_id, and whether it is unpacked."""
    rows = []
    for layer, diff_id in zip(image.layers, diff_ids(image), strict=True):
        rows.append({"digest": layer["digest"], "mediaType": layer["mediaType"], "size": layer.get("size", 0),
                     "diff_id": diff_id, "unpacked": os.path.isdir(layer_dir(store, diff_id))})  # fmt: skip
    return rows
