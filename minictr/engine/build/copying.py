"""COPY and ADD: files from the build context (or another stage, or an image) as a layer of their own.

No container is needed: the files are laid out in a staging directory
exactly where they land in the image, with the directories above them made
as the image already has them (owner, mode, times) so the layer changes
nothing else, and that directory becomes the layer (:func:`..images.commit.store_layer`).

Docker's destination rules: a destination ending in ``/``, or several
sources, or an existing directory in the image, is a directory the sources
go into (a source directory's *contents*, not the directory itself); a
relative destination is below WORKDIR; symlinks on the way (Debian's
``/bin -> usr/bin``) are followed inside the image. ADD also extracts a
local tar archive (plain, gzip, bzip2 or xz) into the destination, and
fetches an ``http(s)://`` URL (checked against ``--checksum=sha256:…``).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field

from minictr.engine.build.context import (
    Ignore,
    Placement,
    Source,
    copy_into,
    digest_sources,
    is_directory_in,
    resolve_in_layers,
    resolve_sources,
)
from minictr.engine.build.dockerfile import Instruction
from minictr.engine.build.instructions import Config
from minictr.engine.container_root import copy_directory_attributes
from minictr.engine.images.runconfig import resolve_user
from minictr.errors import MinictrError

COPY_FLAGS = {"COPY": {"from", "chown", "chmod", "link"}, "ADD": {"chown", "chmod", "link", "checksum"}}


@dataclass
class CopyPlan:
    """What one COPY/ADD reads and where it writes, decided before the cache is asked."""

    sources: list[Source]
    destination: str  #: absolute in the image, symlinks on the way resolved
    into_directory: bool
    placement: Placement
    keep: Callable[[str], bool]
    extract: bool = False
    digest: str = ""
    shown: str = ""
    downloads: list[str] = field(default_factory=list)


def plan(instruction: Instruction, settings: Config, context: str, source_root: str | None, lowers: list[str],
         work: str) -> CopyPlan:  # fmt: skip
    """Read a COPY/ADD: its sources (context, or ``source_root`` for ``--from``), destination and options."""
    unknown = set(instruction.flags) - COPY_FLAGS[instruction.keyword]
    if unknown:
        raise instruction.error(f"unknown option --{sorted(unknown)[0]}")
    lexer = settings.lexer(instruction)
    form = instruction.exec_form()
    words = [lexer.expand(w) for w in form] if form is not None else lexer.words(instruction.value)
    if len(words) < 2:
        raise instruction.error("needs a source and a destination")
    *patterns, destination = words
    written = destination
    fail = instruction.error
    keep: Callable[[str], bool]
    if source_root is None:
        ignore = Ignore.of(context)
        root = os.path.realpath(context)

        def in_context(path: str) -> bool:
            return path == root or not ignore.ignored(os.path.relpath(path, root))

        keep = in_context
        urls = [p for p in patterns if p.startswith(("http://", "https://"))]
        if urls and instruction.keyword == "COPY":
            raise fail("COPY cannot fetch a URL; use ADD")
        downloads = [_download(url, work, instruction) for url in urls]
        sources = [Source(path, url) for path, url in zip(downloads, urls, strict=True)]
        sources += (
            resolve_sources(context, [p for p in patterns if p not in urls], ignore, fail)
            if len(urls) < len(patterns)
            else []
        )
        placement = Placement(0, 0)
    else:
        flat = [source_root]
        resolved = [_in_image(flat, p) for p in patterns]
        sources = resolve_sources(source_root, resolved, Ignore([]), fail)
        keep, downloads, placement = _everything, [], Placement()
    _owner(instruction, placement, lowers)
    if "chmod" in instruction.flags:
        try:
            placement.mode = int(instruction.flags["chmod"], 8)
        except ValueError:
            raise fail(f"--chmod={instruction.flags['chmod']}: not an octal mode") from None
    if not destination.startswith("/"):
        destination = os.path.join(settings.values.get("WorkingDir") or "/", destination)
    many = len(sources) > 1
    if many and not destination.endswith("/"):
        raise fail("with more than one source the destination must be a directory and end with /")
    single_file = not many and not os.path.isdir(sources[0].path)
    into = destination.endswith("/") or many or not single_file or is_directory_in(lowers, destination)
    resolved_destination = (
        os.path.dirname(resolve_in_layers(lowers, destination.rstrip("/") + "/x"))
        if into
        else resolve_in_layers(lowers, destination)
    )
    extract = instruction.keyword == "ADD" and not downloads and single_file and tarfile.is_tarfile(sources[0].path)
    if extract and "chown" not in instruction.flags:
        placement.uid = placement.gid = None  # an archive's entries keep the owners it gives them
    shown = f"{instruction.keyword} {' '.join(patterns)} {written}"
    result = CopyPlan(
        sources, resolved_destination, into or extract, placement, keep, extract, shown=shown, downloads=downloads
    )
    result.digest = digest_sources(sources, keep)
    return result


def _in_image(flat: list[str], pattern: str) -> str:
    """A ``COPY --from`` source: symlinks on the way resolved inside the image, its last part (maybe a glob) kept."""
    directory = resolve_in_layers(flat, os.path.dirname("/" + pattern.strip("/")), follow=True)
    return os.path.join(directory, os.path.basename(pattern.rstrip("/")) or ".")


def _everything(_path: str) -> bool:
    return True


def _owner(instruction: Instruction, placement: Placement, lowers: list[str]) -> None:
    """``--chown=user[:group]``, names read from the image's /etc/passwd and /etc/group (gid = uid without a group)."""
    chown = instruction.flags.get("chown")
    if not chown:
        return
    from minictr.engine.images.layers import read_file

    group = chown.partition(":")[2]
    try:
        uid, gid, _extra, _home = resolve_user(chown, lambda path: read_file(lowers, path))
    except MinictrError as exc:
        raise instruction.error(f"--chown={chown}: {exc}") from None
    if not group:
        gid = uid
    placement.uid, placement.gid = uid, gid


def stage(copy: CopyPlan, staging: str, lowers: list[str]) -> None:
    """Lay out what ``copy`` adds under ``staging``, as the image will hold it."""
    target_dir = copy.destination if copy.into_directory else os.path.dirname(copy.destination)
    _make_parents(staging, target_dir, lowers)
    for source in copy.sources:
        base = os.path.join(staging, target_dir.strip("/"))
        if copy.extract:
            _extract(source.path, base, copy.placement)
        elif copy.into_directory and not os.path.isdir(source.path):
            copy_into(
                source.path,
                os.path.join(
                    base,
                    os.path.basename(source.path if source.path not in copy.downloads else source.name.rstrip("/"))
                    or "index.html",
                ),
                copy.placement,
            )
        elif copy.into_directory:
            copy_into(source.path, base, copy.placement, copy.keep)
        else:
            copy_into(source.path, os.path.join(staging, copy.destination.strip("/")), copy.placement)
    if copy.into_directory and is_directory_in(lowers, target_dir):
        copy_directory_attributes(lowers, target_dir.strip("/"), os.path.join(staging, target_dir.strip("/")), 0)


def make_directory(staging: str, path: str, lowers: list[str]) -> None:
    """WORKDIR's directory (and its parents) under ``staging``, parents as the image has them."""
    _make_parents(staging, path, lowers)


def _make_parents(staging: str, directory: str, lowers: list[str]) -> None:
    relative = directory.strip("/")
    os.makedirs(os.path.join(staging, relative), mode=0o755, exist_ok=True)
    parts = relative.split("/") if relative else []
    for depth in range(len(parts), 0, -1):  # deepest first: making the children changed their parents' times
        made = os.path.join(staging, *parts[:depth])
        os.chmod(made, 0o755)
        copy_directory_attributes(lowers, "/".join(parts[:depth]), made, 0)


def _extract(archive: str, target: str, placement: Placement) -> None:
    """ADD's local archive: unpacked into ``target``, entries that would leave it refused."""
    os.makedirs(target, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(target, numeric_owner=True, filter="tar")
    if placement.uid is not None:
        for directory, dirs, files in os.walk(target):
            for name in dirs + files:
                os.lchown(
                    os.path.join(directory, name),
                    placement.uid,
                    placement.gid if placement.gid is not None else placement.uid,
                )


def _download(url: str, work: str, instruction: Instruction) -> str:
    """Fetch ``url`` into ``work``; with ``--checksum`` the content must match it."""
    import urllib.error
    import urllib.request

    path = os.path.join(work, "download-" + hashlib.sha256(url.encode()).hexdigest()[:16])
    hasher = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                hasher.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        raise instruction.error(f"fetching {url}: {getattr(exc, 'reason', exc)}") from None
    expected = instruction.flags.get("checksum")
    if expected and expected != "sha256:" + hasher.hexdigest():
        raise instruction.error(f"{url}: checksum mismatch: expected {expected}, got sha256:{hasher.hexdigest()}")
    os.chmod(path, 0o600)
    return path
