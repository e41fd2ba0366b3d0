"""Building images from Dockerfiles: parse (:mod:`.dockerfile`), stages, steps, the layer cache.

from minictr.build import BuildOptions, build
image = build("app/", BuildOptions(tags=["app:1"]))
"""

from .builder import BuildOptions, build

__all__ = ["BuildOptions", "build"]
