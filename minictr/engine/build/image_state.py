"""The image a build stage makes, step by step: its config, its layers, its history, and the time of its last change.

A stage starts from its base (an image, an earlier stage or ``scratch``) and
each instruction records one history entry: a layer step's with the layer it
made, a config-only one as an ``empty_layer``. The image written at the end
is created at the time of its last change, so a rebuild from the cache gives
the very same image.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from minictr.engine.build.instructions import Config
from minictr.engine.images.store import Image

#: The creation time of an image with no history (``FROM scratch``).
EPOCH = "1970-01-01T00:00:00Z"


@dataclass
class State:
    """An image being built: its config, layers, cache key and the time of its last change."""

    config: dict[str, Any]
    layers: list[dict[str, Any]]
    key: str
    created: str
    settings: Config = field(init=False)

    def __post_init__(self) -> None:
        self.settings = Config(self.config.setdefault("config", {}))

    def image(self) -> Image:
        """The state as an image object (not stored): what a RUN's container starts from.

        Without its VOLUMEs: a build step's container gets no volumes, its changes all go to the layer.
        """
        config = {**self.config, "config": {k: v for k, v in self.config["config"].items() if k != "Volumes"}}
        return Image("build-step", "", {"layers": self.layers}, "", config)

    def record(self, created_by: str, entry: dict[str, Any] | None = None) -> None:
        """Add a history entry; with ``entry`` (a layer step's result) its layer too."""
        history: dict[str, Any] = {"created": self.created, "created_by": created_by, "comment": "minictr build"}
        if entry is not None:
            self.created = history["created"] = entry["created"]
        if entry is not None and entry.get("layer"):
            self.layers.append(entry["layer"])
            self.config["rootfs"]["diff_ids"].append(entry["diff_id"])
        else:
            history["empty_layer"] = True
        self.config["history"].append(history)

    def final(self) -> dict[str, Any]:
        """The image config as it is written: Docker's fields, created at the last change."""
        config = copy.deepcopy(self.config)
        author = config["config"].pop("_author", None)
        if author:
            config["author"] = author
        config["created"] = self.created
        return config


def now() -> str:
    """This moment, as image configs write a time (UTC, to the second)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
