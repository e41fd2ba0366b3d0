"""Sizes that cannot fill the disk: layer expansion limits, the free-space reserve, and load's declared sizes.

Every bomb is built here: a file of zeros compresses about 1000 times, so an
80 MiB layer is an 80 KB blob. Refusals are checked through the real
``minictr`` command line (one line, exit 125) and on disk (no partial layer).
"""

from __future__ import annotations

import json
import os

import pytest
import registry_server as rs

from conftest import run_cli
from minictr.engine.images import layers as layer_dirs
from minictr.engine.images import oci
from minictr.engine.images.store import ImageStore
from minictr.engine.images.unpack import unpack_image
from minictr.errors import ImageError

pytestmark = pytest.mark.root

ZEROS = 80 << 20  # past the default floor of 64m, and 1000 times its gzip


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An archive of three one-layer images: ``zeros`` (a gzip bomb), ``noise`` (2 MiB that does not compress),
    ``small``.
    """
    directory = tmp_path_factory.mktemp("bombs")
    layout = rs.Layout(str(directory / "layout"))
    layout.image("zeros", [(rs.tar_layer([("zeros", "file", bytes(ZEROS))]), "gzip")])
    layout.image("noise", [(rs.tar_layer([("noise", "file", os.urandom(2 << 20))]), "gzip")])
    layout.image("small", [(rs.tar_layer([("hello", "file", b"hello\n")]), "gzip")])
    return layout.archive(str(directory / "bombs.tar"))


@pytest.fixture
def data(bombs: str, tmp_path, state_root: str) -> str:
    """A data root holding the bombs, loaded with the CLI."""
    root = str(tmp_path / "data")
    loaded = run_cli("load", "-i", bombs, data_root=root, state_root=state_root)
    assert loaded.returncode == 0, loaded.stderr
    return root


def _layer_entries(data: str) -> list[str]:
    """What the layers directory holds besides its lock files: unpacked layers and partial ones."""
    root = layer_dirs.layers_root(ImageStore(os.path.join(data, "images")))
    return sorted(n for n in os.listdir(root) if n != ".locks") if os.path.isdir(root) else []


@pytest.mark.parametrize("image, env, words", [
    ("zeros", {}, "expands past 100 times its compressed size"),
    ("noise", {"MINICTR_LAYER_MAX_SIZE": "1m"}, "expands past the limit of 1MiB (MINICTR_LAYER_MAX_SIZE)"),
    ("small", {"MINICTR_DISK_RESERVE": "1p"}, "not enough disk space"),
], ids=["ratio", "absolute-cap", "reserve"])  # fmt: skip
def test_a_layer_past_a_limit_is_refused_and_leaves_nothing(data: str, state_root: str, image: str, env: dict[str, str],
                                                            words: str) -> None:  # fmt: skip
    result = run_cli(
        "run", "--network", "none", image, "true", data_root=data, state_root=state_root, env={**os.environ, **env}
    )
    assert result.returncode == 125
    assert result.stderr.startswith("minictr: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr
    assert _layer_entries(data) == []
    containers = os.path.join(state_root, "containers")
    assert not os.path.isdir(containers) or os.listdir(containers) == []


@pytest.mark.parametrize("image", ["noise", "small"])
def test_the_same_layers_unpack_within_the_defaults(data: str, image: str) -> None:
    """What the limits refused above was refused for the limit: with the defaults it unpacks."""
    store = ImageStore(os.path.join(data, "images"))
    (directory,) = layer_dirs.unpack_layers(store, store.get(image))
    assert os.listdir(directory) == [image if image == "noise" else "hello"]


def test_the_flattened_copy_stops_a_bomb_too(data: str, tmp_path) -> None:
    store = ImageStore(os.path.join(data, "images"))
    with pytest.raises(ImageError, match="expands past"):
        unpack_image(store, store.get("zeros"), str(tmp_path / "out" / "rootfs"))
    assert os.listdir(tmp_path / "out") == []


def test_bad_limit_settings_are_one_line_errors(data: str, state_root: str) -> None:
    result = run_cli("run", "--network", "none", "small", "true", data_root=data, state_root=state_root,
                     env={**os.environ, "MINICTR_LAYER_MAX_RATIO": "lots"})  # fmt: skip
    assert (
        result.returncode == 125 and result.stderr == "minictr: error: MINICTR_LAYER_MAX_RATIO 'lots': not a number\n"
    )


# --- load -i: declared sizes and the reserve ---------------------------------------------------------------


def _stored(data: str) -> tuple[list[str], list[str]]:
    """(names, blobs) in the store under ``data``."""
    store = ImageStore(os.path.join(data, "images"))
    blobs = os.path.join(store.root, "blobs", "sha256")
    return store.names(), sorted(n for n in os.listdir(blobs) if not n.startswith(".")) if os.path.isdir(blobs) else []


def _lying_archive(tmp_path, lie: str) -> str:
    """An archive whose manifest declares its layer 50,000 bytes short, or whose index declares the manifest 1 byte
    short.
    """
    layout = rs.Layout(str(tmp_path / "layout"))
    descriptor = layout.image("liar", [(rs.tar_layer([("noise", "file", os.urandom(120_000))]), "gzip")])
    if lie == "layer":
        with open(os.path.join(layout.root, "blobs", "sha256", descriptor["digest"][7:]), "rb") as handle:
            manifest = json.load(handle)
        manifest["layers"][0]["size"] -= 50_000
        data = oci.canonical_json(manifest)
        layout.blob(data)
        descriptor = oci.descriptor(oci.MEDIA_MANIFEST, data)
    else:
        descriptor = {**descriptor, "size": descriptor["size"] - 1}
    layout.name("liar", descriptor)
    return layout.archive(str(tmp_path / "liar.tar"))


@pytest.mark.parametrize("lie", ["layer", "manifest"])
def test_load_refuses_a_blob_larger_than_declared(tmp_path, state_root: str, lie: str) -> None:
    data = str(tmp_path / "data")
    result = run_cli("load", "-i", _lying_archive(tmp_path, lie), data_root=data, state_root=state_root)
    assert result.returncode == 125 and result.stderr.count("\n") == 1, result.stderr
    assert "bytes but its descriptor declares" in result.stderr
    assert _stored(data) == ([], [])


def test_load_keeps_the_reserve(bombs: str, tmp_path, state_root: str) -> None:
    data = str(tmp_path / "data")
    result = run_cli(
        "load", "-i", bombs, data_root=data, state_root=state_root, env={**os.environ, "MINICTR_DISK_RESERVE": "1p"}
    )
    assert result.returncode == 125 and "not enough disk space" in result.stderr and result.stderr.count("\n") == 1
    assert _stored(data) == ([], [])
