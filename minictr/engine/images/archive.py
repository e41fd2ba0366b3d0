"""``minictr save`` and ``load``: images as one tar file holding an OCI image layout.

The archive is the store's own format, restricted to the chosen images::

    oci-layout
    index.json            one entry per image, named by org.opencontainers.image.ref.name
    blobs/sha256/<hex>    their manifests, configs and layers
    manifest.json         Docker's description of the same, so that ``docker load`` reads it too

``skopeo copy oci-archive:FILE …`` and ``docker load`` read what ``save``
writes; ``load`` reads those and skopeo's archives. An archive is untrusted
input: ``load`` accepts only those names, streams each blob into the store
verified against the digest in its name (and refuses one that would leave
the disk with less than its free-space reserve, see :mod:`.limits`), checks
every blob an image needs against the size its index or manifest declares,
as a pull does, and adds names only then — a bad archive leaves nothing behind.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import tarfile
from typing import Any

from minictr.engine.images import oci
from minictr.engine.images.limits import check_reserve
from minictr.engine.images.prune import prune
from minictr.engine.images.store import ImageStore
from minictr.errors import ImageError

_BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})")
#: Names of the containerd and Docker annotations that carry the full image name.
_FULL_NAME = "io.containerd.image.name"
MAX_JSON = 4 << 20


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def save(store: ImageStore, references: list[str], path: str) -> list[str]:
    """Write the images ``references`` to the tar file ``path``; return their stored names."""
    from minictr.engine.images.reference import parse

    images = [store.get(reference) for reference in references]
    blobs: list[str] = []
    entries, docker = [], []
    for image in images:
        for digest in (image.manifest_digest, image.config_digest, *(layer["digest"] for layer in image.layers)):
            if digest not in blobs:
                blobs.append(digest)
        annotations = {oci.REF_NAME: image.name, _FULL_NAME: str(parse(image.name))}
        entries.append(
            oci.descriptor(oci.MEDIA_MANIFEST, store.read_blob(image.manifest_digest), annotations=annotations)
        )
        repo_tags = (
            []
            if "@" in image.name
            else [image.name if ":" in image.name.rsplit("/", 1)[-1] else f"{image.name}:latest"]
        )
        docker.append({"Config": f"blobs/sha256/{image.config_digest[7:]}", "RepoTags": repo_tags,
                       "Layers": [f"blobs/sha256/{layer['digest'][7:]}" for layer in image.layers]})  # fmt: skip
    temp = f"{path}.partial-{os.getpid()}"
    try:
        with tarfile.open(temp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            index = {"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": entries}
            _add_bytes(tar, "index.json", json.dumps(index, indent=2).encode())
            _add_bytes(tar, "manifest.json", json.dumps(docker).encode())
            for digest in blobs:
                path_in_store = store.blob_path(digest)
                info = tar.gettarinfo(path_in_store, f"blobs/sha256/{digest[7:]}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path_in_store, "rb") as handle:
                    tar.addfile(info, handle)
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return [image.name for image in images]


def _open_archive(path: str) -> tarfile.TarFile:
    """``path`` as a streamed tar, plain or compressed; an :class:`ImageError` when it is none."""
    try:
        return tarfile.open(path, "r|*")
    except (OSError, tarfile.TarError) as exc:
        raise ImageError(f"load: {path} is not a tar archive: {exc}") from exc


def load(store: ImageStore, path: str) -> list[str]:
    """Read an OCI layout tar (plain or compressed) into the store; return the names it added."""
    added: set[str] = set()
    index: dict[str, Any] | None = None
    try:
        with store.in_use():
            with _open_archive(path) as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isdir() or name in ("oci-layout", "manifest.json", "repositories", "."):
                        continue
                    match = _BLOB_NAME.fullmatch(name)
                    if name == "index.json" and member.isreg() and member.size <= MAX_JSON:
                        index = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]  # a regular file
                    elif match and member.isreg():
                        digest = f"sha256:{match[1]}"
                        if not store.has_blob(digest):
                            check_reserve(store.root, member.size)
                            with store.blob_lock(digest), store.blob_writer(digest, member.size) as writer:
                                source = tar.extractfile(member)
                                for chunk in iter(functools.partial(source.read, 1 << 20), b""):  # type: ignore[union-attr]  # as above
                                    writer.write(chunk)
                                writer.commit()
                            added.add(digest)
                    else:
                        raise ImageError(
                            f"load: {path} holds {member.name!r}, which an OCI image layout does not (refused)"
                        )
            if index is None:
                raise ImageError(f"load: {path} has no index.json: it is not an OCI image layout archive")
            return _name_images(store, index, path)
    except (ImageError, ValueError, tarfile.TarError) as exc:
        prune(store, blobs=added, diff_ids=set())
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"load: {path} is damaged: {exc}") from exc


def _name_images(store: ImageStore, index: dict[str, Any], path: str) -> list[str]:
    """Tag the archive's images once all their blobs are stored, each as big as its descriptor says."""
    from minictr.engine.images.pull import INDEX_TYPES, check_manifest, parse_platform, select_manifest

    names = []
    for entry in index.get("manifests", []):
        annotations = entry.get("annotations") or {}
        name = annotations.get(_FULL_NAME) or annotations.get(oci.REF_NAME)
        what = f"load: {path}: {name or entry.get('digest')}"
        _check_blob(store, entry, what)
        if entry.get("mediaType") in INDEX_TYPES:
            entry = select_manifest(store.read_json(entry["digest"]).get("manifests", []), parse_platform(None))
            _check_blob(store, entry, what)
        manifest = store.read_json(entry["digest"])
        check_manifest(manifest, what)
        for descriptor in (manifest["config"], *manifest["layers"]):
            _check_blob(store, descriptor, what)
        if name:
            names.append(store.tag(name, {k: v for k, v in entry.items() if k != "annotations"}))
    if not names:
        raise ImageError(f"load: {path} names no image (no {oci.REF_NAME} annotation)")
    return names


def _check_blob(store: ImageStore, descriptor: dict[str, Any], what: str) -> None:
    """Refuse a descriptor whose blob the archive lacks or whose declared size is not the blob's (as a pull would)."""
    digest = descriptor.get("digest", "")
    try:
        oci.split_digest(digest)
    except ValueError as exc:
        raise ImageError(f"{what}: {exc}") from exc
    if not store.has_blob(digest):
        raise ImageError(f"{what}: the archive lacks blob {digest}")
    declared, actual = descriptor.get("size"), os.path.getsize(store.blob_path(digest))
    if declared != actual or isinstance(declared, bool):
        raise ImageError(f"{what}: blob {digest} is {actual} bytes but its descriptor declares {declared}: refused")
