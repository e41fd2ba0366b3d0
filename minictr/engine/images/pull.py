"""``minictr pull``: an image from a registry into the store, verified, each layer unpacked once.

The steps, as the distribution and image specs lay them out::

    GET /v2/<repo>/manifests/<tag>     an index (many platforms) or a manifest
    └─ pick this platform's manifest   GET /v2/<repo>/manifests/<digest>
       ├─ GET /v2/<repo>/blobs/<config digest>
       └─ GET /v2/<repo>/blobs/<layer digest> …    in parallel, streamed to disk

Every blob is checked against its digest and declared size while it is
written, and renamed into the store only when it matches. Each layer is
then unpacked into its own directory and checked against its diff_id (see
:mod:`.layers`). The manifest is stored and the name tagged *last*, so a
pull killed half way leaves only unnamed blobs (which ``image prune``
removes) and never a name pointing at an incomplete image. Two pulls of one
image at once share the work through per-blob and per-layer locks.

An image whose content is refused (a tampered blob, a hostile layer) leaves
nothing behind: what this pull stored for it is removed again.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minictr.engine.images import oci
from minictr.engine.images.progress import Progress
from minictr.engine.images.reference import Reference, parse
from minictr.engine.images.registry import MEDIA_DOCKER_LIST, Registry
from minictr.engine.images.store import Image, ImageStore
from minictr.errors import ImageError, RegistryError

MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MANIFEST_TYPES = (oci.MEDIA_MANIFEST, oci.MEDIA_DOCKER_MANIFEST)
INDEX_TYPES = (oci.MEDIA_INDEX, MEDIA_DOCKER_LIST)
CONFIG_TYPES = (oci.MEDIA_CONFIG, MEDIA_DOCKER_CONFIG)
MAX_CONFIG = 8 << 20
JOBS = 4


def parse_platform(text: str | None) -> dict[str, str]:
    """``'linux/arm64/v8'`` -> ``{'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}``; None: this host."""
    if not text:
        return oci.host_platform()
    parts = text.strip().lower().split("/")
    if len(parts) == 1:
        parts.insert(0, "linux")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageError(f"--platform {text!r}: use OS/ARCH[/VARIANT], e.g. linux/arm64/v8")
    architecture, variant = oci.normalize_architecture(parts[1], parts[2] if len(parts) == 3 else "")
    platform = {"os": parts[0], "architecture": architecture}
    if variant:
        platform["variant"] = variant
    return platform


def platform_text(platform: dict[str, Any]) -> str:
    """``{'os': 'linux', 'architecture': 'arm', 'variant': 'v7'}`` -> ``'linux/arm/v7'``."""
    return "/".join(p for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)


def select_manifest(manifests: list[dict[str, Any]], wanted: dict[str, str]) -> dict[str, Any]:
    """The index entry for ``wanted``, as Docker chooses: same OS and architecture, best variant.

    An exact variant wins; an entry without a variant is the next best
    (arm64 images rarely say ``v8``). Attestations (``unknown/unknown``) never match.
    """
    candidates: list[tuple[int, int, dict[str, Any]]] = []
    for entry in manifests:
        platform = entry.get("platform") or {}
        if platform.get("os") != wanted["os"]:
            continue
        architecture, variant = oci.normalize_architecture(
            platform.get("architecture", ""), platform.get("variant", "")
        )
        if architecture != wanted["architecture"]:
            continue
        want = wanted.get("variant", "")
        if variant == want:
            rank = 0
        elif not variant or not want:
            rank = 1
        else:
            continue
        candidates.append((rank, len(candidates), entry))
    if not candidates:
        offered = sorted({platform_text(e.get("platform") or {}) for e in manifests} - {"unknown/unknown", ""})
        raise ImageError(
            f"no image for {platform_text(wanted)} (--platform); the image has: {', '.join(offered) or 'no platforms'}"
        )
    return min(candidates, key=lambda c: (c[0], c[1]))[2]


def check_manifest(manifest: dict[str, Any], what: str) -> None:
    """Refuse a manifest minictr cannot use, saying which part is wrong."""
    config = manifest.get("config")
    if (
        manifest.get("schemaVersion") != 2
        or not isinstance(config, dict)
        or not isinstance(manifest.get("layers"), list)
    ):
        raise ImageError(f"{what}: not an image manifest (schemaVersion 2 with a config and layers)")
    if config.get("mediaType") not in CONFIG_TYPES:
        raise ImageError(f"{what}: its config is a {config.get('mediaType')!r}, not a container image (an artifact?)")
    from minictr.engine.images.unpack import COMPRESSION

    for descriptor in [config, *manifest["layers"]]:
        try:
            oci.split_digest(descriptor.get("digest", ""))
        except ValueError as exc:
            raise ImageError(f"{what}: {exc}") from exc
        if not isinstance(descriptor.get("size"), int) or descriptor["size"] < 0:
            raise ImageError(f"{what}: descriptor {descriptor.get('digest')} has no valid size")
    for layer in manifest["layers"]:
        if layer.get("mediaType") not in COMPRESSION:
            raise ImageError(
                f"{what}: layer {layer['digest']} is a {layer.get('mediaType')!r}, which minictr cannot unpack"
            )


def resolve(registry: Registry, ref: Reference, wanted: dict[str, str]) -> tuple[bytes, str, str]:
    """The manifest for ``ref`` on ``wanted``'s platform: (bytes, media type, digest)."""
    data, media_type, digest = registry.get_manifest(ref.repository, ref.object)
    document = json.loads(data)
    if media_type in INDEX_TYPES or "manifests" in document:
        entry = select_manifest(document.get("manifests") or [], wanted)
        data, media_type, digest = registry.get_manifest(ref.repository, entry["digest"])
        if digest != entry["digest"]:
            raise ImageError(f"{ref}: the registry sent {digest} for {entry['digest']}")
    if media_type not in MANIFEST_TYPES:
        raise ImageError(f"{ref}: the registry sent a {media_type!r}, not an image manifest")
    return data, media_type, digest


def fetch_blob(store: ImageStore, registry: Registry, repository: str, descriptor: dict[str, Any],
               progress: Progress, added: set[str]) -> None:  # fmt: skip
    """Download one blob into the store unless it is there; record it in ``added`` if this call stored it."""
    digest = descriptor["digest"]
    task = progress.task(digest.partition(":")[2][:12], int(descriptor["size"]))
    with store.blob_lock(digest):
        if store.has_blob(digest):
            task.advance(task.total)
            task.finish("Already exists")
            return
        with store.blob_writer(digest, int(descriptor["size"])) as writer:
            registry.download_blob(repository, descriptor, writer, task.advance)
            writer.commit()
        added.add(digest)
    task.finish("Pull complete")


def pull(store: ImageStore, reference: str, *, platform: str | None = None, progress: Progress | None = None,
         registry: Registry | None = None, unpack: bool = True, jobs: int = JOBS) -> Image:  # fmt: skip
    """Pull ``reference`` into ``store`` and name it (Docker's familiar form); return the image.

    ``platform`` (``os/arch[/variant]``) picks from a multi-platform index
    (default: this host). With ``unpack`` each layer is also unpacked and
    verified against its diff_id, so a hostile layer is refused here and not
    at the first run.
    """
    ref = parse(reference)
    wanted = parse_platform(platform)
    progress = progress or Progress()
    registry = registry or Registry(ref.api_host)
    data, media_type, digest = resolve(registry, ref, wanted)
    manifest = json.loads(data)
    check_manifest(manifest, str(ref))
    added: set[str] = set()
    name = ref.familiar()
    try:
        with store.in_use():
            fetch_blob(store, registry, ref.repository, manifest["config"], Progress(), added)
            config = store.read_json(manifest["config"]["digest"])
            _check_config(config, manifest, wanted, str(ref))
            with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="minictr-pull") as pool:
                futures = [
                    pool.submit(fetch_blob, store, registry, ref.repository, layer, progress, added)
                    for layer in manifest["layers"]
                ]
                for future in futures:
                    future.result()
            store.put_blob(data)
            image = Image(name, digest, manifest, manifest["config"]["digest"], config)
            if unpack:
                from minictr.engine.images.layers import unpack_layers

                unpack_layers(store, image)
            descriptor = oci.descriptor(media_type, data, platform=_platform_of(config, wanted))
            store.tag(name, descriptor)
    except ImageError as exc:
        if not isinstance(exc, RegistryError):
            _forget(store, added | {digest}, manifest)
        raise
    finally:
        progress.close()
    return store.get(name)


def _check_config(config: dict[str, Any], manifest: dict[str, Any], wanted: dict[str, str], what: str) -> None:
    diff_ids = config.get("rootfs", {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(manifest["layers"]):
        raise ImageError(
            f"{what}: the config lists {len(diff_ids or [])} diff_ids for {len(manifest['layers'])} layers"
        )
    if config.get("os") and config.get("os") != wanted["os"]:
        raise ImageError(f"{what}: the image is for {config.get('os')}, not {wanted['os']}")


def _platform_of(config: dict[str, Any], wanted: dict[str, str]) -> dict[str, str]:
    platform = {
        "os": config.get("os") or wanted["os"],
        "architecture": config.get("architecture") or wanted["architecture"],
    }
    if config.get("variant") or wanted.get("variant"):
        platform["variant"] = config.get("variant") or wanted.get("variant", "")
    return platform


def _forget(store: ImageStore, blobs: set[str], manifest: dict[str, Any]) -> None:
    """Remove what a refused pull stored, unless some named image needs it."""
    from minictr.engine.images.prune import prune

    diff_ids: set[str] = set()
    config = manifest["config"]["digest"]
    if store.has_blob(config):
        try:
            diff_ids = set(store.read_json(config).get("rootfs", {}).get("diff_ids", []))
        except ImageError:
            pass
    prune(store, blobs=blobs, diff_ids=diff_ids)
