"""A content-addressed image store laid out as an OCI image layout.

On disk (``<data-root>/images``) it is exactly what the OCI image-layout
specification describes, so skopeo and umoci read it as it is
(``skopeo inspect oci:/var/lib/minictr/images:busybox``)::

    oci-layout                {"imageLayoutVersion": "1.0.0"}
    index.json                the tagged manifests, named by org.opencontainers.image.ref.name
    blobs/sha256/<hex>        manifests, configs and layers, each named by its own digest

Blobs are written to a temporary file and renamed into place, so a blob is
either complete or absent; ``index.json`` is rewritten the same way under a
file lock, so two writers never lose each other's tags.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

from minictr import faults
from minictr.engine.images import oci
from minictr.errors import ImageError, ImageNotFound
from minictr.files import locked, write_atomic


def normalize_reference(reference: str) -> str:
    """The name an image is stored under: Docker's familiar form, ``:latest`` left out.

    ``busybox``, ``busybox:latest`` and ``docker.io/library/busybox:latest``
    all become ``busybox``; ``localhost:5000/app:1`` stays as it is.
    """
    from minictr.engine.images.reference import parse

    return parse(reference).familiar()


def split_reference(name: str) -> tuple[str, str]:
    """A stored name as (repository, tag): ``'busybox'`` -> ``('busybox',
    'latest')``, a digest name -> tag ``<none>``.
    """
    name, at, _digest = name.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "<none>" if at else "latest"


@dataclass(frozen=True)
class Image:
    """One image in the store, resolved from its name to its parts."""

    name: str
    manifest_digest: str
    manifest: dict[str, Any]
    config_digest: str
    config: dict[str, Any]

    @property
    def id(self) -> str:
        """The image ID as Docker shows it: the config's digest."""
        return self.config_digest

    @property
    def layers(self) -> list[dict[str, Any]]:
        """The layer descriptors, bottom layer first."""
        return list(self.manifest.get("layers", []))

    @property
    def size(self) -> int:
        """Bytes of compressed layers, as stored."""
        return sum(int(layer.get("size", 0)) for layer in self.layers)


class ImageStore:
    """The OCI image layout under ``root``, created on first use."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)

    # --- layout ---------------------------------------------------------------

    def ensure(self) -> None:
        """Create the layout's skeleton if it is not there yet."""
        os.makedirs(os.path.join(self.root, "blobs", "sha256"), exist_ok=True)
        layout = os.path.join(self.root, "oci-layout")
        if not os.path.exists(layout):
            self._write_atomic(layout, json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        if not os.path.exists(self._index_path):
            self._write_atomic(self._index_path, self._index_bytes([]))

    @property
    def _index_path(self) -> str:
        return os.path.join(self.root, "index.json")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's write lock (a ``flock`` on ``<root>/.lock``)."""
        self.ensure()
        with locked(os.path.join(self.root, ".lock")):
            yield

    # --- blobs ------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        """Where the blob with ``digest`` lives (whether or not it is there)."""
        try:
            algorithm, encoded = oci.split_digest(digest)
        except ValueError as exc:
            raise ImageError(str(exc)) from exc
        return os.path.join(self.root, "blobs", algorithm, encoded)

    def has_blob(self, digest: str) -> bool:
        """True when the blob is stored."""
        return os.path.exists(self.blob_path(digest))

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` and return its digest (idempotent)."""
        digest = oci.sha256_digest(data)
        path = self.blob_path(digest)
        if not os.path.exists(path):
            self.ensure()
            self._write_atomic(path, data)
        return digest

    def put_blob_stream(self, stream: BinaryIO, expected_digest: str | None = None) -> tuple[str, int]:
        """Store a blob read from ``stream`` in chunks; return (digest, size).

        With ``expected_digest`` a mismatch is an :class:`ImageError` and
        nothing is stored.
        """
        with self.blob_writer(expected_digest) as writer:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                writer.write(chunk)
            return writer.commit(), writer.offset

    def blob_writer(self, digest: str | None = None, size: int | None = None) -> BlobWriter:
        """A :class:`BlobWriter` for a blob expected to have ``digest`` and ``size`` (when given)."""
        self.ensure()
        return BlobWriter(self, digest, size)

    @contextlib.contextmanager
    def blob_lock(self, digest: str) -> Iterator[None]:
        """Hold the lock of one blob: of two concurrent pulls, one downloads it and the other finds it there."""
        encoded = os.path.basename(self.blob_path(digest))
        with locked(os.path.join(self.root, ".locks", encoded)):
            yield

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Held (shared) while blobs are added and not yet named; :meth:`gc` takes it exclusively."""
        self.ensure()
        with locked(os.path.join(self.root, ".gc.lock"), shared=True):
            yield

    def read_blob(self, digest: str) -> bytes:
        """Return a blob's bytes, verified against its digest."""
        try:
            with open(self.blob_path(digest), "rb") as handle:
                data = handle.read()
        except FileNotFoundError as exc:
            raise ImageError(f"blob {digest} is missing from the store at {self.root}") from exc
        if oci.sha256_digest(data) != digest:
            raise ImageError(f"blob {digest} is corrupt: its content does not match its digest")
        return data

    def read_json(self, digest: str) -> dict[str, Any]:
        """Return a JSON blob (a manifest or a config), verified and parsed."""
        try:
            parsed: dict[str, Any] = json.loads(self.read_blob(digest))
            return parsed
        except json.JSONDecodeError as exc:
            raise ImageError(f"blob {digest} is not valid JSON: {exc}") from exc

    # --- names ------------------------------------------------------------------

    def index(self) -> dict[str, Any]:
        """The parsed ``index.json`` (empty when the store is new)."""
        try:
            with open(self._index_path, "rb") as handle:
                index: dict[str, Any] = json.load(handle)
        except FileNotFoundError:
            index = json.loads(self._index_bytes([]))
        except json.JSONDecodeError as exc:
            raise ImageError(f"{self._index_path} is not valid JSON: {exc}") from exc
        return index

    def tag(self, reference: str, manifest_descriptor: dict[str, Any]) -> str:
        """Point ``reference`` at a manifest (replacing what it named before); return the stored name."""
        name = normalize_reference(reference)
        entry = dict(manifest_descriptor)
        entry["annotations"] = {**entry.get("annotations", {}), oci.REF_NAME: name}
        with self.lock():
            manifests = [m for m in self.index().get("manifests", []) if _ref_name(m) != name]
            manifests.append(entry)
            self._write_atomic(self._index_path, self._index_bytes(manifests))
        return name

    def untag(self, reference: str) -> None:
        """Forget the name ``reference`` (blobs stay until pruned)."""
        name = normalize_reference(reference)
        with self.lock():
            manifests = self.index().get("manifests", [])
            kept = [m for m in manifests if _ref_name(m) != name]
            if len(kept) == len(manifests):
                raise ImageNotFound(f"no such image: {reference}")
            self._write_atomic(self._index_path, self._index_bytes(kept))

    def names(self) -> list[str]:
        """Every stored name, sorted."""
        return sorted(n for n in (_ref_name(m) for m in self.index().get("manifests", [])) if n)

    def get(self, reference: str) -> Image:
        """Resolve a name to its manifest and config; :class:`ImageNotFound` when absent."""
        entries = self.index().get("manifests", [])
        # a name as stored needs no parsing (the regular expressions cost a container start milliseconds)
        name = reference if any(_ref_name(e) == reference for e in entries) else normalize_reference(reference)
        for entry in entries:
            if _ref_name(entry) == name:
                manifest = self.read_json(entry["digest"])
                config_digest = manifest["config"]["digest"]
                return Image(name, entry["digest"], manifest, config_digest, self.read_json(config_digest))
        raise ImageNotFound(f"no such image: {reference} (minictr images lists what the store has)")

    def images(self) -> list[Image]:
        """Every named image, sorted by name."""
        return [self.get(name) for name in self.names()]

    # --- helpers ----------------------------------------------------------------

    @staticmethod
    def _index_bytes(manifests: list[dict[str, Any]]) -> bytes:
        index = {"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": manifests}
        return json.dumps(index, indent=2).encode() + b"\n"

    @staticmethod
    def _write_atomic(path: str, data: bytes) -> None:
        write_atomic(path, data)


class BlobWriter:
    """A blob being written: to a temporary file, hashed as it comes, renamed into place when verified.

    Writing more than the declared ``size`` is an :class:`ImageError` at once
    (a registry, or an archive, cannot make minictr store a blob larger than
    its manifest says); :meth:`commit` checks the size and the digest. A
    writer that is not committed leaves nothing behind (use it in ``with``).
    """

    def __init__(self, store: ImageStore, digest: str | None, size: int | None) -> None:
        import hashlib
        import tempfile

        if digest is not None:
            oci.split_digest(digest)  # refuse a malformed digest before writing anything
        self.store, self.digest, self.size = store, digest, size
        self._hashlib = hashlib
        self.hasher = hashlib.sha256()
        self.offset = 0
        fd, self.temp = tempfile.mkstemp(dir=os.path.join(store.root, "blobs", "sha256"), prefix=".partial-")
        self.file = os.fdopen(fd, "wb")

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data``; refuse it if the blob would grow beyond its declared size."""
        if self.size is not None and self.offset + len(data) > self.size:
            raise ImageError(f"blob {self.digest} is larger than its declared size of {self.size} bytes: refused")
        self.hasher.update(data)
        self.file.write(data)
        self.offset += len(data)
        faults.point("blob")

    def flush(self) -> None:
        """Push what was written to the temporary file (a file object's method: ``gzip.GzipFile`` writes here)."""
        self.file.flush()

    def reset(self) -> None:
        """Start again from byte 0 (a server that cannot resume)."""
        self.file.seek(0)
        self.file.truncate()
        self.hasher = self._hashlib.sha256()
        self.offset = 0

    def commit(self) -> str:
        """Verify size and digest, then move the blob into place; return its digest."""
        if self.size is not None and self.offset != self.size:
            raise ImageError(
                f"blob {self.digest} is shorter than its declared size: {self.offset} of {self.size} bytes"
            )
        digest = "sha256:" + self.hasher.hexdigest()
        if self.digest is not None and digest != self.digest:
            raise ImageError(f"blob digest mismatch: expected {self.digest}, got {digest} (the content was altered)")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.chmod(self.temp, 0o644)
        os.rename(self.temp, self.store.blob_path(digest))
        return digest

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


def _ref_name(entry: dict[str, Any]) -> str:
    name: str = entry.get("annotations", {}).get(oci.REF_NAME, "")
    return name
