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
import fcntl
import json
import os
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterator

from ..errors import ImageError, ImageNotFound
from . import oci


def normalize_reference(reference: str) -> str:
    """The name an image is stored under: Docker's familiar form, ``:latest`` left out.

    ``busybox``, ``busybox:latest`` and ``docker.io/library/busybox:latest``
    all become ``busybox``; ``localhost:5000/app:1`` stays as it is.
    """
    name = reference.strip()
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.endswith(":latest") and "@" not in name:
        name = name[: -len(":latest")]
    if not name or any(c.isspace() for c in name) or name != name.lower().rstrip("/"):
        raise ImageError(f"invalid image reference {reference!r}: use lowercase NAME[:TAG]")
    return name


def split_reference(name: str) -> tuple[str, str]:
    """A stored name as (repository, tag): ``'busybox'`` -> ``('busybox', 'latest')``."""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1 :]
    return name, "latest"


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
        with open(os.path.join(self.root, ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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
        import hashlib

        self.ensure()
        hasher, size = hashlib.sha256(), 0
        directory = os.path.join(self.root, "blobs", "sha256")
        import tempfile

        fd, temp = tempfile.mkstemp(dir=directory, prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + hasher.hexdigest()
            if expected_digest is not None and digest != expected_digest:
                raise ImageError(f"blob digest mismatch: expected {expected_digest}, got {digest}")
            os.rename(temp, self.blob_path(digest))
            return digest, size
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

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
            return json.loads(self.read_blob(digest))
        except json.JSONDecodeError as exc:
            raise ImageError(f"blob {digest} is not valid JSON: {exc}") from exc

    # --- names ------------------------------------------------------------------

    def index(self) -> dict[str, Any]:
        """The parsed ``index.json`` (empty when the store is new)."""
        try:
            with open(self._index_path, "rb") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return json.loads(self._index_bytes([]))
        except json.JSONDecodeError as exc:
            raise ImageError(f"{self._index_path} is not valid JSON: {exc}") from exc

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
        name = normalize_reference(reference)
        for entry in self.index().get("manifests", []):
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
        """Write ``data`` to ``path`` so that readers see the old or the new content, never half."""
        import tempfile  # only writers need it; keep it off the container start path

        fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".partial-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp, 0o644)
            os.rename(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise


def _ref_name(entry: dict[str, Any]) -> str:
    return entry.get("annotations", {}).get(oci.REF_NAME, "")
