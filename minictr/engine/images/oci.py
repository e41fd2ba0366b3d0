"""The OCI image format's vocabulary: media types, descriptors, digests, platforms.

An image is a tree of content-addressed JSON and tarballs::

    index.json ──> manifest ──┬──> config (Cmd, Env, rootfs.diff_ids…)
                              └──> layers (gzip'd tarballs, applied in order)

Every arrow is a *descriptor*: ``{mediaType, digest, size}``, where the digest
is ``sha256:`` + the hex SHA-256 of the exact bytes it points to.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

#: The annotation an OCI image layout uses to name a manifest (skopeo's ``oci:<dir>:<name>``).
REF_NAME = "org.opencontainers.image.ref.name"

# uname's machine -> OCI (architecture, variant)
_ARCHITECTURES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "arm": ("arm", "v7"),
    "i686": ("386", ""),
    "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> dict[str, str]:
    """This machine as an OCI platform, e.g. ``{'os': 'linux', 'architecture': 'amd64'}``."""
    import platform  # slow to import; only image building and pulling need it

    architecture, variant = normalize_architecture(platform.machine())
    result = {"os": "linux", "architecture": architecture}
    if variant:
        result["variant"] = variant
    return result


def normalize_architecture(architecture: str, variant: str = "") -> tuple[str, str]:
    """An architecture and variant as OCI names them: ``('aarch64', '')`` -> ``('arm64', 'v8')``.

    A missing variant takes the architecture's usual one (arm64 is v8, arm is v7).
    """
    name, usual = _ARCHITECTURES.get(architecture, (architecture, ""))
    return name, variant or usual


def sha256_digest(data: bytes) -> str:
    """The OCI digest of ``data``: ``'sha256:<64 hex digits>'`` (every ``run`` checks its manifest and config so)."""
    from minictr.hashing import sha256_hex  # not hashlib: see there

    return "sha256:" + sha256_hex(data)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces, so the same content always has the same digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """A descriptor pointing at ``data``."""
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def split_digest(digest: str) -> tuple[str, str]:
    """``'sha256:ab…'`` -> ``('sha256', 'ab…')``, refusing anything that is not a sane digest."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256" or len(encoded) != 64 or any(c not in "0123456789abcdef" for c in encoded):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return algorithm, encoded
