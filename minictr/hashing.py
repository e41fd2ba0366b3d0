"""sha256 without OpenSSL, for the small things a container start hashes.

``hashlib`` loads OpenSSL (``_hashlib``) on import: 2-3 ms of every start,
to hash an image's manifest and config (their digests are checked on every
``run``) and a seccomp profile (its compiled filter is cached by digest).
The interpreter's own sha256 module hashes them as well, as the standard
library's ``random`` takes its sha512; blobs of megabytes (layers) still
go through hashlib.
"""

from __future__ import annotations


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 hex digits."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # Python 3.12 on
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]  # Python 3.11
        except ImportError:  # an interpreter built without them
            from hashlib import sha256
    digest: str = sha256(data).hexdigest()
    return digest
