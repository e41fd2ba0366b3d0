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

from minictr.engine.images import oci
from minictr.engine.images.store import ImageStore
from minictr.errors import HostError

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


_PT_INTERP = 3


def elf_interpreter(path: str) -> str | None:
    """Return the ELF program interpreter (PT_INTERP) of *path*, or None if it has none.

    No PT_INTERP means the kernel runs the file without a dynamic loader: it is
    static (or static-pie), so it works inside a root filesystem with no libc.
    Raises ValueError if *path* is not an ELF file.
    """
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            raise ValueError(f"{path} is not an ELF file")
        order = {1: "<", 2: ">"}.get(ident[5])
        if ident[4] not in (1, 2) or order is None:
            raise ValueError(f"{path}: unknown ELF class/data {ident[4]}/{ident[5]}")
        is64 = ident[4] == 2
        # after e_ident: type, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum
        hdr = struct.Struct(order + ("HHIQQQIHHH" if is64 else "HHIIIIIHHH"))
        *_, phoff, _shoff, _flags, _ehsize, phentsize, phnum = hdr.unpack(f.read(hdr.size))
        if phnum == 0xFFFF:  # PN_XNUM: count lives in section 0; no real busybox needs it
            raise ValueError(f"{path}: PN_XNUM program headers not supported")
        # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz; Elf32_Phdr: type, offset, vaddr, paddr, filesz
        ph = struct.Struct(order + ("IIQQQQ" if is64 else "IIIII"))
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            fields = ph.unpack(f.read(ph.size))
            if fields[0] == _PT_INTERP:
                offset, size = (fields[2], fields[5]) if is64 else (fields[1], fields[4])
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode("utf-8", "replace")
    return None


def is_static_elf(path: str) -> bool:
    """True when ``path`` is an ELF executable without an interpreter (statically linked)."""
    try:
        return elf_interpreter(path) is None
    except ValueError:
        return False


def find_static_busybox() -> str:
    """Path of a statically linked busybox on this host, or :class:`HostError` saying what to install."""
    seen = []
    for path in (*CANDIDATES, shutil.which("busybox") or ""):
        if path and os.path.isfile(path) and path not in seen:
            seen.append(path)
            if is_static_elf(path):
                return path
    if seen:
        raise HostError(
            f"busybox at {seen[0]} is dynamically linked, so it cannot run in an empty root; {INSTALL_HINT}"
        )
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
        "history": [
            {"created": created, "created_by": f"minictr: {version(busybox)} from {os.path.basename(busybox)}-static"}
        ],
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
    return datetime.datetime.fromtimestamp(int(timestamp), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
