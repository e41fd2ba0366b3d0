"""The image commands of the ``minictr`` command line, spelled as Docker spells them.

    minictr pull [--platform OS/ARCH[/VARIANT]] [-q] IMAGE
    minictr images [-q]                     (also: image ls)
    minictr rmi [-f] IMAGE...                (also: image rm)
    minictr tag SOURCE TARGET                (also: image tag)
    minictr image inspect IMAGE | prune | build-busybox
    minictr commit [-m MESSAGE] [-a AUTHOR] CONTAINER IMAGE
    minictr push IMAGE
    minictr save -o FILE IMAGE...            minictr load -i FILE
    minictr login [-u USER] [-p PASSWORD | --password-stdin] SERVER
    minictr logout SERVER

:func:`add_commands` adds them to the main parser (:mod:`minictr.cli.main`); each handler
imports what it needs when it runs, so ``minictr run`` never loads them.
"""

from __future__ import annotations

import argparse
import sys
import time

from minictr.errors import UsageError

TYPE_CHECKING = False  # typing is for checkers; the CLI starts without it
if TYPE_CHECKING:
    from typing import Any

    from minictr.engine.images.store import ImageStore


def add_commands(commands: Any) -> None:
    """Add the image commands to the subparsers ``commands``."""
    pull = commands.add_parser("pull", help="download an image from a registry")
    _pull_arguments(pull)
    images = commands.add_parser("images", help="list images")
    images.add_argument("-q", "--quiet", action="store_true", help="only show image IDs")
    images.set_defaults(handler=cmd_images)
    rmi = commands.add_parser("rmi", help="remove images")
    _rmi_arguments(rmi)
    tag = commands.add_parser("tag", help="give an image another name")
    _tag_arguments(tag)
    commit = commands.add_parser("commit", help="create a new image from a running container's changes")
    commit.add_argument("-m", "--message", default="", help="commit message (in the image's history)")
    commit.add_argument("-a", "--author", default="", help="author of the new image")
    commit.add_argument("container", metavar="CONTAINER")
    commit.add_argument("image", metavar="IMAGE")
    commit.set_defaults(handler=cmd_commit)
    push = commands.add_parser("push", help="upload an image to a registry")
    push.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    push.add_argument("image", metavar="IMAGE")
    push.set_defaults(handler=cmd_push)
    save = commands.add_parser("save", help="write images to a tar archive (an OCI image layout)")
    save.add_argument("-o", "--output", required=True, metavar="FILE", help="the archive to write")
    save.add_argument("images", nargs="+", metavar="IMAGE")
    save.set_defaults(handler=cmd_save)
    load = commands.add_parser("load", help="read images from a tar archive")
    load.add_argument("-i", "--input", required=True, metavar="FILE", help="the archive to read")
    load.set_defaults(handler=cmd_load)
    login = commands.add_parser("login", help="store credentials for a registry (in Docker's config.json)")
    login.add_argument("-u", "--username", help="user name")
    login.add_argument("-p", "--password", help="password (prefer --password-stdin)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.add_argument("server", metavar="SERVER", nargs="?", default="docker.io")
    login.set_defaults(handler=cmd_login)
    logout = commands.add_parser("logout", help="forget the credentials of a registry")
    logout.add_argument("server", metavar="SERVER", nargs="?", default="docker.io")
    logout.set_defaults(handler=cmd_logout)


def add_image_subcommands(image_commands: Any) -> None:
    """``minictr image pull|rm|tag|prune``, the long spellings of the commands above."""
    _pull_arguments(image_commands.add_parser("pull", help="download an image from a registry"))
    _rmi_arguments(image_commands.add_parser("rm", help="remove images"))
    _tag_arguments(image_commands.add_parser("tag", help="give an image another name"))
    prune = image_commands.add_parser("prune", help="remove blobs and unpacked layers no image or container uses")
    prune.set_defaults(handler=cmd_prune)


def _pull_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--platform", help="OS/ARCH[/VARIANT] to choose from a multi-platform image (default: this host)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, only the name")
    parser.add_argument(
        "--no-unpack", action="store_true", help="download and verify only; layers are unpacked on first run"
    )
    parser.add_argument("image", metavar="IMAGE")
    parser.set_defaults(handler=cmd_pull)


def _rmi_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="remove even if a running container uses it")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.set_defaults(handler=cmd_rmi)


def _tag_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE_IMAGE")
    parser.add_argument("target", metavar="TARGET_IMAGE")
    parser.set_defaults(handler=cmd_tag)


def _store(args: argparse.Namespace) -> Any:
    from minictr.engine.container_root import image_store

    return image_store(args.data_root)


def cmd_pull(args: argparse.Namespace) -> int:
    """``minictr pull``: verified blobs into the store, each layer unpacked once."""
    from minictr.engine.images.progress import make_progress
    from minictr.engine.images.pull import pull
    from minictr.engine.images.reference import parse

    ref = parse(args.image)
    if not args.quiet:
        print(f"{ref.object}: Pulling from {ref.repository}")
    started = time.monotonic()
    image = pull(
        _store(args),
        args.image,
        platform=args.platform,
        progress=make_progress(sys.stdout, quiet=args.quiet),
        unpack=not args.no_unpack,
    )
    if not args.quiet:
        print(f"Digest: {image.manifest_digest}")
        print(f"Status: downloaded {image.name} in {time.monotonic() - started:.1f} s")
    print(str(ref) if not args.quiet else image.name)
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    """``minictr images``: a table of what the store holds."""
    from minictr.engine.images.store import split_reference

    images = _store(args).images()
    if args.quiet:
        for image in images:
            print(image.id.split(":", 1)[1][:12])
        return 0
    rows = [("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")]
    for image in images:
        repository, tag = split_reference(image.name)
        created = image.config.get("created", "")[:19].replace("T", " ")
        rows.append((repository, tag, image.id.split(":", 1)[1][:12], created, human_size(image.size)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _swept_root(args: argparse.Namespace) -> str:
    """The state root in force, swept of dead containers: those hold no image and no layer."""
    from minictr import paths
    from minictr.engine.container_dir import containers_dir, remove_stale

    root = args.root or paths.state_root()
    remove_stale(containers_dir(root))
    return root


def _users(args: argparse.Namespace) -> dict[str, str]:
    """Image id -> id of a container using it (for ``rmi`` without ``-f``)."""
    from minictr.engine.images.prune import image_users

    return image_users(_swept_root(args))


def cmd_rmi(args: argparse.Namespace) -> int:
    """``minictr rmi``: forget names; then remove what no name needs any more. Each name on its own (Docker's rule)."""
    from minictr.cli.each import each

    store = _store(args)
    users = {} if args.force else _users(args)
    return each(args.images, lambda reference: _remove_image(args, store, reference, users), args.debug)


def _remove_image(args: argparse.Namespace, store: ImageStore, reference: str, users: dict[str, str]) -> None:
    """Untag ``reference``; remove its blobs and layers unless another name or a running container needs them."""
    from minictr.engine.images.prune import remove_image

    image = store.get(reference)
    named = [other for other in store.images() if other.id == image.id]
    if image.id in users and len(named) <= 1:  # as Docker: only the last name of an image in use is refused
        raise UsageError(
            f"rmi {reference}: container {users[image.id][:12]} uses this image (remove it with minictr rm, or use -f)"
        )
    image, removed = remove_image(store, reference, _swept_root(args))
    print(f"Untagged: {image.name}")
    for digest in removed.blobs:
        print(f"Deleted: {digest}")


def cmd_tag(args: argparse.Namespace) -> int:
    """``minictr tag``: another name for the same manifest."""
    store = _store(args)
    image = store.get(args.source)
    from minictr.engine.images import oci

    platform = {k: image.config[k] for k in ("os", "architecture", "variant") if image.config.get(k)}
    store.tag(
        args.target,
        oci.descriptor(
            image.manifest.get("mediaType", oci.MEDIA_MANIFEST),
            store.read_blob(image.manifest_digest),
            platform=platform,
        ),
    )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """``minictr image prune``: what no name and no running container refers to goes."""
    from minictr.engine.images.prune import prune

    removed = prune(_store(args), _swept_root(args))
    for path in removed.blobs + removed.directories:
        print(f"deleted: {path}")
    print(f"Total reclaimed space: {human_size(removed.freed)}")
    return 0


def cmd_image_inspect(args: argparse.Namespace) -> int:
    """``minictr image inspect``: the manifest, the config and the layers as JSON."""
    import json

    from minictr.engine.images.layers import layer_summary

    store = _store(args)
    image = store.get(args.image)
    info = {"Name": image.name, "Id": image.id, "ManifestDigest": image.manifest_digest, "Manifest": image.manifest,
            "Config": image.config, "Layers": layer_summary(store, image)}  # fmt: skip
    print(json.dumps([info], indent=2))
    return 0


def cmd_commit(args: argparse.Namespace) -> int:
    """``minictr commit``: a running container's changes as a new image; prints its id."""
    from minictr.engine.container import commit

    image = commit(
        args.container,
        args.image,
        data_root=args.data_root,
        state_root=args.root,
        message=args.message,
        author=args.author,
    )
    print(image.id)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """``minictr push``: upload what the registry lacks, then the manifest."""
    from minictr.engine.images.progress import make_progress
    from minictr.engine.images.push import push
    from minictr.engine.images.reference import parse

    ref = parse(args.image)
    if not args.quiet:
        print(f"The push refers to repository [{ref.name}]")
    digest, _ = push(_store(args), args.image, progress=make_progress(sys.stdout, quiet=args.quiet))
    print(f"{ref.tag or ref.digest}: digest: {digest}" if not args.quiet else digest)
    return 0


def cmd_save(args: argparse.Namespace) -> int:
    """``minictr save -o FILE IMAGE...``."""
    from minictr.engine.images.archive import save

    save(_store(args), args.images, args.output)
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    """``minictr load -i FILE``."""
    from minictr.engine.images.archive import load

    for name in load(_store(args), args.input):
        print(f"Loaded image: {name}")
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    """``minictr login``: check the credentials against the registry, then store them."""
    from minictr.engine.images import auth
    from minictr.engine.images.reference import DOCKER_HUB, DOCKER_HUB_API
    from minictr.engine.images.registry import Registry

    server = args.server.removeprefix("https://").removeprefix("http://").rstrip("/")
    server = DOCKER_HUB if server in ("index.docker.io/v1", "index.docker.io") else server
    user = args.username or input("Username: ")
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password is not None:
        password = args.password
    else:
        import getpass

        password = getpass.getpass("Password: ")
    if not user or not password:
        raise UsageError("login: a user name and a password are both needed (-u, --password-stdin)")
    registry = Registry(DOCKER_HUB_API if server == DOCKER_HUB else server, login=(user, password))
    registry.request("GET", "/v2/", scope="").discard()  # answers the challenge with these credentials, or fails
    path = auth.store_credentials(server, user, password)
    print(f"Login Succeeded (credentials stored in {path})")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    """``minictr logout``: forget the stored credentials."""
    from minictr.engine.images import auth

    server = args.server.removeprefix("https://").removeprefix("http://").rstrip("/")
    if not auth.forget_credentials(server):
        print(f"Not logged in to {server}")
        return 0
    print(f"Removing login credentials for {server}")
    return 0


def cmd_build_busybox(args: argparse.Namespace) -> int:
    """``minictr image build-busybox``: the offline image, from the host's busybox-static."""
    from minictr.engine.container_root import image_store
    from minictr.engine.images.busybox import build_busybox_image

    started = time.monotonic()
    digest = build_busybox_image(image_store(args.data_root), args.name)
    print(f"{args.name}: built {digest} in {time.monotonic() - started:.2f} s")
    return 0


def human_size(size: int) -> str:
    """Sizes as Docker prints them: ``1.03MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"


def print_table(rows: list[dict[str, str]]) -> None:
    """Rows of equal keys as Docker prints them: aligned columns, a header."""
    if not rows:
        return
    keys = list(rows[0])
    widths = [max(len(k), *(len(row[k]) for row in rows)) for k in keys]
    print("   ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)).rstrip())
    for row in rows:
        print("   ".join(row[k].ljust(w) for k, w in zip(keys, widths, strict=True)).rstrip())
