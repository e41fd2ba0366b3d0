"""A container's root, prepared on the host: from an image reference to the directory it runs in.

:func:`get_image` resolves the reference in the store (pulling it when the
store lacks it); :func:`root_layers` unpacks each of its layers once into a
shared read-only directory (or one flattened copy, where overlayfs cannot
stack them), shifted to a user namespace's root where one is mapped;
:func:`prepare_root` then gives the container a copy-on-write root of its
own: an overlay plan (the layers under a per-container upper directory) that
the child mounts, or a flattened copy where overlayfs is unavailable.
:func:`add_init_layer` puts the mount points of bind-mounted files in a
layer of their own.

This is the host's side; what the container's process does with the root
(mounts, /dev, pivot_root) is :mod:`minictr.kernel.rootfs`.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys

TYPE_CHECKING = False  # typing is for checkers; the start path does without it
if TYPE_CHECKING:
    from typing import Any

from minictr import paths
from minictr.engine.images.store import Image, ImageStore
from minictr.errors import ContainerError, ImageNotFound, UsageError


def image_store(data_root: str | None = None) -> ImageStore:
    """The store under the data root (``/var/lib/minictr/images`` by default)."""
    return ImageStore(os.path.join(data_root or paths.data_root(), "images"))


PULL_POLICIES = ("missing", "never", "always")


def get_image(store: ImageStore, reference: str, platform: str | None = None, policy: str = "missing") -> Image:
    """Resolve ``reference``, pulling it when the store lacks it, as ``docker run --pull missing`` does.

    The offline ``busybox`` is the exception: it is built from the host's
    busybox-static, so the tutorial works without any registry.
    """
    if policy not in PULL_POLICIES:
        raise UsageError(f"--pull {policy!r}: choose one of {', '.join(PULL_POLICIES)}")
    try:
        if policy != "always":
            return store.get(reference)
    except ImageNotFound:
        from minictr.engine.images.store import normalize_reference

        if normalize_reference(reference) == "busybox":
            from minictr.engine.images.busybox import build_busybox_image

            build_busybox_image(store)
            return store.get(reference)
        if policy == "never":
            raise
    from minictr.engine.images.progress import make_progress
    from minictr.engine.images.pull import pull

    if policy == "missing":
        print(f"Unable to find image '{reference}' locally", file=sys.stderr)
    return pull(store, reference, platform=platform, progress=make_progress())


def unpacked_rootfs(store: ImageStore, image: Image) -> str:
    """The image's layers unpacked once, shared read-only by its containers."""
    cache = os.path.join(os.path.dirname(store.root), "rootfs", image.id.split(":", 1)[1])
    if not os.path.isdir(cache):
        from minictr.engine.images.unpack import unpack_image

        try:
            unpack_image(store, image, cache)
        except FileExistsError:
            pass  # another run unpacked it at the same moment
        except OSError as exc:
            if not os.path.isdir(cache):
                raise ContainerError(f"unpacking {image.name}: {exc}") from exc
    return cache


#: Longer overlay options than this do not fit in the page the mount(2) data must fit in: flatten instead.
MAX_LOWERDIR = 3500


def root_layers(store: ImageStore, image: Image, owner: int = 0) -> list[str]:
    """The directories to stack for ``image`` (bottom first), each layer unpacked once.

    Per layer as root where overlayfs exists; otherwise (rootless, no
    overlayfs, a lowerdir list too long for mount(2)) one flattened copy.
    With ``owner`` (a user namespace's root on the host) the directories are
    shifted copies owned by it.
    """
    if os.geteuid() == 0 and overlay_supported():
        from minictr.engine.images.layers import layers_root, unpack_layers

        layers = unpack_layers(store, image)
        if not layers:  # overlayfs needs a lower directory: an image without layers gets an empty one
            layers = [os.path.join(layers_root(store), ".empty")]
            os.makedirs(layers[0], mode=0o755, exist_ok=True)
        if owner:
            layers = [shifted_rootfs(layer, owner) for layer in layers]
        if len(":".join(layers)) <= MAX_LOWERDIR:
            return layers
    lower = unpacked_rootfs(store, image)
    return [shifted_rootfs(lower, owner) if owner else lower]


def shifted_rootfs(lower: str, host_id: int) -> str:
    """A copy of ``lower`` whose owners are moved up by ``host_id`` (cached beside it).

    In a user namespace mapping 0 -> ``host_id``, files owned by the host's
    root would show up as ``nobody`` inside, and the container's root could
    not change them. Shifting the copy's owners makes them the container's own.
    Device nodes the image carries are left out of the copy (with one warning):
    a user namespace's root may not make them, so it is not given them either.
    Overlayfs whiteouts (character devices 0/0) stay.
    """
    shifted = f"{lower}.shift-{host_id}"
    if os.path.isdir(shifted):
        return shifted
    staging = f"{shifted}.partial-{os.getpid()}"
    import shutil  # only here: zlib, bz2 and lzma come with it (a start needs no shifted copy)

    shutil.rmtree(staging, ignore_errors=True)
    copy_tree(lower, staging)
    paths_to_shift = [staging]
    for directory, dirs, files in os.walk(staging):
        paths_to_shift.extend(os.path.join(directory, name) for name in (*dirs, *files))
    dropped = 0
    for path in paths_to_shift:
        info = os.lstat(path)
        if (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)) and info.st_rdev != 0:
            os.unlink(path)
            dropped += 1
            continue
        os.lchown(path, info.st_uid + host_id, info.st_gid + host_id)
        if not os.path.islink(path):
            os.chmod(path, info.st_mode & 0o7777)  # chown clears setuid and setgid bits
    if dropped:
        print(f"minictr: warning: {os.path.basename(lower)[:12]}: skipped {dropped} device node(s) in the copy "
              "for a user namespace (its root may not have them)", file=sys.stderr)  # fmt: skip
    try:
        os.rename(staging, shifted)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another run finished first
    return shifted


def overlay_supported() -> bool:
    """True when the kernel knows overlayfs (it may still refuse some upper directories)."""
    try:
        with open("/proc/filesystems") as handle:
            return any(line.split()[-1] == "overlay" for line in handle if line.strip())
    except OSError:
        return False


def prepare_root(directory: str, lowers: list[str], owner: int = 0) -> dict[str, Any] | None:
    """Make ``<directory>/rootfs``; return an overlay plan for the child, or None after copying.

    ``lowers`` are the image's directories, bottom first (overlayfs wants
    them top first). ``owner`` is the host uid of the container's root (user
    namespaces): the overlay's upper layer must be its own to write in.
    """
    merged = os.path.join(directory, "rootfs")
    if overlay_supported():
        for sub in ("rootfs", "upper", "work"):
            os.makedirs(os.path.join(directory, sub))
            if os.geteuid() == 0:
                os.chown(os.path.join(directory, sub), owner, owner)
        upper, work = os.path.join(directory, "upper"), os.path.join(directory, "work")
        return {"lowerdirs": list(reversed(lowers)), "upperdir": upper, "workdir": work}
    copy_tree(_flat(lowers), merged)
    return None


def add_init_layer(
    directory: str, overlay: dict[str, Any], spec: dict[str, Any], lowers: list[str], owner: int
) -> None:
    """Put the mount points of bind-mounted files in a layer of their own, above the image (Docker's "init" layer).

    Mounting /etc/hosts needs a file there to mount on. Made in the
    container's upper layer, it would show up in ``diff`` and be committed
    into the next image; in a read-only layer of its own it is neither.
    """
    files = [
        m["destination"]
        for m in spec.get("mounts", [])
        if m.get("type") == "bind" and os.path.isfile(m.get("source", ""))
    ]
    if not files:
        return
    init = os.path.join(directory, "init")
    parents = set()
    for destination in files:
        relative = destination.strip("/")
        parents.add(os.path.dirname(relative))
        os.makedirs(os.path.join(init, os.path.dirname(relative)), exist_ok=True)
        with open(os.path.join(init, relative), "a"):
            pass
        if os.geteuid() == 0:
            os.chown(os.path.join(init, relative), owner, owner)
    for parent in sorted(parents - {""}, key=len, reverse=True):  # after the files: their creation changed the times
        copy_directory_attributes(lowers, parent, os.path.join(init, parent), owner)
    overlay["lowerdirs"].insert(0, init)


def copy_directory_attributes(lowers: list[str], relative: str, made: str, owner: int) -> None:
    """Give a directory made above the image the owner, mode and times it has in the image (the top layer wins).

    Used for the init layer's directories and for the parents of what a build's COPY adds.
    """
    for layer in reversed(lowers):  # the top layer first
        found = os.path.join(layer, relative)
        if os.path.isdir(found) and not os.path.islink(found):
            info = os.stat(found)
            os.chmod(made, info.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(made, info.st_uid, info.st_gid)
            os.utime(made, ns=(info.st_atime_ns, info.st_mtime_ns))
            return
    if os.geteuid() == 0:
        os.chown(made, owner, owner)


def _flat(lowers: list[str]) -> str:
    if len(lowers) != 1:
        raise ContainerError("overlayfs is unavailable, and a copy needs the flattened image (internal error)")
    return lowers[0]


def copy_tree(source: str, dest: str) -> None:
    """Copy a root filesystem keeping hard links, owners, modes and times (``cp -a``).

    ``shutil.copytree`` would turn busybox's hundreds of hard links into as
    many copies of a 2 MB binary.
    """
    result = subprocess.run(["cp", "-a", "--", source, dest], capture_output=True, text=True)
    if result.returncode != 0:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        raise ContainerError(f"copying the root filesystem to {dest}: {result.stderr.strip()}")


def image_record(image: Image, lowers: list[str], overlay: dict[str, Any] | None, owner: int) -> dict[str, Any]:
    """What a container's state.json keeps of its image: for prune, commit, stop and later features."""
    from minictr.engine.images.runconfig import recorded

    return {
        "image": image.name, "image_id": image.id, "manifest_digest": image.manifest_digest,
        "lowerdirs": lowers, "upperdir": overlay["upperdir"] if overlay else "", "root_owner": owner,
        "config": recorded(image.config.get("config", {})),
    }  # fmt: skip
