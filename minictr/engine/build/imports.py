"""``minictr import``: a root filesystem (a directory, or a tar archive of one) as a one-layer image.

This is how a tree made by other tools becomes an image: ``debootstrap``'s
Debian (``scripts/debian-image.sh`` makes ``minictr/debian:bookworm`` this
way), a chroot built by hand in notebook 01. The directory is written as
one layer by commit's code (owners, modes, times, device nodes and xattrs
kept), and ``--change`` takes Dockerfile config instructions (``ENV``,
``CMD``, ``WORKDIR``…) as ``docker import --change`` does.
"""

from __future__ import annotations

import datetime
import os
import shutil
import tarfile
import tempfile
from typing import Any

from minictr.engine.images import oci
from minictr.engine.images.commit import store_image, store_layer
from minictr.engine.images.store import Image, ImageStore
from minictr.errors import UsageError


def import_rootfs(store: ImageStore, source: str, reference: str, *, changes: list[str] | None = None,
                  message: str = "") -> Image:  # fmt: skip
    """Store the root filesystem at ``source`` (a directory or a tar archive) as ``reference``; return it."""
    if os.path.isdir(source):
        return _import_directory(store, source, reference, changes or [], message)
    if not (os.path.isfile(source) and tarfile.is_tarfile(source)):
        raise UsageError(f"import: {source} is neither a directory nor a tar archive")
    staging = tempfile.mkdtemp(prefix=".import-", dir=os.path.dirname(store.root))
    try:
        os.chmod(staging, 0o755)
        with tarfile.open(source, "r:*") as archive:
            archive.extractall(staging, numeric_owner=True, filter="fully_trusted" if os.geteuid() == 0 else "tar")
        return _import_directory(store, staging, reference, changes or [], message)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _import_directory(store: ImageStore, directory: str, reference: str, changes: list[str], message: str) -> Image:
    from minictr.runtime.spec import DEFAULT_PATH

    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    settings = apply_changes({"Env": [DEFAULT_PATH]}, changes)
    with store.in_use():
        layer, diff_id = store_layer(store, directory)
        history: dict[str, Any] = {
            "created": created,
            "created_by": "minictr import",
            **({"comment": message} if message else {}),
        }
        config = {**oci.host_platform(), "created": created, "config": settings,
                  "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [history]}  # fmt: skip
        return store_image(store, config, [layer], reference)


def apply_changes(settings: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Dockerfile config instructions (``ENV A=1``, ``CMD ["sh"]``…) applied to an image's ``config`` object."""
    if not changes:
        return settings
    from minictr.engine.build.dockerfile import parse
    from minictr.engine.build.instructions import CONFIG_ONLY, Config, apply

    config = Config(settings)
    for instruction in parse("FROM scratch\n" + "\n".join(changes), "--change")[1:]:
        if instruction.keyword == "WORKDIR":
            config.values["WorkingDir"] = os.path.join("/", config.lexer(instruction).expand(instruction.value))
        elif instruction.keyword in CONFIG_ONLY - {"MAINTAINER"}:
            apply(config, instruction)
        else:
            raise UsageError(
                f"--change {instruction.original!r}: only config instructions (ENV, CMD, WORKDIR…) can be changed"
            )
    return config.values
