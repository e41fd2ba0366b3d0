"""``minictr image prune``: remove what no image name and no running container refers to.

What stays is what is *reachable*: from every name in ``index.json`` to its
manifest (or index, and its manifests), to the config and the layers, and
from the config's diff_ids to the unpacked layer directories. Directories
that a running container stacks in its overlay (recorded in its
``state.json`` before it was created) stay too, even when their image is
gone. Leftovers of interrupted work — ``.partial-*`` blobs, ``.unpacking-*``
directories — go as well: prune holds the store's collection lock
exclusively, which no pull, load or run holds while it adds content.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field

from minictr.engine.images.layers import layers_root
from minictr.engine.images.store import Image, ImageStore
from minictr.errors import ImageError
from minictr.files import locked


@dataclass
class Pruned:
    """What a prune removed."""

    blobs: list[str] = field(default_factory=list)
    directories: list[str] = field(default_factory=list)
    freed: int = 0


def reachable(store: ImageStore) -> tuple[set[str], set[str]]:
    """The blob digests and the diff_ids the named images need."""
    blobs: set[str] = set()
    diff_ids: set[str] = set()

    def walk(digest: str) -> None:
        if digest in blobs:
            return
        blobs.add(digest)
        if not store.has_blob(digest):
            return
        try:
            document = store.read_json(digest)
        except ImageError:
            return  # a corrupt blob keeps nothing else alive
        for entry in document.get("manifests", []):
            walk(entry["digest"])
        if "config" in document:
            blobs.add(document["config"]["digest"])
            blobs.update(layer["digest"] for layer in document.get("layers", []))
            with contextlib.suppress(ImageError):
                diff_ids.update(store.read_json(document["config"]["digest"]).get("rootfs", {}).get("diff_ids", []))

    for entry in store.index().get("manifests", []):
        walk(entry["digest"])
    return blobs, diff_ids


def in_use(state_root: str | None) -> set[str]:
    """The layer and root directories that the containers under ``state_root`` stack.

    Every container directory counts, dead or alive: sweeping the dead ones
    first is the caller's (the command line's) job, a layer above images.
    """
    from minictr.runtime.state import read_state

    used: set[str] = set()
    base = os.path.join(state_root, "containers") if state_root else ""
    if not base or not os.path.isdir(base):
        return used
    for name in os.listdir(base):
        used.update(os.path.realpath(p) for p in read_state(os.path.join(base, name)).get("lowerdirs", []))
    return used


def image_users(state_root: str | None) -> dict[str, str]:
    """Image id -> the id of a container under ``state_root`` made from it (dead ones count until swept)."""
    from minictr.runtime.state import read_state

    found: dict[str, str] = {}
    base = os.path.join(state_root, "containers") if state_root else ""
    for name in sorted(os.listdir(base)) if base and os.path.isdir(base) else []:
        image_id = read_state(os.path.join(base, name)).get("image_id")
        if image_id:
            found[image_id] = name
    return found


def prune(store: ImageStore, state_root: str | None = None, *, blobs: set[str] | None = None,
          diff_ids: set[str] | None = None) -> Pruned:  # fmt: skip
    """Remove unreachable blobs and unpacked layers; with ``blobs``/``diff_ids`` only those candidates.

    Called without candidates it also sweeps interrupted downloads and unpacks.
    """
    store.ensure()
    result = Pruned()
    with locked(os.path.join(store.root, ".gc.lock")), store.lock():
        keep_blobs, keep_layers = reachable(store)
        used = in_use(state_root)
        sweep = blobs is None and diff_ids is None
        directory = os.path.join(store.root, "blobs", "sha256")
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            digest = f"sha256:{name}"
            stale = sweep and name.startswith(".partial-")
            if stale or (not name.startswith(".") and digest not in keep_blobs and (blobs is None or digest in blobs)):
                result.freed += os.lstat(path).st_size
                os.unlink(path)
                result.blobs.append(digest if not stale else name)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(store.root, ".locks", name))
        keep_hex = {d.partition(":")[2] for d in keep_layers}
        wanted_hex = None if diff_ids is None else {d.partition(":")[2] for d in diff_ids}
        roots = [(layers_root(store), keep_hex, wanted_hex)]
        if sweep:  # the flattened copies of the fallback are named by the config digest
            roots.append(
                (os.path.join(os.path.dirname(store.root), "rootfs"), {b.partition(":")[2] for b in keep_blobs}, None)
            )
        for root, keep, wanted in roots:
            result.directories += _remove_directories(root, keep, wanted, used, sweep)
    return result


def _remove_directories(root: str, keep: set[str], wanted: set[str] | None, used: set[str], sweep: bool) -> list[str]:
    removed: list[str] = []
    if not os.path.isdir(root):
        return removed
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        key = name.split(".shift-")[0]
        stale = sweep and (name.startswith(".unpacking-") or ".partial-" in name)
        if name.startswith(".") and not stale:
            continue  # .locks
        if stale or (key not in keep and (wanted is None or key in wanted) and os.path.realpath(path) not in used):
            _rmtree(path)
            removed.append(path)
    return removed


def _rmtree(path: str) -> None:
    """Remove a directory tree that may hold read-only directories."""
    from minictr.files import remove_tree

    remove_tree(path)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


def image_blobs(store: ImageStore, manifest_digest: str) -> tuple[set[str], set[str]]:
    """The blobs and diff_ids of one manifest (for removing what one image brought)."""
    manifest = store.read_json(manifest_digest)
    blobs = {manifest_digest, manifest["config"]["digest"], *(layer["digest"] for layer in manifest.get("layers", []))}
    diff_ids: set[str] = set()
    with contextlib.suppress(ImageError):
        diff_ids = set(store.read_json(manifest["config"]["digest"]).get("rootfs", {}).get("diff_ids", []))
    return blobs, diff_ids


def remove_image(store: ImageStore, reference: str, state_root: str | None = None) -> tuple[Image, Pruned]:
    """Untag ``reference``, then remove what only it needed: its blobs and the unpacked layers no container stacks.

    Another name of the same image keeps everything (its blobs are still reachable).
    """
    image = store.get(reference)
    store.untag(reference)
    blobs, diff_ids = image_blobs(store, image.manifest_digest)
    return image, prune(store, state_root, blobs=blobs, diff_ids=diff_ids)


def describe(result: Pruned) -> str:
    """One line: how many blobs and directories went, and the bytes freed."""
    blobs, directories = len(result.blobs), len(result.directories)
    return f"removed {blobs} blobs and {directories} directories, {result.freed} bytes of blobs freed"
