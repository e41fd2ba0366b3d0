"""Build, ship, run: commit a container's changes, push to a real registry (read back by skopeo),
pull elsewhere and run; save/load archives; rmi and prune."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest
import registry_server as rs

from conftest import remove_container, run_cli
from minictr.engine.images import layers as layer_dirs
from minictr.engine.images.archive import load, save
from minictr.engine.images.pull import pull
from minictr.engine.images.push import push
from minictr.engine.images.store import ImageStore
from minictr.errors import ImageError

pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(rs.have_peers()), reason=rs.have_peers() or "ok")]


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(str(tmp_path / "data" / "images"))


def _skopeo_inspect(reference: str) -> dict:
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", reference], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_push_is_read_by_skopeo_and_mounts_across_repositories(registry: rs.LocalRegistry, images: dict[str, str],
                                                                store: ImageStore, tmp_path) -> None:  # fmt: skip
    image = pull(store, images["multi"])
    target = f"{registry.host}/pushed/multi:2"
    run = run_cli("tag", images["multi"], target, data_root=os.path.dirname(store.root), state_root=str(tmp_path))
    assert run.returncode == 0, run.stderr
    digest, outcome = push(store, target)
    assert digest == image.manifest_digest
    assert set(outcome.values()) == {"Mounted from layers/multi"}  # every blob was in layers/multi already
    assert _skopeo_inspect(f"docker://{target}")["layers"] == image.layers
    copy = tmp_path / "skopeo-copy"
    rs.skopeo_copy(f"docker://{target}", f"oci:{copy}:back")
    assert json.loads((copy / "index.json").read_text())["manifests"][0]["digest"] == digest
    again = push(store, target)[1]
    assert set(again.values()) == {"Layer already exists"}


def test_chunked_and_monolithic_uploads(
    registry: rs.LocalRegistry, images: dict[str, str], store: ImageStore, tmp_path
) -> None:
    layout = rs.Layout(str(tmp_path / "layout"))
    layout.image(
        "big",
        [
            (rs.tar_layer([("blob", "file", os.urandom(700_000))]), "gzip"),
            (rs.tar_layer([("small", "file", b"s")]), "gzip"),
        ],
    )
    loaded = load(store, _archive_of(layout, tmp_path))
    target = f"{registry.host}/uploads/chunked:1"
    run_cli("tag", loaded[0], target, data_root=os.path.dirname(store.root), state_root=str(tmp_path))
    digest, outcome = push(store, target, chunk_size=256 << 10)  # the 700 kB layer goes in three PATCHes
    assert set(outcome.values()) == {"Pushed"}
    fresh = ImageStore(str(tmp_path / "fresh" / "images"))
    assert pull(fresh, target).manifest_digest == digest


def _archive_of(layout: rs.Layout, tmp_path) -> str:
    """An OCI layout directory as a tar archive (what skopeo's oci-archive: writes)."""
    path = str(tmp_path / "layout.tar")
    with tarfile.open(path, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(os.path.join(layout.root, name), name)
    return path


def test_round_trip_commit_push_pull_run(
    registry: rs.LocalRegistry, images: dict[str, str], tmp_path, state_root: str
) -> None:
    data = str(tmp_path / "data")
    assert run_cli("pull", "-q", images["multi"], data_root=data, state_root=state_root).returncode == 0
    started = run_cli("run", "-d", "-u", "root", images["multi"], "sleep", "60", data_root=data, state_root=state_root)
    container = started.stdout.strip()
    try:
        script = "echo changed > /etc/keep && rm /top && rm -r /data && mkdir /data && echo fresh > /data/only"
        changed = run_cli("exec", container, "sh", "-c", script, data_root=data, state_root=state_root)
        assert changed.returncode == 0, changed.stderr
        target = f"{registry.host}/roundtrip/app:1"
        committed = run_cli("commit", "-m", "edited", container, target, data_root=data, state_root=state_root)
        assert committed.returncode == 0, committed.stderr
    finally:
        remove_container(container, data_root=data, state_root=state_root)
    pushed = run_cli("push", target, data_root=data, state_root=state_root)
    assert pushed.returncode == 0 and "Pushed" in pushed.stderr + pushed.stdout, pushed.stderr
    assert run_cli("rmi", target, data_root=data, state_root=state_root).returncode == 0
    elsewhere = str(tmp_path / "elsewhere")  # "another machine": an empty store
    shown = run_cli(
        "run", target, "sh", "-c", "cat /etc/keep; ls /top 2>&1; ls /data", data_root=elsewhere, state_root=state_root
    )
    assert shown.stdout.splitlines() == ["changed", "ls: /top: No such file or directory", "only"], shown.stderr
    history = ImageStore(os.path.join(elsewhere, "images")).get(target).config["history"]
    assert history[-1]["comment"] == "edited"


def test_the_image_is_never_changed_by_a_container(images: dict[str, str], store: ImageStore, state_root: str) -> None:
    image = pull(store, images["multi"])
    data = os.path.dirname(store.root)
    run_cli(
        "run",
        "-u",
        "root",
        images["multi"],
        "sh",
        "-c",
        "echo overwritten > /etc/keep; rm /top",
        data_root=data,
        state_root=state_root,
    )
    dirs = layer_dirs.unpack_layers(store, image)
    assert (
        layer_dirs.read_file(dirs, "etc/keep") == b"kept\n"
        and layer_dirs.read_file(dirs, "top") == b"plain tar layer\n"
    )
    again = run_cli("run", images["multi"], "cat", "/etc/keep", "/top", data_root=data, state_root=state_root)
    assert again.stdout == "kept\nplain tar layer\n"


def test_save_and_load(images: dict[str, str], store: ImageStore, tmp_path) -> None:
    first = pull(store, images["multi"])
    second = pull(store, images["busybox"])
    archive = str(tmp_path / "images.tar")
    assert save(store, [images["multi"], images["busybox"]], archive) == [first.name, second.name]
    info = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci-archive:{archive}:{first.name}"], capture_output=True, text=True
    )
    assert info.returncode == 0 and json.loads(info.stdout)["layers"] == first.layers, info.stderr
    other = ImageStore(str(tmp_path / "other" / "images"))
    assert sorted(load(other, archive)) == sorted([first.name, second.name])
    assert other.get(first.name).manifest_digest == first.manifest_digest
    assert len(layer_dirs.unpack_layers(other, other.get(first.name))) == 4


def test_hostile_archive_is_refused_and_leaves_nothing(store: ImageStore, tmp_path) -> None:
    path = str(tmp_path / "evil.tar")
    with tarfile.open(path, "w") as tar:
        blob = tmp_path / "blob"
        blob.write_bytes(b"content")
        tar.add(str(blob), "blobs/sha256/" + "a" * 64)  # the name lies about the content
    with pytest.raises(ImageError, match="digest mismatch"):
        load(store, path)
    with tarfile.open(path, "w") as tar:
        tar.add(str(blob), "../../escape")
    with pytest.raises(ImageError, match="refused"):
        load(store, path)
    assert (
        store.names() == []
        and [n for n in os.listdir(os.path.join(store.root, "blobs", "sha256")) if not n.startswith(".")] == []
    )
    assert not (tmp_path.parent / "escape").exists()


def test_rmi_and_prune_remove_what_nothing_needs(images: dict[str, str], tmp_path, state_root: str) -> None:
    data = str(tmp_path / "data")
    store = ImageStore(os.path.join(data, "images"))
    assert run_cli("pull", "-q", images["multi"], data_root=data, state_root=state_root).returncode == 0
    assert run_cli("pull", "-q", images["busybox"], data_root=data, state_root=state_root).returncode == 0
    started = run_cli("run", "-d", images["multi"], "sleep", "60", data_root=data, state_root=state_root)
    container = started.stdout.strip()
    try:
        refused = run_cli("rmi", images["multi"], data_root=data, state_root=state_root)
        assert refused.returncode == 1 and f"container {container}" in refused.stderr  # as Docker: 1
        forced = run_cli("rmi", "-f", images["multi"], data_root=data, state_root=state_root)
        assert forced.returncode == 0 and "Untagged:" in forced.stdout and "Deleted:" in forced.stdout
        layers = sorted(n for n in os.listdir(layer_dirs.layers_root(store)) if not n.startswith("."))
        assert len(layers) == 4  # the running container still stacks them: they stay
        still = run_cli("exec", container, "cat", "/top", data_root=data, state_root=state_root)
        assert still.stdout == "plain tar layer\n"
    finally:
        remove_container(container, data_root=data, state_root=state_root)
    pruned = run_cli("image", "prune", data_root=data, state_root=state_root)
    assert pruned.returncode == 0 and "Total reclaimed space" in pruned.stdout
    left = sorted(n for n in os.listdir(layer_dirs.layers_root(store)) if not n.startswith("."))
    assert left == [store.get(images["busybox"]).config["rootfs"]["diff_ids"][0].partition(":")[2]]
    assert run_cli("images", "-q", data_root=data, state_root=state_root).stdout.count("\n") == 1
