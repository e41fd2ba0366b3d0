"""``minictr push``: an image from the store to a registry, uploading only what it lacks.

For each blob (the config and every layer), as the distribution spec says::

    HEAD /v2/<repo>/blobs/<digest>                       200: already there, nothing to do
    POST /v2/<repo>/blobs/uploads/?mount=<d>&from=<src>  201: mounted from another repository
    POST /v2/<repo>/blobs/uploads/                       202 + Location: an upload session
      PUT  <location>&digest=<d>   (the whole blob)       monolithic, for small blobs
      PATCH <location> Content-Range: a-b  (… repeated)   chunked, for large ones,
      PUT  <location>&digest=<d>   (empty)                then closed with the digest
    PUT /v2/<repo>/manifests/<tag>                        last: the image appears complete

A cross-repository mount is tried from every repository of the same
registry that this store knows holds the blob (a name it pulled or pushed),
so pushing ``app:2`` after ``base`` uploads no base layer twice.
"""

from __future__ import annotations

import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from minictr.engine.images.progress import Progress, Task
from minictr.engine.images.reference import Reference, parse
from minictr.engine.images.registry import Registry, push_scope
from minictr.engine.images.store import ImageStore
from minictr.errors import ImageError, RegistryError

#: Blobs above this size are uploaded in chunks of this size (registries cap request bodies; resumable in spirit).
CHUNK_SIZE = 16 << 20
JOBS = 3


def mount_sources(store: ImageStore, ref: Reference, digest: str) -> list[str]:
    """Repositories on ``ref``'s registry that this store's names say hold ``digest``."""
    sources = []
    for name in store.names():
        try:
            other = parse(name)
            if other.registry != ref.registry or other.repository == ref.repository or other.repository in sources:
                continue
            image = store.get(name)
        except ImageError:
            continue
        if digest in {image.config_digest, *(layer["digest"] for layer in image.layers)}:
            sources.append(other.repository)
    return sources


def _with_query(location: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(location)
    query = "&".join(filter(None, [parts.query, urllib.parse.urlencode(params)]))
    return urllib.parse.urlunsplit(parts._replace(query=query))


def push_blob(store: ImageStore, registry: Registry, ref: Reference, descriptor: dict[str, Any],
              progress: Progress, chunk_size: int = CHUNK_SIZE) -> str:  # fmt: skip
    """Make sure the registry has one blob; return what happened (``Pushed``, ``Mounted from …``, ``Layer already
    exists``).
    """
    digest, size = descriptor["digest"], int(descriptor["size"])
    repository = ref.repository
    task = progress.task(digest.partition(":")[2][:12], size)
    sources = mount_sources(store, ref, digest)
    scope = push_scope(repository, *sources)
    if registry.blob_exists(repository, digest, scope):
        task.advance(size)
        task.finish("Layer already exists")
        return "Layer already exists"
    location = ""
    for source in sources:
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        answer = registry.request("POST", f"/v2/{repository}/blobs/uploads/?{query}", scope=scope, ok=(201, 202))
        answer.discard()
        if answer.status == 201:
            task.advance(size)
            task.finish(f"Mounted from {source}")
            return f"Mounted from {source}"
        location = answer.headers.get("Location", "")  # the registry opened an upload instead
        break
    if not location:
        answer = registry.request("POST", f"/v2/{repository}/blobs/uploads/", scope=scope, ok=(202,))
        answer.discard()
        location = answer.headers.get("Location", "")
    if not location:
        raise RegistryError(f"{registry.host} opened an upload for {digest} without a Location")
    location = urllib.parse.urljoin(registry.base + "/", location)
    _upload(registry, location, scope, store.blob_path(digest), digest, size, task, chunk_size)
    task.advance(size)
    task.finish("Pushed")
    return "Pushed"


def _upload(registry: Registry, location: str, scope: str, path: str, digest: str, size: int, task: Task,
            chunk_size: int) -> None:  # fmt: skip
    """Send a blob to an upload the registry opened at ``location``: in one PUT, or in PATCHed chunks and a closing
    PUT when it is larger than ``chunk_size`` (the distribution spec's chunked upload).
    """
    with open(path, "rb") as blob:
        if size <= chunk_size:
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
            registry.request(
                "PUT", _with_query(location, digest=digest), scope=scope, headers=headers, body=blob, ok=(201,)
            ).discard()
            return
        offset = 0
        while offset < size:
            chunk = blob.read(chunk_size)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(chunk)),
                       "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}  # fmt: skip
            answer = registry.request("PATCH", location, scope=scope, headers=headers, body=chunk, ok=(202,))
            answer.discard()
            location = urllib.parse.urljoin(location, answer.headers.get("Location", location))
            offset += len(chunk)
            task.advance(len(chunk))
        task.advance(-size)
        registry.request(
            "PUT", _with_query(location, digest=digest), scope=scope, headers={"Content-Length": "0"}, body=b"",
            ok=(201,),
        ).discard()  # fmt: skip


def push(store: ImageStore, reference: str, *, progress: Progress | None = None, registry: Registry | None = None,
         chunk_size: int = CHUNK_SIZE, jobs: int = JOBS) -> tuple[str, dict[str, str]]:  # fmt: skip
    """Push the stored image ``reference`` to the registry its name says; return
    (manifest digest, what each blob did).
    """
    ref = parse(reference)
    image = store.get(reference)
    registry = registry or Registry(ref.api_host)
    progress = progress or Progress()
    descriptors = [image.manifest["config"], *image.layers]
    for descriptor in descriptors:
        if not os.path.exists(store.blob_path(descriptor["digest"])):
            raise ImageError(
                f"{image.name}: blob {descriptor['digest']} is missing from the store (pull the image again)"
            )
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="minictr-push") as pool:
            futures = {
                d["digest"]: pool.submit(push_blob, store, registry, ref, d, progress, chunk_size) for d in descriptors
            }
            outcome = {digest: future.result() for digest, future in futures.items()}
    finally:
        progress.close()
    manifest = store.read_blob(image.manifest_digest)
    media_type = image.manifest.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
    tag = ref.tag or ref.digest or "latest"
    answer = registry.request("PUT", f"/v2/{ref.repository}/manifests/{tag}", scope=push_scope(ref.repository),
                              headers={"Content-Type": media_type}, body=manifest, ok=(201,))  # fmt: skip
    answer.discard()
    returned = answer.headers.get("Docker-Content-Digest", image.manifest_digest)
    if returned != image.manifest_digest:
        raise RegistryError(f"{registry.host} stored the manifest as {returned}, not {image.manifest_digest}")
    return image.manifest_digest, outcome
