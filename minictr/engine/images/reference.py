"""Image references, parsed the way Docker parses them.

A reference names an image in a registry::

    [REGISTRY[:PORT]/]REPOSITORY[:TAG][@DIGEST]

- the first component is a registry when it contains a ``.`` or a ``:``, or
  is ``localhost``; otherwise the registry is Docker Hub (``docker.io``);
- on Docker Hub a one-component repository lives under ``library/``
  (``busybox`` is ``docker.io/library/busybox``);
- no tag and no digest means ``:latest``.

The grammar is the one of ``distribution/reference`` (``reference.go``):
lowercase path components joined by ``/``, separated inside by ``.``, ``_``,
``__`` or dashes; a tag of up to 128 word characters, dots and dashes; a
digest ``algorithm:hex``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minictr.errors import ImageError

DOCKER_HUB = "docker.io"
#: Where Docker Hub's registry API actually answers.
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    """A parsed image reference: ``Reference('docker.io', 'library/busybox', 'latest', None)``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository: ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host:port whose ``/v2/`` API serves this repository (Docker Hub's is not docker.io)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def familiar(self) -> str:
        """Docker's short form, as ``docker images`` shows it and the store names it.

        ``docker.io/library/busybox:latest`` -> ``busybox``;
        ``127.0.0.1:5000/app:1`` stays as it is.
        """
        repository = self.repository
        if self.registry == DOCKER_HUB:
            repository = repository.removeprefix("library/") if repository.count("/") == 1 else repository
        else:
            repository = f"{self.registry}/{repository}"
        if self.digest:
            return f"{repository}@{self.digest}" if not self.tag else f"{repository}:{self.tag}@{self.digest}"
        return repository if self.tag in (None, DEFAULT_TAG) else f"{repository}:{self.tag}"

    def with_tag(self, tag: str) -> Reference:
        """The same repository with another tag (and no digest)."""
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(text: str) -> Reference:
    """Parse ``text`` as Docker does; a malformed reference is an :class:`ImageError` saying why."""
    original = text
    text = text.strip()
    if not text:
        raise ImageError("invalid image reference '': it is empty")
    name, at, digest = text.partition("@")
    if at and not _DIGEST.fullmatch(digest):
        raise ImageError(f"invalid image reference {original!r}: {digest!r} is not a digest (algorithm:hex)")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ImageError(f"invalid image reference {original!r}: {tag!r} is not a valid tag")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise ImageError(f"invalid image reference {original!r}: {first!r} is not a registry host[:port]")
        registry, repository = first, rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if repository != repository.lower():
        raise ImageError(f"invalid image reference {original!r}: repository name must be lowercase")
    if not _PATH.fullmatch(repository):
        raise ImageError(f"invalid image reference {original!r}: {repository!r} is not a repository name "
                         "(lowercase letters, digits and separators . _ __ - /)")  # fmt: skip
    if len(f"{registry}/{repository}") > _MAX_NAME:
        raise ImageError(f"invalid image reference {original!r}: the name is longer than {_MAX_NAME} characters")
    if tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest if at else None)


def is_loopback(host: str) -> bool:
    """True for registries on this machine (``localhost``, ``127.x``, ``[::1]``): plain HTTP is allowed there."""
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    bare = bare.strip("[]")
    return bare in ("localhost", "::1") or bare.startswith("127.")
