"""Registry credentials and challenges: Docker's config.json, ``WWW-Authenticate``, tokens.

A registry that wants authentication answers ``401`` with a challenge::

    WWW-Authenticate: Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"

The client then asks the *realm* (a token server) for a token valid for that
service and scope — anonymously, or with the user's name and password in
HTTP basic auth — and repeats the request with ``Authorization: Bearer
<token>`` (the distribution spec's "token authentication"). A ``Basic``
challenge asks for the name and password on every request instead.

Credentials live where Docker keeps them, so ``docker login`` and
``minictr login`` share them: ``$DOCKER_CONFIG/config.json`` (default
``~/.docker/config.json``), under ``auths.<registry>.auth`` as
base64(``user:password``); Docker Hub's key is ``https://index.docker.io/v1/``.
Credential helpers (``credsStore``) are not supported: minictr says so
instead of pretending.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

from minictr.engine.images.reference import DOCKER_HUB, DOCKER_HUB_API
from minictr.errors import RegistryError, UsageError

#: The key Docker uses for Docker Hub in config.json.
DOCKER_HUB_KEY = "https://index.docker.io/v1/"

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``'Bearer realm="…",service="…"'`` -> ``('bearer', {'realm': '…', 'service': '…'})``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): (m[2].replace('\\"', '"') if m[2] is not None else m[3]) for m in _PARAM.finditer(rest)}
    return scheme.lower(), params


def config_path() -> str:
    """Docker's client configuration file in force (``$DOCKER_CONFIG/config.json``)."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


def _key(registry: str) -> str:
    return DOCKER_HUB_KEY if registry in (DOCKER_HUB, DOCKER_HUB_API, "index.docker.io") else registry


def _load() -> dict[str, Any]:
    try:
        with open(config_path()) as handle:
            config: dict[str, Any] = json.load(handle)
            return config
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read credentials from {config_path()}: {exc}") from exc


def credentials(registry: str) -> tuple[str, str] | None:
    """The (user, password) stored for ``registry``, or None."""
    config = _load()
    auths = config.get("auths", {})
    entry = None
    for key in (_key(registry), f"https://{registry}", f"http://{registry}"):
        if key in auths:
            entry = auths[key]
            break
    if entry is None:
        if config.get("credsStore") or registry in config.get("credHelpers", {}):
            raise UsageError(f"credentials for {registry} are kept by a Docker credential helper, which minictr does "
                             f"not support; run minictr login {registry}")  # fmt: skip
        return None
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    try:
        user, _, password = base64.b64decode(entry.get("auth", "")).decode().partition(":")
    except ValueError as exc:
        raise UsageError(f"{config_path()}: the auth entry for {registry} is not base64(user:password)") from exc
    return (user, password) if user else None


def store_credentials(registry: str, user: str, password: str) -> str:
    """Save credentials for ``registry`` (``minictr login``); return the file written."""
    config = _load()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config.setdefault("auths", {})[_key(registry)] = {"auth": token}
    _save(config)
    return config_path()


def forget_credentials(registry: str) -> bool:
    """Remove the credentials of ``registry`` (``minictr logout``); True if there were any."""
    config = _load()
    found = config.get("auths", {}).pop(_key(registry), None) is not None
    if found:
        _save(config)
    return found


def _save(config: dict[str, Any]) -> None:
    """Write config.json atomically, readable only by its owner (it holds passwords)."""
    from minictr.files import write_atomic

    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_atomic(path, json.dumps(config, indent="\t").encode(), mode=0o600)


def basic_header(user: str, password: str) -> str:
    """The ``Authorization`` value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token_from_response(body: bytes, realm: str) -> str:
    """The token in a token server's JSON answer (``token``, or OAuth2's ``access_token``)."""
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise RegistryError(f"the token server {realm} did not answer with JSON") from exc
    token: str | None = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        raise RegistryError(f"the token server {realm} answered without a token")
    return token
