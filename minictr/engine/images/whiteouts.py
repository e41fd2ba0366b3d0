"""Deletions in layers: whiteouts as an image carries them, and as overlayfs keeps them on disk.

A layer is a tar stream that can only add files, so the OCI image spec marks
a deletion with an empty entry named ``.wh.<name>`` beside the deleted file,
and "everything below this directory is gone" with ``.wh..wh..opq`` inside
it. overlayfs keeps the same facts its own way in an upper directory: a
character device 0/0 in place of a deleted file, and the xattr
``overlay.opaque`` set to ``y`` on an opaque directory. Unpacking translates
the first form into the second; commit translates back.
"""

from __future__ import annotations

import os
import stat

#: A tar entry named ``.wh.<name>`` deletes ``<name>`` from the layers below.
WHITEOUT_PREFIX = ".wh."
#: A tar entry of this name makes its directory opaque: nothing below shows through.
OPAQUE_WHITEOUT = ".wh..wh..opq"
#: Names starting so are AUFS's own bookkeeping, never files of the image.
AUFS_META = ".wh..wh."
#: The xattrs overlayfs reads to make a directory opaque: as root, and inside a user namespace (``userxattr``).
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


def is_whiteout(path: str) -> bool:
    """True for an overlayfs whiteout: a character device with device number 0/0."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def is_opaque(path: str) -> bool:
    """True for a directory overlayfs treats as opaque (it hides the layers below)."""
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            continue
    return False
