"""The image store is a real OCI layout; unpacking applies whiteouts and refuses hostile layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest
import registry_server as rs

from minictr.engine.container import image_store
from minictr.engine.images import busybox, oci
from minictr.engine.images.store import Image, ImageStore, normalize_reference
from minictr.engine.images.unpack import unpack_image
from minictr.errors import HostError, ImageError, ImageNotFound


def test_layout_blobs_are_named_by_their_digest(data_root: str) -> None:
    store = image_store(data_root)
    assert json.loads(pathlib.Path(store.root, "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    blobs = os.path.join(store.root, "blobs", "sha256")
    names = [n for n in os.listdir(blobs) if not n.startswith(".")]
    assert len(names) >= 3  # layer, config, manifest
    for name in names:
        with open(os.path.join(blobs, name), "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == name


def test_busybox_image_config_and_layer(data_root: str) -> None:
    image = image_store(data_root).get("busybox")
    assert image.manifest["mediaType"] == oci.MEDIA_MANIFEST
    assert image.config["os"] == "linux" and image.config["architecture"] == oci.host_platform()["architecture"]
    assert image.config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in image.config["config"]["Env"])
    (layer,) = image.layers
    assert layer["mediaType"] == oci.MEDIA_LAYER_GZIP
    with open(image_store(data_root).blob_path(layer["digest"]), "rb") as handle:
        raw = gzip.decompress(handle.read())
    assert image.config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = tar.getnames()
    for expected in ("bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp", "proc", "sys", "dev", "root"):
        assert expected in names


def test_busybox_build_is_reproducible(tmp_path, data_root: str) -> None:
    again = busybox.build_busybox_image(ImageStore(str(tmp_path / "images")))
    assert again == image_store(data_root).get("busybox").manifest_digest


def test_skopeo_reads_the_store(data_root: str) -> None:
    if not shutil.which("skopeo"):
        pytest.skip("skopeo is not installed (apt-get install skopeo)")
    store = image_store(data_root)
    out = subprocess.run(
        ["skopeo", "inspect", f"oci:{store.root}:busybox"], capture_output=True, text=True, check=True
    ).stdout
    info = json.loads(out)
    image = store.get("busybox")
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == [image.layers[0]["digest"]]


def test_umoci_unpacks_the_store(tmp_path, data_root: str) -> None:
    if not shutil.which("umoci"):
        pytest.skip("umoci is not installed (apt-get install umoci)")
    layout = tmp_path / "copy"
    shutil.copytree(image_store(data_root).root, layout)  # umoci takes a lock file inside the layout
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{layout}:busybox", str(tmp_path / "bundle")],
        check=True,
        capture_output=True,
    )
    assert os.path.isfile(tmp_path / "bundle" / "rootfs" / "bin" / "busybox")
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["args"] == ["sh"]


def test_missing_busybox_names_the_package(monkeypatch) -> None:
    monkeypatch.setattr(busybox, "CANDIDATES", ())
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(HostError, match="apt-get install busybox-static"):
        busybox.find_static_busybox()


def test_references_normalize_as_docker_names_them() -> None:
    assert normalize_reference("busybox") == "busybox"
    assert normalize_reference("docker.io/library/busybox:latest") == "busybox"
    assert normalize_reference("busybox:1.36") == "busybox:1.36"
    assert normalize_reference("localhost:5000/app:1") == "localhost:5000/app:1"
    with pytest.raises(ImageError):
        normalize_reference("Busybox")


def test_unknown_image_and_corrupt_blob(tmp_path, data_root: str) -> None:
    with pytest.raises(ImageNotFound):
        image_store(data_root).get("nothing-here")
    copy = ImageStore(str(tmp_path / "images"))
    shutil.copytree(image_store(data_root).root, copy.root)
    image = copy.get("busybox")
    with open(copy.blob_path(image.config_digest), "ab") as handle:
        handle.write(b" ")
    with pytest.raises(ImageError, match="corrupt"):
        copy.get("busybox")


# --- unpacking hostile and layered images -------------------------------------------


def _layer(entries: list[tuple]) -> bytes:
    """A gzip'd layer from (name, kind, payload) tuples (see registry_server.tar_layer)."""
    return gzip.compress(rs.tar_layer(entries))


def _image(store: ImageStore, layers: list[bytes]) -> Image:
    descriptors = [oci.descriptor(oci.MEDIA_LAYER_GZIP, layer) for layer in layers]
    for layer in layers:
        store.put_blob(layer)
    config = oci.canonical_json({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = oci.canonical_json(
        {"schemaVersion": 2, "config": oci.descriptor(oci.MEDIA_CONFIG, config), "layers": descriptors}
    )
    store.put_blob(config)
    store.put_blob(manifest)
    store.tag("test", oci.descriptor(oci.MEDIA_MANIFEST, manifest))
    return store.get("test")


def test_whiteouts_and_opaque_directories(tmp_path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    lower = _layer(
        [
            ("etc", "dir", None),
            ("etc/keep", "file", b"1"),
            ("etc/gone", "file", b"2"),
            ("data", "dir", None),
            ("data/old", "file", b"3"),
            ("link", "symlink", "/etc/keep"),
        ]
    )
    upper = _layer(
        [
            ("etc/.wh.gone", "file", b""),
            ("data/.wh..wh..opq", "file", b""),
            ("data/new", "file", b"4"),
            ("link", "file", b"now a file"),
        ]
    )
    dest = tmp_path / "rootfs"
    unpack_image(store, _image(store, [lower, upper]), str(dest))
    assert sorted(os.listdir(dest / "etc")) == ["keep"]
    assert sorted(os.listdir(dest / "data")) == ["new"]
    assert not (dest / "link").is_symlink() and (dest / "link").read_bytes() == b"now a file"


@pytest.mark.parametrize("entries, message", rs.HOSTILE_LAYERS, ids=rs.HOSTILE_IDS)
def test_hostile_layers_are_refused_and_nothing_is_left(tmp_path, entries, message) -> None:
    store = ImageStore(str(tmp_path / "images"))
    image = _image(store, [_layer(entries)])
    with pytest.raises(ImageError, match=message):
        unpack_image(store, image, str(tmp_path / "out" / "rootfs"))
    assert os.listdir(tmp_path / "out") == []
    assert not os.path.exists("/tmp/file")


def test_truncated_layer_is_an_error(tmp_path) -> None:
    store = ImageStore(str(tmp_path / "images"))
    whole = _layer([("big", "file", os.urandom(200_000))])
    image = _image(store, [whole[: len(whole) // 2]])
    with pytest.raises(ImageError, match=r"corrupt|not a readable"):
        unpack_image(store, image, str(tmp_path / "out" / "rootfs"))
    assert os.listdir(tmp_path / "out") == []
