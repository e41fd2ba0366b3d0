"""Images: an OCI image-layout store, the offline busybox image, unpacking layers.

:mod:`.oci` is the format's vocabulary, :mod:`.store` the content-addressed
store, :mod:`.busybox` builds an image from the host's busybox-static,
:mod:`.unpack` turns layers into a root filesystem. Names load on first use,
so that starting a container imports neither gzip nor tarfile.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs every container start milliseconds; only checkers need it
if TYPE_CHECKING:
    from typing import Any

_EXPORTS = {
    "Image": "store",
    "ImageStore": "store",
    "build_busybox_image": "busybox",
    "find_static_busybox": "busybox",
    "normalize_reference": "store",
    "unpack_image": "unpack",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'minictr.engine.images' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
