"""Building images from Dockerfiles: parse (:mod:`.dockerfile`), stages, steps, the layer cache.

from minictr.engine.build import BuildOptions, build
image = build("app/", BuildOptions(tags=["app:1"]))
"""

from minictr.engine.build.builder import BuildOptions, build

__all__ = ["BuildOptions", "build"]
