"""Images as real root filesystems are: device nodes in layers, and HOME from the image's /etc/passwd.

A root filesystem made by debootstrap and ``podman import`` carries
``/dev/null``, ``/dev/full`` and friends. minictr makes them as the layer
says where mknod is allowed (root in the host's user namespace) and skips
them, with one warning, where it is not; the image is never refused for
them. The image here is built by the test: busybox plus a layer of nodes,
written as an OCI archive and read with ``minictr load -i``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator

import pytest
import registry_server as rs
from helpers import run_rootless

from conftest import run_cli
from minictr.engine.images import layers as layer_dirs
from minictr.engine.images.store import ImageStore
from minictr.engine.images.unpack import unpack_image

pytestmark = pytest.mark.root

#: (path, type, major, minor, mode) of the nodes the test image carries.
NODES = [
    ("dev/null", tarfile.CHRTYPE, 1, 3, 0o666),
    ("dev/full", tarfile.CHRTYPE, 1, 7, 0o666),
    ("srv/full", tarfile.CHRTYPE, 1, 7, 0o640),
    ("srv/loop9", tarfile.BLKTYPE, 7, 9, 0o660),
]


def _node_layer() -> bytes:
    entries: list[tuple] = [("dev", "dir", None), ("srv", "dir", None)]
    for name, kind, major, minor, mode in NODES:
        entries.append(
            (name, "chr", None, {"type": kind, "devmajor": major, "devminor": minor, "mode": mode, "gid": 6})
        )
    entries.append(("srv/pipe", "chr", None, {"type": tarfile.FIFOTYPE, "mode": 0o600}))
    return rs.tar_layer(entries)


@pytest.fixture(scope="module")
def archive(base_tar: bytes, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An archive of two images: ``nodes`` (busybox + a layer of device nodes) and ``home`` (HOME in its Env)."""
    directory = tmp_path_factory.mktemp("real-images")
    layout = rs.Layout(str(directory / "layout"))
    layout.image("nodes", [(base_tar, "gzip"), (_node_layer(), "gzip")])
    layout.image("home", [(base_tar, "gzip")], config={"Env": ["PATH=/bin", "HOME=/from-image"]})
    return layout.archive(str(directory / "images.tar"))


@pytest.fixture
def loaded(archive: str, open_base: str) -> Iterator[str]:
    """A data root of the test's own holding the archive's images (loaded through the CLI), with a state root
    beside it (``<data>.run``); both traversable by a user namespace's root."""
    data = tempfile.mkdtemp(prefix="real-images-", dir=open_base)
    os.chmod(data, 0o711)
    os.mkdir(f"{data}.run", 0o711)
    result = run_cli("load", "-i", archive, data_root=data, state_root=f"{data}.run")
    assert result.returncode == 0, result.stderr
    yield data
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(f"{data}.run", ignore_errors=True)


def _check_nodes(root: str) -> None:
    for name, kind, major, minor, mode in NODES:
        info = os.lstat(os.path.join(root, name))
        assert (stat.S_ISCHR if kind == tarfile.CHRTYPE else stat.S_ISBLK)(info.st_mode), name
        assert (os.major(info.st_rdev), os.minor(info.st_rdev)) == (major, minor), name
        assert stat.S_IMODE(info.st_mode) == mode and info.st_gid == 6, name
    assert stat.S_ISFIFO(os.lstat(os.path.join(root, "srv/pipe")).st_mode)


def test_an_image_with_device_nodes_runs_and_its_layer_holds_them(loaded: str, state_root: str) -> None:
    result = run_cli("run", "--network", "none", "nodes", "stat", "-c", "%F %t:%T", "/srv/full", "/srv/pipe",
                     data_root=loaded, state_root=state_root)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["character special file 1:7", "fifo 0:0"]
    assert "warning" not in result.stderr
    store = ImageStore(os.path.join(loaded, "images"))
    image = store.get("nodes")
    _check_nodes(layer_dirs.layer_dir(store, layer_dirs.diff_ids(image)[1]))


def test_the_flattened_copy_holds_the_nodes_too(loaded: str, tmp_path) -> None:
    store = ImageStore(os.path.join(loaded, "images"))
    unpack_image(store, store.get("nodes"), str(tmp_path / "flat"))
    _check_nodes(str(tmp_path / "flat"))


def test_in_a_user_namespace_the_nodes_are_skipped_with_one_warning(loaded: str, tmp_path) -> None:
    """Root in a user namespace may not mknod: the image unpacks all the same, without its nodes."""
    code = (
        "import sys; from minictr.engine.images.store import ImageStore; from minictr.engine.images.unpack import "
        "unpack_image; "
        "store = ImageStore(sys.argv[1]); unpack_image(store, store.get('nodes'), sys.argv[2])"
    )
    dest = tmp_path / "userns"
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", code, os.path.join(loaded, "images"), str(dest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped 4 device node(s)" in warnings[0], result.stderr
    assert not any(os.path.lexists(dest / name) for name, *_ in NODES)
    assert stat.S_ISFIFO(os.lstat(dest / "srv/pipe").st_mode)  # a fifo needs no privilege
    assert (dest / "bin" / "busybox").is_file()


def test_a_shifted_root_leaves_the_nodes_out(loaded: str) -> None:
    result = run_cli("run", "--network", "none", "--userns", "private", "nodes", "sh", "-c", "ls /srv; id -u",
                     data_root=loaded, state_root=f"{loaded}.run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pipe", "0"]
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped 4 device node(s)" in warnings[0], result.stderr


def test_rootless_the_image_runs_without_its_nodes(archive: str, rootless_env: dict[str, str]) -> None:
    copy = os.path.join(rootless_env["HOME"], "images.tar")
    shutil.copy(archive, copy)
    os.chmod(copy, 0o644)
    assert run_rootless(rootless_env, "load", "-i", copy).returncode == 0
    result = run_rootless(rootless_env, "run", "nodes", "sh", "-c", "ls /srv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pipe"]
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped 4 device node(s)" in warnings[0], result.stderr


# --- HOME -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flags, home", [
    ((), "/root"),                      # root, from the image's passwd
    (("-u", "nobody"), "/nonexistent"),  # that user's entry
    (("-u", "daemon:tty"), "/usr/sbin"),
    (("-u", "4242"), "/"),              # no entry: / as Docker
    (("-e", "HOME=/x"), "/x"),          # -e wins
    (("-u", "nobody", "-e", "HOME=/x"), "/x"),
    (("--isolation", "chroot"), "/root"),
])  # fmt: skip
def test_home_comes_from_the_images_passwd(data_root: str, state_root: str, flags: tuple[str, ...], home: str) -> None:
    result = run_cli(
        "run",
        "--network",
        "none",
        *flags,
        "busybox",
        "sh",
        "-c",
        'echo "$HOME"',
        data_root=data_root,
        state_root=state_root,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{home}\n"


def test_home_from_the_images_env_wins(loaded: str, state_root: str) -> None:
    result = run_cli(
        "run",
        "--network",
        "none",
        "-u",
        "nobody",
        "home",
        "sh",
        "-c",
        'echo "$HOME"',
        data_root=loaded,
        state_root=state_root,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "/from-image\n"
