"""The build cache: what a step made, found again by what it was made from.

A key is a chain: the digest of the previous step's key and this step's
description (the instruction as expanded, the build arguments in effect, and
for COPY/ADD the digest of every file read). The first key of a stage is the
base image's manifest digest. So a key names the whole history that led to a
layer, and a change anywhere reruns from that step on.

Entries are small JSON files under ``<data-root>/build-cache/``, each naming
the layer a step made (its descriptor and diff_id) and when. An entry whose
layer blob was pruned from the store is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from minictr.engine.images.store import ImageStore
from minictr.files import write_atomic


def chain(previous: str, description: Any) -> str:
    """The key of a step after ``previous`` (a key or a manifest digest), described by ``description``."""
    text = json.dumps([previous, description], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class LayerCache:
    """Step results by key, beside the image store."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.root = os.path.join(os.path.dirname(store.root), "build-cache")

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key.partition(":")[2] + ".json")

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry of ``key``, or None (never stored, unreadable, or its layer is gone)."""
        try:
            with open(self._path(key)) as handle:
                entry: dict[str, Any] = json.load(handle)
        except (OSError, ValueError):
            return None
        layer = entry.get("layer")
        if layer and not self.store.has_blob(layer["digest"]):
            return None
        return entry

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Remember what the step ``key`` made."""
        os.makedirs(self.root, exist_ok=True)
        write_atomic(self._path(key), json.dumps(entry, sort_keys=True).encode())

    def clear(self) -> list[dict[str, Any]]:
        """Forget every step (``minictr builder prune``); return the entries forgotten."""
        removed = []
        for name in sorted(os.listdir(self.root)) if os.path.isdir(self.root) else []:
            path = os.path.join(self.root, name)
            try:
                with open(path) as handle:
                    removed.append(json.load(handle))
            except (OSError, ValueError):
                removed.append({})  # torn: forgotten all the same
            os.unlink(path)
        return removed


def prune(store: ImageStore, state_root: str | None = None) -> tuple[int, int]:
    """Empty the build cache, then remove the layers only it kept (no image, no container uses them).

    Returns (entries forgotten, bytes freed). A later build simply runs those steps again.
    """
    from minictr.engine.images.prune import prune as prune_store

    entries = LayerCache(store).clear()
    blobs = {e["layer"]["digest"] for e in entries if e.get("layer")}
    diff_ids = {e["diff_id"] for e in entries if e.get("diff_id")}
    if not blobs and not diff_ids:
        return len(entries), 0
    return len(entries), prune_store(store, state_root, blobs=blobs, diff_ids=diff_ids).freed
