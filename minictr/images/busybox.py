"""An image that needs no internet: ``busybox``, built from the host's busybox-static.

The result is a real OCI image — one gzip'd layer, a config, a manifest, an
index entry, all addressed by sha256 — that goes through exactly the code
paths a pulled image does. The layer is reproducible: entries are sorted,
timestamps come from the busybox binary, gzip carries no name or time, so
building twice from the same busybox gives the same digests.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tarfile
from typing import Any

from ..errors import HostError
from . import oci
from .store import ImageStore

#: Where Debian's and Ubuntu's busybox-static put the binary.
CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox")

INSTALL_HINT = "install the static busybox: apt-get install busybox-static (Debian/Ubuntu)"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""

GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
tty:x:5:
nogroup:x:65534:
"""

#: The usual empty directories of a root filesystem, with their modes.
DIRECTORIES = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
    "run": 0o755, "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755,
    "usr/sbin": 0o755, "var": 0o755, "var/tmp": 0o1777,
}  # fmt: skip

DEFAULT_CONFIG = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]}


def is_static_elf(path: str) -> bool:
    """True when ``path`` is an ELF executable without an interpreter (statically linked).

    A dynamic executable names its loader in a PT_INTERP program header; a
    static one has none — so it runs in a root filesystem that has no libc.
    """
    with open(path, "rb") as handle:
        ident = handle.read(64)
        if len(ident) < 64 or ident[:4] != b"\x7fELF":
            return False
        is64, little = ident[4] == 2, ident[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, phentsize, phnum = struct.unpack(end + "Q", ident[32:40])[0], *struct.unpack(end + "HH", ident[54:58])
        else:
            phoff, phentsize, phnum = struct.unpack(end + "I", ident[28:32])[0], *struct.unpack(end + "HH", ident[42:46])
        for i in range(phnum):
            handle.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack(end + "I", handle.read(4))
            if p_type == 3:  # PT_INTERP
                return False
        return True


def find_static_busybox() -> str:
    """Path of a statically linked busybox on this host, or :class:`HostError` saying what to install."""
    seen = []
    for path in (*CANDIDATES, shutil.which("busybox") or ""):
        if path and os.path.isfile(path) and path not in seen:
            seen.append(path)
            if is_static_elf(path):
                return path
    if seen:
        raise HostError(f"busybox at {seen[0]} is dynamically linked, so it cannot run in an empty root; {INSTALL_HINT}")
    raise HostError(f"no busybox found; {INSTALL_HINT}")


def applets(busybox: str) -> list[str]:
    """The applet paths busybox provides, e.g. ``['bin/sh', 'usr/bin/awk', …]``."""
    listing = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout
    return sorted({line.strip().lstrip("/") for line in listing.splitlines() if line.strip()})


def build_layer(busybox: str) -> tuple[bytes, str]:
    """Build the layer tarball; return (gzip'd bytes, diff_id of the uncompressed tar)."""
    mtime = int(os.stat(busybox).st_mtime)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.linkname = kind, mode, mtime, link
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        for name, mode in sorted(DIRECTORIES.items()):
            add(name, tarfile.DIRTYPE, mode)
        with open(busybox, "rb") as handle:
            add("bin/busybox", tarfile.REGTYPE, 0o755, handle.read())
        for applet in applets(busybox):
            if applet != "bin/busybox":
                add(applet, tarfile.LNKTYPE, 0o755, link="bin/busybox")  # hard links, as Docker's busybox image has
        add("etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        add("etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
    tar_bytes = raw.getvalue()
    diff_id = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
        gz.write(tar_bytes)
    return compressed.getvalue(), diff_id


def version(busybox: str) -> str:
    """busybox's own version line, e.g. ``'BusyBox v1.35.0 (Debian 1:1.35.0-4+b3)'``."""
    result = subprocess.run([busybox], capture_output=True, text=True)
    first = (result.stdout or result.stderr).splitlines()
    return first[0].split(" multi-call")[0].strip() if first else "BusyBox"


def build_busybox_image(store: ImageStore, name: str = "busybox", busybox: str | None = None) -> str:
    """Build the busybox image into ``store`` under ``name``; return the manifest digest."""
    busybox = busybox or find_static_busybox()
    layer, diff_id = build_layer(busybox)
    created = _rfc3339(os.stat(busybox).st_mtime)
    config: dict[str, Any] = {
        **oci.host_platform(),
        "created": created,
        "config": dict(DEFAULT_CONFIG),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": f"minictr: {version(busybox)} from {os.path.basename(busybox)}-static"}],
    }
    config_bytes = oci.canonical_json(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.MEDIA_MANIFEST,
        "config": oci.descriptor(oci.MEDIA_CONFIG, config_bytes),
        "layers": [oci.descriptor(oci.MEDIA_LAYER_GZIP, layer)],
    }
    manifest_bytes = oci.canonical_json(manifest)
    for blob in (layer, config_bytes, manifest_bytes):
        store.put_blob(blob)
    store.tag(name, oci.descriptor(oci.MEDIA_MANIFEST, manifest_bytes, platform=oci.host_platform()))
    return oci.sha256_digest(manifest_bytes)


def _rfc3339(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
