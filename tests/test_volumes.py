"""Named volumes, by behaviour: data outlives containers, ``:ro`` holds, an empty volume is filled from
the image once, an image's VOLUME gets an anonymous volume that goes with its container, and a volume
a running container holds cannot be removed."""

from __future__ import annotations

import json
import os
import pathlib
import uuid

import pytest
from helpers import Roots

from conftest import remove_container, run_cli
from minictr.engine.container_root import image_store
from minictr.engine.images.busybox import build_busybox_image
from minictr.engine.run_options import PRIVATE_ID_BASE

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data root of this module's own, with busybox: what the tests here make stays out of the others' way."""
    root = tmp_path_factory.mktemp("module-data")
    build_busybox_image(image_store(str(root)))
    return str(root)


def _cli(*args: str, data_root: str, state_root: str):  # type: ignore[no-untyped-def]
    return run_cli(*args, data_root=data_root, state_root=state_root, timeout=120)


def _ok(result):  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _name() -> str:
    return f"vol-{uuid.uuid4().hex[:12]}"


def _volumes(data_root: str, state_root: str) -> set[str]:
    return set(_ok(_cli("volume", "ls", "-q", data_root=data_root, state_root=state_root)).split())


def _image_with_volume(data_root: str, state_root: str, tmp_path) -> str:
    """An image whose /seed (owned 1:2, holding a file) is a VOLUME."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM busybox\nLABEL t={uuid.uuid4().hex}\n"
        "RUN mkdir /seed && echo seeded > /seed/s && chown 1:2 /seed\nVOLUME /seed\n"
    )
    tag = f"seeded-{uuid.uuid4().hex[:8]}:1"  # its own name: the data root may be shared with other modules
    _ok(_cli("build", "--network", "none", "-t", tag, str(context), data_root=data_root, state_root=state_root))
    return tag


def test_a_named_volume_keeps_data_across_containers_and_honours_ro(data_root: str, state_root: str) -> None:
    name = _name()
    assert (
        _ok(
            _cli("volume", "create", "--label", "purpose=test", name, data_root=data_root, state_root=state_root)
        ).strip()
        == name
    )
    info = json.loads(_ok(_cli("volume", "inspect", name, data_root=data_root, state_root=state_root)))[0]
    assert info["Labels"] == {"purpose": "test"} and info["Mountpoint"].startswith(data_root)
    _ok(
        _cli(
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            f"{name}:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f",
            data_root=data_root,
            state_root=state_root,
        )
    )
    assert pathlib.Path(info["Mountpoint"], "f").read_text() == "kept\n"
    read_only = _cli(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{name}:/data:ro",
        "busybox",
        "sh",
        "-c",
        "cat /data/f; echo no > /data/f",
        data_root=data_root,
        state_root=state_root,
    )
    assert read_only.returncode != 0 and read_only.stdout == "kept\n" and "Read-only file system" in read_only.stderr
    mounted = _cli(
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        f"type=volume,source={name},target=/m,readonly",
        "busybox",
        "sh",
        "-c",
        "cat /m/f && ! touch /m/x 2>/dev/null",
        data_root=data_root,
        state_root=state_root,
    )
    assert _ok(mounted) == "kept\n"
    _ok(_cli("volume", "rm", name, data_root=data_root, state_root=state_root))
    assert name not in _volumes(data_root, state_root) and not os.path.exists(info["Mountpoint"])


def test_first_use_copies_the_image_content_into_an_empty_volume_only(
    data_root: str, state_root: str, tmp_path
) -> None:
    image = _image_with_volume(data_root, state_root, tmp_path)
    name = _name()
    first = _cli(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{name}:/seed",
        image,
        "sh",
        "-c",
        "stat -c '%u %g' /seed; cat /seed/s; echo mine > /seed/s",
        data_root=data_root,
        state_root=state_root,
    )
    assert _ok(first).splitlines() == ["1 2", "seeded"]
    again = _cli(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{name}:/seed",
        image,
        "cat",
        "/seed/s",
        data_root=data_root,
        state_root=state_root,
    )
    assert _ok(again) == "mine\n"  # not empty any more: nothing copied over the container's data
    bind = tmp_path / "bind"
    bind.mkdir()
    listed = _cli(
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        f"type=bind,source={bind},target=/seed",
        image,
        "ls",
        "-A",
        "/seed",
        data_root=data_root,
        state_root=state_root,
    )
    assert _ok(listed) == ""  # a bind mount is never filled from the image
    _ok(_cli("volume", "rm", name, data_root=data_root, state_root=state_root))


def test_an_image_volume_gets_an_anonymous_volume_that_goes_with_the_container(
    data_root: str, state_root: str, tmp_path
) -> None:
    image = _image_with_volume(data_root, state_root, tmp_path)
    before = _volumes(data_root, state_root)
    out = _ok(
        _cli(
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            "grep -c ' /seed ' /proc/mounts; cat /seed/s",
            data_root=data_root,
            state_root=state_root,
        )
    )
    assert out.splitlines() == ["1", "seeded"]
    assert _volumes(data_root, state_root) == before
    tmpfs = _cli(
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=tmpfs,target=/seed,tmpfs-size=1m",
        image,
        "sh",
        "-c",
        "grep ' /seed ' /proc/mounts; ls -A /seed",
        data_root=data_root,
        state_root=state_root,
    )
    assert _ok(tmpfs).startswith("tmpfs /seed tmpfs") and "size=1024k" in tmpfs.stdout and "s\n" not in tmpfs.stdout


def test_a_volume_in_use_cannot_be_removed(data_root: str, state_root: str) -> None:
    name = _name()
    container = _ok(
        _cli(
            "run",
            "-d",
            "--network",
            "none",
            "-v",
            f"{name}:/data",
            "busybox",
            "sleep",
            "60",
            data_root=data_root,
            state_root=state_root,
        )
    ).strip()
    try:
        refused = _cli("volume", "rm", "-f", name, data_root=data_root, state_root=state_root)
        assert refused.returncode == 1  # as Docker: the names rm could not remove make it exit 1
        said = f"minictr: error: volume {name} is in use by container {container}: remove it first (minictr rm)"
        assert refused.stderr.strip() == said
        pruned = _ok(_cli("volume", "prune", "-a", data_root=data_root, state_root=state_root))
        assert name not in pruned.split()
    finally:
        remove_container(container, data_root=data_root, state_root=state_root)
    assert name in _volumes(data_root, state_root)  # a named volume outlives its container
    assert name in _ok(_cli("volume", "prune", "-a", data_root=data_root, state_root=state_root)).split()
    assert name not in _volumes(data_root, state_root)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("volume", "create", "bad/name"), "volume name 'bad/name'"),
        (("volume", "rm", "no-such-volume"), "no such volume: no-such-volume"),
        (("run", "--mount", "type=nfs,target=/x", "busybox", "true"), "give type=volume|bind|tmpfs"),
        (("run", "--mount", "type=bind,target=/x", "busybox", "true"), "a bind mount needs an absolute source="),
        (("run", "-v", "name:/x:rx", "busybox", "true"), "the mode must be ro or rw"),
    ],
)
def test_volume_errors_are_one_line(data_root: str, state_root: str, args: tuple[str, ...], message: str) -> None:
    result = _cli(*args, data_root=data_root, state_root=state_root)
    status = 1 if args[:2] == ("volume", "rm") else 125  # a name rm could not remove: 1, as Docker's
    assert result.returncode == status and len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, (
        result.stderr
    )


# --- user namespaces: a volume belongs to the root of its first container (Docker's userns-remap) ----------


def test_a_remapped_root_writes_to_its_volumes_and_the_next_container_sees_the_data(roots: Roots, tmp_path) -> None:
    data_root, state_root = roots.data, roots.state  # roots a remapped root can walk through
    image = _image_with_volume(data_root, state_root, tmp_path)
    name = _name()
    remapped = ("run", "--rm", "--network", "none", "--userns", "private")
    wrote = _cli(
        *remapped, "-v", f"{name}:/data", image, "sh", "-c",
        "echo root wrote > /data/f && stat -c '%u %g' /data /data/f /seed && cat /seed/s && echo anon > /seed/a",
        data_root=data_root, state_root=state_root,
    )  # fmt: skip
    # the named volume, the file written and the image's /seed (1:2, copied into an anonymous volume) are
    # the remapped root's own, and the anonymous volume takes a write too
    assert _ok(wrote).splitlines() == ["0 0", "0 0", "1 2", "seeded"]
    info = json.loads(_ok(_cli("volume", "inspect", name, data_root=data_root, state_root=state_root)))[0]
    shown = os.stat(pathlib.Path(info["Mountpoint"], "f"))
    assert info["Owner"] == PRIVATE_ID_BASE and (shown.st_uid, shown.st_gid) == (PRIVATE_ID_BASE, PRIVATE_ID_BASE)
    again = _cli(*remapped, "-v", f"{name}:/data", "busybox", "sh", "-c", "cat /data/f && echo more >> /data/f",
                 data_root=data_root, state_root=state_root)  # fmt: skip
    assert _ok(again) == "root wrote\n"
    # copied from the image into an empty named volume: shifted as well
    seeded = _name()
    _ok(_cli(*remapped, "-v", f"{seeded}:/seed", image, "true", data_root=data_root, state_root=state_root))
    mountpoint = json.loads(_ok(_cli("volume", "inspect", seeded, data_root=data_root, state_root=state_root)))[0][
        "Mountpoint"
    ]
    assert (os.stat(mountpoint).st_uid, os.stat(mountpoint).st_gid) == (PRIVATE_ID_BASE + 1, PRIVATE_ID_BASE + 2)
    assert os.stat(os.path.join(mountpoint, "s")).st_uid == PRIVATE_ID_BASE
    for volume in (name, seeded):
        _ok(_cli("volume", "rm", volume, data_root=data_root, state_root=state_root))


def test_a_root_of_another_mapping_may_only_read_a_volume(roots: Roots) -> None:
    data_root, state_root = roots.data, roots.state
    name = _name()
    _ok(_cli("run", "--rm", "--network", "none", "--userns", "private", "-v", f"{name}:/data", "busybox", "sh", "-c",
             "echo private > /data/f", data_root=data_root, state_root=state_root))  # fmt: skip
    before = set(os.listdir(os.path.join(state_root, "containers")))
    for mapping in ((), ("--uidmap", "0:200000:65536")):
        refused = _cli("run", "--rm", "--network", "none", *mapping, "-v", f"{name}:/data", "busybox", "true",
                       data_root=data_root, state_root=state_root)  # fmt: skip
        assert refused.returncode == 125 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert f"volume {name} belongs to a root that is uid {PRIVATE_ID_BASE} on the host" in refused.stderr
        assert "mount it read-only" in refused.stderr
    assert set(os.listdir(os.path.join(state_root, "containers"))) == before  # nothing left of the refused ones
    read = _cli("run", "--rm", "--network", "none", "-v", f"{name}:/data:ro", "busybox", "cat", "/data/f",
                data_root=data_root, state_root=state_root)  # fmt: skip
    assert _ok(read) == "private\n"
    _ok(_cli("volume", "rm", name, data_root=data_root, state_root=state_root))
