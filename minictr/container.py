"""Running an image as a container: the high-level layer, as Docker sits above runc.

:func:`run` resolves the image, unpacks it once into a shared read-only
cache, gives the container a copy-on-write root of its own (overlayfs, or a
copy where overlayfs is unavailable), turns the image config and the user's
options into an OCI runtime-spec config, and hands that to the runtime
(:mod:`minictr.process`).

Each container owns a directory under the state root
(``/run/minictr/containers/<id>``) holding everything it created on the host;
it is removed when the container exits, and directories left by a minictr
that was killed are removed by the next :func:`run` (:func:`remove_stale`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import paths
from .errors import ContainerError, ImageNotFound, UsageError
from .images.store import Image, ImageStore
from .process.parent import ContainerProcess, spawn
from .spec import DEFAULT_PATH, PROC_MOUNT, default_spec

ISOLATIONS = ("chroot",)


@dataclass
class RunOptions:
    """What ``minictr run`` was asked for, beyond the image and command."""

    isolation: str = "chroot"
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    entrypoint: str | None = None
    mount_proc: bool = True


def image_store(data_root: str | None = None) -> ImageStore:
    """The store under the data root (``/var/lib/minictr/images`` by default)."""
    return ImageStore(os.path.join(data_root or paths.data_root(), "images"))


def get_image(store: ImageStore, reference: str) -> Image:
    """Resolve ``reference``; the offline ``busybox`` image is built on first use, as Docker pulls."""
    try:
        return store.get(reference)
    except ImageNotFound:
        from .images.busybox import build_busybox_image
        from .images.store import normalize_reference

        if normalize_reference(reference) != "busybox":
            raise
        build_busybox_image(store)
        return store.get(reference)


def unpacked_rootfs(store: ImageStore, image: Image) -> str:
    """The image's layers unpacked once, shared read-only by its containers."""
    cache = os.path.join(os.path.dirname(store.root), "rootfs", image.id.split(":", 1)[1])
    if not os.path.isdir(cache):
        from .images.unpack import unpack_image

        try:
            unpack_image(store, image, cache)
        except FileExistsError:
            pass  # another run unpacked it at the same moment
        except OSError as exc:
            if not os.path.isdir(cache):
                raise ContainerError(f"unpacking {image.name}: {exc}") from exc
    return cache


def command_for(config: dict[str, Any], command: list[str], entrypoint: str | None) -> list[str]:
    """Docker's rules: ``--entrypoint`` replaces Entrypoint (and drops Cmd); arguments replace Cmd."""
    image_entrypoint = list(config.get("Entrypoint") or [])
    image_cmd = list(config.get("Cmd") or [])
    if entrypoint is not None:
        return [entrypoint, *command] if entrypoint else list(command)
    return image_entrypoint + (list(command) if command else image_cmd)


def container_spec(image: Image, rootfs: str, command: list[str], options: RunOptions) -> dict[str, Any]:
    """The OCI runtime-spec config for one container of ``image``."""
    config = image.config.get("config", {})
    args = command_for(config, command, options.entrypoint)
    if not args:
        raise UsageError(f"no command: {image.name} has no Cmd or Entrypoint, so give one after the image")
    env = list(config.get("Env") or [DEFAULT_PATH])
    for item in options.env:
        if "=" not in item:
            value = os.environ.get(item)
            if value is None:
                continue  # Docker's `-e NAME` with NAME unset passes nothing
            item = f"{item}={value}"
        env = [e for e in env if e.split("=", 1)[0] != item.split("=", 1)[0]] + [item]
    cwd = options.workdir or config.get("WorkingDir") or "/"
    mounts = [PROC_MOUNT] if options.mount_proc else []
    return default_spec(rootfs, args, env=env, cwd=cwd, mounts=mounts)


def overlay_supported() -> bool:
    """True when the kernel knows overlayfs (it may still refuse some upper directories)."""
    try:
        with open("/proc/filesystems") as handle:
            return any(line.split()[-1] == "overlay" for line in handle if line.strip())
    except OSError:
        return False


@contextlib.contextmanager
def container_directory(state_root: str) -> Iterator[str]:
    """A fresh ``containers/<id>`` directory recording this process, removed afterwards."""
    base = os.path.join(state_root, "containers")
    os.makedirs(base, exist_ok=True)
    remove_stale(base)
    directory = os.path.join(base, os.urandom(6).hex())
    os.makedirs(directory)
    with open(os.path.join(directory, "owner.json"), "w") as handle:
        json.dump({"pid": os.getpid(), "start": _start_time(os.getpid())}, handle)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def remove_stale(base: str) -> list[str]:
    """Remove container directories whose minictr process is gone (killed with -9); return them."""
    removed = []
    for name in os.listdir(base) if os.path.isdir(base) else []:
        directory = os.path.join(base, name)
        try:
            with open(os.path.join(directory, "owner.json")) as handle:
                owner = json.load(handle)
        except (OSError, ValueError):
            owner = {}
        if owner and _start_time(owner["pid"]) == owner.get("start"):
            continue  # its minictr still runs
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


def _start_time(pid: int) -> str:
    """A process's start time (field 22 of /proc/<pid>/stat): with the pid, it names one process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def prepare_root(directory: str, lower: str) -> dict[str, Any] | None:
    """Make ``<directory>/rootfs``; return an overlay plan for the child, or None after copying."""
    merged = os.path.join(directory, "rootfs")
    if overlay_supported():
        for sub in ("rootfs", "upper", "work"):
            os.makedirs(os.path.join(directory, sub))
        return {"lowerdirs": [lower], "upperdir": os.path.join(directory, "upper"), "workdir": os.path.join(directory, "work")}
    copy_tree(lower, merged)
    return None


def copy_tree(source: str, dest: str) -> None:
    """Copy a root filesystem keeping hard links, owners, modes and times (``cp -a``).

    ``shutil.copytree`` would turn busybox's hundreds of hard links into as
    many copies of a 2 MB binary.
    """
    result = subprocess.run(["cp", "-a", "--", source, dest], capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        raise ContainerError(f"copying the root filesystem to {dest}: {result.stderr.strip()}")


def run(
    reference: str,
    command: list[str] | None = None,
    options: RunOptions | None = None,
    *,
    data_root: str | None = None,
    state_root: str | None = None,
    capture: bool = False,
) -> tuple[int, bytes, bytes]:
    """Run ``command`` (or the image's default) in a new container of ``reference`` and wait.

    Returns (exit status, stdout, stderr); the output is empty unless
    ``capture`` — otherwise the container shares this process's terminal.
    Signals SIGINT, SIGTERM and SIGHUP sent to this process are passed on.
    """
    options = options or RunOptions()
    if options.isolation not in ISOLATIONS:
        raise UsageError(f"--isolation {options.isolation!r}: choose one of {', '.join(ISOLATIONS)}")
    store = image_store(data_root)
    image = get_image(store, reference)
    lower = unpacked_rootfs(store, image)
    with container_directory(state_root or paths.state_root()) as directory:
        overlay = prepare_root(directory, lower)
        spec = container_spec(image, os.path.join(directory, "rootfs"), command or [], options)
        pipe = subprocess.PIPE if capture else None
        try:
            process = spawn(spec, overlay=overlay, stdout=pipe, stderr=pipe, die_with_parent=True)
        except ContainerError as exc:
            if overlay is None or exc.step != "mount_overlay":
                raise
            # overlayfs refused this upper directory (e.g. it is itself on overlayfs): copy instead
            os.rmdir(os.path.join(directory, "rootfs"))
            copy_tree(lower, os.path.join(directory, "rootfs"))
            process = spawn(spec, stdout=pipe, stderr=pipe, die_with_parent=True)
        with _forward_signals(process):
            process.start()
            out, err, code = process.communicate()
    return code, out, err


@contextlib.contextmanager
def _forward_signals(process: ContainerProcess) -> Iterator[None]:
    """Pass SIGINT, SIGTERM and SIGHUP on to the container, as ``docker run`` does (--sig-proxy)."""
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    try:
        previous = {sig: signal.signal(sig, lambda sig, _frame: process.kill(sig)) for sig in forwarded}
    except ValueError:  # not the main thread (a notebook's worker): nothing to forward
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
