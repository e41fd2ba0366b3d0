"""Pulls from a real registry on loopback (Debian's docker-registry): anonymous, with tokens, multi-arch,
multi-layer with whiteouts, and hostile images refused with nothing stored."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile
import threading
import time

import pytest
import registry_server as rs

from conftest import remove_container, run_cli
from minictr.engine.images import layers as layer_dirs
from minictr.engine.images import oci
from minictr.engine.images.pull import pull
from minictr.engine.images.registry import Registry
from minictr.engine.images.store import ImageStore
from minictr.errors import ImageError, RegistryError

pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(rs.have_peers()), reason=rs.have_peers() or "ok")]


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(str(tmp_path / "data" / "images"))


def _verify(store: ImageStore) -> None:
    """Every blob in the store matches its name; no temporary file is left."""
    directory = os.path.join(store.root, "blobs", "sha256")
    for name in os.listdir(directory):
        assert not name.startswith("."), f"left behind: {name}"
        store.read_blob(f"sha256:{name}")


def test_pull_what_skopeo_pushed_and_run_it(images: dict[str, str], tmp_path, state_root: str) -> None:
    data = str(tmp_path / "data")
    pulled = run_cli("pull", images["busybox"], data_root=data, state_root=state_root)
    assert pulled.returncode == 0, pulled.stderr
    assert "Pull complete" in pulled.stdout and pulled.stdout.splitlines()[-1] == f"{images['busybox']}"
    ran = run_cli("run", images["busybox"], "echo", "hello from the registry", data_root=data, state_root=state_root)
    assert (ran.returncode, ran.stdout) == (0, "hello from the registry\n")
    listed = run_cli("images", data_root=data, state_root=state_root).stdout.splitlines()
    assert listed[1].split()[:2] == [images["busybox"].rsplit(":", 1)[0], "1"]


def test_run_pulls_a_missing_image(images: dict[str, str], tmp_path, state_root: str) -> None:
    ran = run_cli("run", images["busybox"], "true", data_root=str(tmp_path / "data"), state_root=state_root)
    assert ran.returncode == 0 and f"Unable to find image '{images['busybox']}' locally" in ran.stderr


def test_multi_layer_image_stacks_layers_with_whiteouts(
    images: dict[str, str], store: ImageStore, tmp_path, state_root: str
) -> None:
    image = pull(store, images["multi"])
    _verify(store)
    dirs = layer_dirs.unpack_layers(store, image)
    assert len(dirs) == 4 and all(
        os.path.basename(d) == i.partition(":")[2]
        for d, i in zip(dirs, image.config["rootfs"]["diff_ids"], strict=True)
    )
    gone = os.lstat(os.path.join(dirs[2], "etc", "gone"))
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0  # .wh.gone became an overlayfs whiteout
    assert os.getxattr(os.path.join(dirs[2], "data"), "trusted.overlay.opaque") == b"y"
    owned = os.lstat(os.path.join(dirs[1], "owned"))
    assert (owned.st_uid, owned.st_gid, stat.S_IMODE(owned.st_mode), int(owned.st_mtime)) == (
        1000,
        1000,
        0o4750,
        1_500_000_000,
    )
    assert os.getxattr(os.path.join(dirs[1], "owned"), "user.origin") == b"layer2"
    assert layer_dirs.read_file(dirs, "etc/keep") == b"kept\n" and layer_dirs.read_file(dirs, "etc/gone") is None
    assert layer_dirs.read_file(dirs, "data/old") is None and layer_dirs.read_file(dirs, "data/new") == b"new\n"
    script = "ls /etc/gone 2>&1; ls /data; cat /top; id -u; pwd"
    ran = run_cli(
        "run", images["multi"], "sh", "-c", script, data_root=os.path.dirname(store.root), state_root=state_root
    )
    assert ran.stdout.splitlines() == [
        "ls: /etc/gone: No such file or directory",
        "new",
        "plain tar layer",
        "1",
        "/data",
    ]


def test_image_config_reaches_the_container(images: dict[str, str], store: ImageStore, state_root: str) -> None:
    pull(store, images["multi"])
    data = os.path.dirname(store.root)
    as_nobody = run_cli("run", "-u", "nobody", images["multi"], "id", data_root=data, state_root=state_root)
    assert as_nobody.stdout == "uid=65534(nobody) gid=65534(nogroup)\n"
    numeric = run_cli("run", "-u", "1234:5678", images["multi"], "id", "-u", data_root=data, state_root=state_root)
    assert numeric.stdout == "1234\n"
    unknown = run_cli("run", "-u", "nosuchuser", images["multi"], "id", data_root=data, state_root=state_root)
    assert unknown.returncode == 125 and "no such user in the image's /etc/passwd" in unknown.stderr
    trapping = "trap 'exit 9' USR1; echo ready; while :; do sleep 0.1; done"
    detached = run_cli("run", "-d", images["multi"], "sh", "-c", trapping, data_root=data, state_root=state_root)
    container = detached.stdout.strip()
    try:
        state = json.loads(pathlib.Path(state_root, "containers", container, "state.json").read_text())
        assert state["config"]["Labels"] == {"test": "multi"} and state["config"]["StopSignal"] == "SIGUSR1"
        assert len(state["lowerdirs"]) == 4 and state["upperdir"].endswith("/upper")
        deadline = time.monotonic() + 20
        while "ready" not in run_cli("logs", container, data_root=data, state_root=state_root).stdout:  # trap set
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert run_cli("stop", container, data_root=data, state_root=state_root).returncode == 0
        inspected = json.loads(run_cli("inspect", container, data_root=data, state_root=state_root).stdout)[0]
        assert inspected["State"]["ExitCode"] == 9 and inspected["Config"]["StopSignal"] == "SIGUSR1"  # the image's
    finally:
        remove_container(container, data_root=data, state_root=state_root)


def test_multi_arch_index_and_platforms(images: dict[str, str], store: ImageStore) -> None:
    host = pull(store, images["multiarch"])
    assert host.config["architecture"] == oci.host_platform()["architecture"]
    arm = pull(ImageStore(store.root + "-arm64"), images["multiarch"], platform="linux/arm64")
    assert (arm.config["architecture"], arm.config.get("variant")) == ("arm64", "v8")
    armv7 = pull(ImageStore(store.root + "-armv7"), images["multiarch"], platform="linux/arm/v7", unpack=False)
    assert armv7.config["variant"] == "v7"
    with pytest.raises(ImageError, match=r"no image for linux/s390x .*linux/arm/v7, linux/arm64/v8"):
        pull(store, images["multiarch"], platform="linux/s390x")


def test_token_auth(token_registry: tuple[rs.LocalRegistry, rs.TokenServer], images: dict[str, str], tmp_path,
                    state_root: str, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    server, tokens = token_registry
    creds = f"--dest-creds={rs.USER}:{rs.PASSWORD}"
    rs.skopeo_copy(f"docker://{images['busybox']}", f"docker://{server.host}/private/busybox:1", creds)
    rs.skopeo_copy(f"docker://{images['busybox']}", f"docker://{server.host}/public/busybox:1", creds)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker")}
    data = str(tmp_path / "data")
    public = run_cli("pull", "-q", f"{server.host}/public/busybox:1", data_root=data, state_root=state_root, env=env)
    assert public.returncode == 0, public.stderr  # anonymous bearer token, pull only
    denied = run_cli("pull", f"{server.host}/private/busybox:1", data_root=data, state_root=state_root, env=env)
    assert denied.returncode == 125 and "anonymously (minictr login" in denied.stderr
    bad = run_cli(
        "login",
        "-u",
        rs.USER,
        "--password-stdin",
        server.host,
        input="wrong\n",
        data_root=data,
        state_root=state_root,
        env=env,
    )
    assert bad.returncode == 125 and not (tmp_path / "docker" / "config.json").exists()
    good = run_cli(
        "login",
        "-u",
        rs.USER,
        "--password-stdin",
        server.host,
        input=f"{rs.PASSWORD}\n",
        data_root=data,
        state_root=state_root,
        env=env,
    )
    assert good.returncode == 0 and "Login Succeeded" in good.stdout
    config = tmp_path / "docker" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and server.host in json.loads(config.read_text())["auths"]
    private = run_cli("pull", "-q", f"{server.host}/private/busybox:1", data_root=data, state_root=state_root, env=env)
    assert private.returncode == 0, private.stderr
    assert any(r["user"] == rs.USER and r["access"] for r in tokens.requests)
    assert run_cli("logout", server.host, data_root=data, state_root=state_root, env=env).returncode == 0
    assert server.host not in json.loads(config.read_text())["auths"]


# --- hostile registries and images --------------------------------------------------------------------


def _nothing_stored(store: ImageStore) -> None:
    assert store.names() == []
    blobs = os.path.join(store.root, "blobs", "sha256")
    assert [n for n in os.listdir(blobs) if not n.startswith(".locks")] == [] if os.path.isdir(blobs) else True
    layers = layer_dirs.layers_root(store)
    assert [n for n in os.listdir(layers) if n != ".locks"] == [] if os.path.isdir(layers) else True


def _push_layout(registry: rs.LocalRegistry, tmp_path, repository: str, layers: list[tuple[bytes, str]]) -> dict:
    layout = rs.Layout(str(tmp_path / f"layout-{repository.replace('/', '-')}"))
    descriptor = layout.image("x", layers)
    rs.skopeo_copy(f"oci:{layout.root}:x", f"docker://{registry.host}/{repository}:1")
    with open(os.path.join(layout.root, "blobs", "sha256", descriptor["digest"][7:])) as handle:
        return json.load(handle)


def test_tampered_blob_is_refused(registry: rs.LocalRegistry, base_tar: bytes, store: ImageStore, tmp_path) -> None:
    manifest = _push_layout(
        registry, tmp_path, "hostile/tampered", [(rs.tar_layer([("a", "file", b"x" * 5000)]), "gzip")]
    )
    path = registry.blob_file(manifest["layers"][0]["digest"])
    data = bytearray(pathlib.Path(path).read_bytes())
    data[-10] ^= 0xFF  # same size, different bytes
    pathlib.Path(path).write_bytes(bytes(data))
    with pytest.raises(ImageError, match="digest mismatch"):
        pull(store, f"{registry.host}/hostile/tampered:1")
    _nothing_stored(store)


def test_layer_larger_than_declared_is_refused(registry: rs.LocalRegistry, store: ImageStore, tmp_path) -> None:
    manifest = _push_layout(registry, tmp_path, "hostile/large", [(rs.tar_layer([("a", "file", b"y" * 1000)]), "gzip")])
    with open(registry.blob_file(manifest["layers"][0]["digest"]), "ab") as handle:
        handle.write(os.urandom(4 << 20))  # the registry now serves 4 MB more than the manifest says
    with pytest.raises(ImageError, match="larger than its declared size"):
        pull(store, f"{registry.host}/hostile/large:1")
    _nothing_stored(store)


@pytest.mark.parametrize("entries, message", rs.HOSTILE_LAYERS, ids=rs.HOSTILE_IDS)
def test_hostile_layers_are_refused(
    registry: rs.LocalRegistry, base_tar: bytes, store: ImageStore, tmp_path, entries, message
) -> None:
    repository = f"hostile/layer-{abs(hash(str(entries))) % 10**8}"
    _push_layout(registry, tmp_path, repository, [(rs.tar_layer(entries), "gzip")])
    with pytest.raises(ImageError, match=message):
        pull(store, f"{registry.host}/{repository}:1")
    _nothing_stored(store)
    assert not os.path.exists("/tmp/file") and not os.path.exists(os.path.join(os.path.dirname(store.root), "escape"))


def test_missing_images_and_bad_names_have_clear_errors(registry: rs.LocalRegistry, store: ImageStore) -> None:
    with pytest.raises(RegistryError, match=r"MANIFEST_UNKNOWN.*no such image or tag"):
        pull(store, f"{registry.host}/interop/busybox:no-such-tag")
    with pytest.raises(ImageError, match="repository name must be lowercase"):
        pull(store, f"{registry.host}/UPPER/case")


def test_two_concurrent_pulls_share_the_work(images: dict[str, str], store: ImageStore) -> None:
    results, errors = [], []

    def one() -> None:
        try:
            results.append(pull(store, images["multi"]).manifest_digest)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(results)) == 1
    _verify(store)
    assert sorted(n for n in os.listdir(layer_dirs.layers_root(store)) if not n.startswith(".")) == sorted(
        d.partition(":")[2] for d in store.get(images["multi"]).config["rootfs"]["diff_ids"])  # fmt: skip


def test_a_killed_pull_never_names_an_incomplete_image(registry: rs.LocalRegistry, tmp_path, state_root: str) -> None:
    big = rs.tar_layer([(f"f{i}", "file", os.urandom(4 << 20)) for i in range(6)])
    _push_layout(registry, tmp_path, "big/image", [(big, "tar")])
    data = str(tmp_path / "data")
    command = ["python3", "-c", "import sys, minictr.cli.main; sys.exit(minictr.cli.main.main(sys.argv[1:]))"]
    child = subprocess.Popen(
        [*command, "--data-root", data, "pull", "-q", f"{registry.host}/big/image:1"],
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    blobs = os.path.join(data, "images", "blobs", "sha256")
    while child.poll() is None and not (
        os.path.isdir(blobs) and any(n.startswith(".partial-") for n in os.listdir(blobs))
    ):
        pass
    child.kill()
    child.wait()
    store = ImageStore(os.path.join(data, "images"))
    assert store.names() in ([], [f"{registry.host}/big/image:1"])  # named only when complete
    for name in store.names():
        store.get(name)
    pruned = run_cli("image", "prune", data_root=data, state_root=state_root)
    assert pruned.returncode == 0
    assert run_cli("pull", "-q", f"{registry.host}/big/image:1", data_root=data, state_root=state_root).returncode == 0
    _verify(store)


def test_resume_after_a_broken_connection(images: dict[str, str], store: ImageStore) -> None:
    """A proxy in front of the real registry breaks the first blob download half way: the pull resumes with Range."""
    proxy = rs.FlakyProxy(images["multi"].split("/")[0])
    try:
        reference = images["multi"].replace(images["multi"].split("/")[0], proxy.host)
        pull(store, reference, unpack=False)
        assert proxy.broken >= 1 and any(r.startswith("bytes=") for r in proxy.ranges)
        _verify(store)
    finally:
        proxy.stop()


def test_registry_client_answers_ping_and_head(registry: rs.LocalRegistry, images: dict[str, str]) -> None:
    client = Registry(registry.host)
    assert client.ping().headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    data, media_type, digest = client.get_manifest("interop/busybox", "1")
    manifest = json.loads(data)
    assert media_type == oci.MEDIA_MANIFEST and client.blob_exists("interop/busybox", manifest["config"]["digest"])
    assert not client.blob_exists("interop/busybox", "sha256:" + "0" * 64)
    assert client.get_manifest("interop/busybox", digest)[2] == digest


def test_layers_stack_in_a_user_namespace_too(images: dict[str, str]) -> None:
    """--userns private: each layer directory is shifted to the namespace's root; whiteouts and opaque directories
    still apply.
    """
    base = tempfile.mkdtemp(prefix="minictr-userns-", dir="/tmp")  # searchable by the namespace's root (uid 100000)
    try:
        os.chmod(base, 0o711)
        data, state = os.path.join(base, "data"), os.path.join(base, "run")
        for path in (data, state):
            os.mkdir(path, 0o711)
        store = ImageStore(os.path.join(data, "images"))
        pull(store, images["multi"])
        script = "ls /etc/gone 2>&1; ls /data; cat /top; touch /data/mine && echo writable"
        ran = run_cli(
            "run",
            "--userns",
            "private",
            "-u",
            "root",
            images["multi"],
            "sh",
            "-c",
            script,
            data_root=data,
            state_root=state,
        )
        assert ran.stdout.splitlines() == [
            "ls: /etc/gone: No such file or directory",
            "new",
            "plain tar layer",
            "writable",
        ], ran.stderr
        shifted = [n for n in os.listdir(layer_dirs.layers_root(store)) if ".shift-" in n]
        assert len(shifted) == 4 and all(
            os.stat(os.path.join(layer_dirs.layers_root(store), n)).st_uid == 100000 for n in shifted
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
