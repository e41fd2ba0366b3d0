"""``minictr commit``: a container's changes become a new layer, and a new image.

Everything a container changed lives in its overlay's *upper* directory:
new and modified files (copied up whole), and two kinds of marks overlayfs
leaves for what is gone:

- a deleted file or directory is a character device ``0/0`` with its name;
- a directory deleted and made again is *opaque*: ``trusted.overlay.opaque=y``
  (``user.overlay.opaque`` in a user namespace) hides what lower layers have in it.

Committing writes the upper directory as a tar layer in the OCI form,
turning those marks into whiteout files (``.wh.<name>``, ``.wh..wh..opq``),
gzip'd and hashed in one pass; the new image is the old one plus that layer,
its diff_id and a history entry. Owners are shifted back when the container
ran in a user namespace, so the layer says what the container saw.
"""

from __future__ import annotations

import copy
import datetime
import gzip
import hashlib
import os
import tarfile
from typing import Any

from minictr.engine.images import oci
from minictr.engine.images.store import Image, ImageStore
from minictr.engine.images.whiteouts import OPAQUE_WHITEOUT, WHITEOUT_PREFIX, is_opaque, is_whiteout
from minictr.errors import UsageError

#: xattrs that belong to overlayfs's bookkeeping, never to a layer.
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")


class _HashingSink:
    """A write-only file that hashes what passes through on its way to ``target``."""

    def __init__(self, target: Any) -> None:
        self.target, self.hasher, self.size = target, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def _entry(tar: tarfile.TarFile, path: str, name: str, shift: int) -> tarfile.TarInfo | None:
    info: tarfile.TarInfo | None = tar.gettarinfo(path, name)  # None for a socket, whatever the stubs say
    if info is None:
        return None
    info.uid, info.gid = max(info.uid - shift, 0), max(info.gid - shift, 0)
    info.uname = info.gname = ""
    xattrs = {}
    try:
        for key in os.listxattr(path, follow_symlinks=False):
            if not key.startswith(_OVERLAY_XATTRS):
                xattrs[f"SCHILY.xattr.{key}"] = os.getxattr(path, key, follow_symlinks=False).decode(
                    "utf-8", "surrogateescape"
                )
    except OSError:
        pass
    info.pax_headers = xattrs
    return info


def write_layer(upper: str, sink: Any, shift: int = 0) -> None:
    """Write ``upper`` as an OCI layer tar (uncompressed) to ``sink``, marks turned into whiteouts.

    Entries come depth first in name order, each directory before what it
    holds (its opaque marker first of all), as ``tar`` itself writes them.
    """
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _write_directory(tar, upper, "", shift)


def _write_directory(tar: tarfile.TarFile, directory: str, prefix: str, shift: int) -> None:
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        member = f"{prefix}{name}"
        if is_whiteout(path):
            marker = tarfile.TarInfo(f"{prefix}{WHITEOUT_PREFIX}{name}")
            marker.mtime = int(os.lstat(path).st_mtime)
            tar.addfile(marker)
            continue
        info = _entry(tar, path, member, shift)
        if info is None:
            continue  # a socket: not something a layer can carry
        if info.isreg():
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
            continue
        tar.addfile(info)
        if info.isdir():
            if is_opaque(path):
                marker = tarfile.TarInfo(f"{member}/{OPAQUE_WHITEOUT}")
                marker.mtime = info.mtime
                tar.addfile(marker)
            _write_directory(tar, path, f"{member}/", shift)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def store_layer(store: ImageStore, upper: str, shift: int = 0) -> tuple[dict[str, Any], str]:
    """Write the directory ``upper`` into the store as a gzip'd layer; return (its descriptor, its diff_id).

    The caller holds ``store.in_use()`` until an image names the layer.
    """
    with store.blob_writer() as blob:
        plain = _HashingSink(None)
        with gzip.GzipFile(fileobj=blob, mode="wb", mtime=0, compresslevel=6) as compressed:
            plain.target = compressed
            write_layer(upper, plain, shift)
        layer_digest = blob.commit()
        return {
            "mediaType": oci.MEDIA_LAYER_GZIP,
            "digest": layer_digest,
            "size": blob.offset,
        }, "sha256:" + plain.hasher.hexdigest()


def store_image(store: ImageStore, config: dict[str, Any], layers: list[dict[str, Any]], reference: str = "") -> Image:
    """Store ``config`` and an OCI manifest of ``layers``; tag it as ``reference`` when given; return the image."""
    config_bytes = oci.canonical_json(config)
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": oci.MEDIA_MANIFEST, "config": oci.descriptor(oci.MEDIA_CONFIG, config_bytes),
        "layers": [{**layer, "mediaType": _oci_type(layer["mediaType"])} for layer in layers],
    }  # fmt: skip
    manifest_bytes = oci.canonical_json(manifest)
    store.put_blob(config_bytes)
    digest = store.put_blob(manifest_bytes)
    if not reference:
        return Image(digest, digest, manifest, manifest["config"]["digest"], config)
    platform = {k: config[k] for k in ("os", "architecture", "variant") if config.get(k)}
    name = store.tag(reference, oci.descriptor(oci.MEDIA_MANIFEST, manifest_bytes, platform=platform))
    return Image(name, digest, manifest, manifest["config"]["digest"], config)


def commit_upper(store: ImageStore, base: Image, upper: str, reference: str, *, shift: int = 0,
                 message: str = "", author: str = "") -> Image:  # fmt: skip
    """Make ``reference`` the image ``base`` plus the layer ``upper`` holds; return it."""
    if not os.path.isdir(upper):
        raise UsageError(f"commit: {upper} does not exist (the container's changes are gone)")
    with store.in_use():
        layer, diff_id = store_layer(store, upper, shift)
        created = _now()
        config = copy.deepcopy(base.config)
        config["created"] = created
        if author:
            config["author"] = author
        config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"] = [
            *config["rootfs"].get("diff_ids", []),
            diff_id,
        ]
        entry = {"created": created, "created_by": "minictr commit", **({"comment": message} if message else {})}
        config["history"] = [*config.get("history", []), entry]
        return store_image(store, config, [*base.layers, layer], reference)


def _oci_type(media_type: str) -> str:
    """Docker's layer media types, as OCI names the same bytes (an OCI manifest must not mix them)."""
    return {
        oci.MEDIA_DOCKER_LAYER_GZIP: oci.MEDIA_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar": oci.MEDIA_LAYER_TAR,
        "application/vnd.docker.image.rootfs.diff.tar.zstd": oci.MEDIA_LAYER_ZSTD,
    }.get(media_type, media_type)
