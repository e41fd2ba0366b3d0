"""Image references parse as Docker parses them; platforms are chosen as Docker chooses them."""

from __future__ import annotations

import pytest

from minictr.engine.images.auth import parse_challenge
from minictr.engine.images.pull import parse_platform, select_manifest
from minictr.engine.images.reference import Reference, is_loopback, parse
from minictr.engine.images.runconfig import resolve_user
from minictr.errors import ImageError


@pytest.mark.parametrize(
    "text, registry, repository, tag, digest, familiar",
    [
        ("busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox:1.36"),
        ("library/busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
        ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None, "busybox"),
        ("index.docker.io/bitnami/redis", "docker.io", "bitnami/redis", "latest", None, "bitnami/redis"),
        ("localhost/app", "localhost", "app", "latest", None, "localhost/app"),
        ("localhost:5000/team/app:v2", "localhost:5000", "team/app", "v2", None, "localhost:5000/team/app:v2"),
        ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "latest", None, "127.0.0.1:5000/a/b/c"),
        (
            "ghcr.io/owner/img@sha256:" + "a" * 64,
            "ghcr.io",
            "owner/img",
            None,
            "sha256:" + "a" * 64,
            "ghcr.io/owner/img@sha256:" + "a" * 64,
        ),
        (
            "quay.io/x/y:1@sha256:" + "b" * 64,
            "quay.io",
            "x/y",
            "1",
            "sha256:" + "b" * 64,
            "quay.io/x/y:1@sha256:" + "b" * 64,
        ),
        ("my_org/my-app__x", "docker.io", "my_org/my-app__x", "latest", None, "my_org/my-app__x"),
    ],
)
def test_references(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None, familiar: str
) -> None:
    ref = parse(text)
    assert ref == Reference(registry, repository, tag, digest)
    assert ref.familiar() == familiar
    assert parse(ref.familiar()) == ref and parse(str(ref)) == ref


def test_docker_hub_api_host() -> None:
    assert parse("busybox").api_host == "registry-1.docker.io"
    assert parse("localhost:5000/x").api_host == "localhost:5000"


@pytest.mark.parametrize(
    "text, reason",
    [("", "empty"), ("Busybox", "lowercase"), ("busybox:", "not a valid tag"), ("a//b", "not a repository name"),
     ("busybox@sha256:xyz", "not a digest"), ("-x", "not a repository name"), ("x" * 300, "longer than 255")],
)  # fmt: skip
def test_bad_references(text: str, reason: str) -> None:
    with pytest.raises(ImageError, match=reason):
        parse(text)


def test_loopback_registries_speak_plain_http() -> None:
    assert all(is_loopback(h) for h in ("localhost", "localhost:5000", "127.0.0.1:80", "[::1]:5000"))
    assert not any(is_loopback(h) for h in ("docker.io", "10.0.0.1:5000", "localhost.example.com"))


def test_challenges() -> None:
    scheme, params = parse_challenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'
    )
    assert scheme == "bearer" and params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                             "scope": "repository:library/busybox:pull"}  # fmt: skip
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})


def test_platforms() -> None:
    assert parse_platform("linux/arm64") == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert parse_platform("linux/x86_64") == {"os": "linux", "architecture": "amd64"}
    assert parse_platform("linux/arm/v6") == {"os": "linux", "architecture": "arm", "variant": "v6"}
    assert parse_platform("amd64") == {"os": "linux", "architecture": "amd64"}
    with pytest.raises(ImageError, match="--platform"):
        parse_platform("linux/arm/v7/extra")
    entries = [
        {"digest": d, "platform": p}
        for d, p in [
            ("att", {"os": "unknown", "architecture": "unknown"}),
            ("amd", {"os": "linux", "architecture": "amd64"}),
            ("arm64", {"os": "linux", "architecture": "arm64"}),
            ("v6", {"os": "linux", "architecture": "arm", "variant": "v6"}),
            ("v7", {"os": "linux", "architecture": "arm", "variant": "v7"}),
        ]
    ]
    assert select_manifest(entries, parse_platform("linux/arm64/v8"))["digest"] == "arm64"  # no variant given is v8
    assert select_manifest(entries, parse_platform("linux/arm/v7"))["digest"] == "v7"
    assert select_manifest(entries, parse_platform("linux/amd64"))["digest"] == "amd"
    with pytest.raises(ImageError, match="the image has: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64"):
        select_manifest(entries, parse_platform("linux/riscv64"))


def test_users_resolve_through_the_images_files() -> None:
    files = {"etc/passwd": b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
             "etc/group": b"root:x:0:\napp:x:1000:\naudio:x:29:app,other\nvideo:x:44:other\n"}  # fmt: skip
    read = files.get
    assert resolve_user("app", read) == (1000, 1000, [29], "/home/app")
    assert resolve_user("1000", read) == (1000, 1000, [29], "/home/app")
    assert resolve_user("app:video", read) == (1000, 44, [], "/home/app")
    assert resolve_user("4242:4343", read) == (4242, 4343, [], "/")
    assert resolve_user("4242", read) == (4242, 0, [], "/")
    assert resolve_user("", read) == (0, 0, [], "/root")
    assert resolve_user("", {"etc/passwd": b"root:x:0:0::/var/root:/bin/sh\n"}.get)[3] == "/var/root"
    assert resolve_user("", {}.get) == (0, 0, [], "/root")  # no passwd at all: root's usual home
    with pytest.raises(Exception, match="no such user"):
        resolve_user("nobody", read)
    with pytest.raises(Exception, match="no such group"):
        resolve_user("app:nogroup", read)
