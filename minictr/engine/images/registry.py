"""A client for the OCI distribution API (``/v2/``), as registries speak it today.

Built on the standard library's :mod:`http.client`, on purpose: a registry
client needs little from HTTP (keep-alive connections, streamed bodies,
``Range``, redirects it controls itself) and a lot of control over it —
which headers survive a redirect to a blob store on another host (never the
``Authorization``), when a request is repeated, where a download resumes.
``http.client`` gives exactly that, streams a 100 MB layer through a reused
buffer with ``readinto``, and costs no dependency. Proxy variables are not
honoured: requests go only to the registry named in the reference.

Every request goes through :meth:`Registry.request`, which

- answers a ``401`` challenge once (bearer token from the realm, or basic
  auth; see :mod:`.auth`) and repeats the request;
- follows redirects (at most five), dropping credentials when the host changes;
- repeats idempotent requests on transient failures (connection errors,
  429, 5xx) with a short backoff;
- turns a distribution-spec error body into a :class:`RegistryError` naming
  its code and message.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from minictr.engine.images import auth, oci
from minictr.engine.images.reference import is_loopback
from minictr.errors import RegistryError

#: Manifests larger than this are refused (containerd's limit): they are JSON, not data.
MAX_MANIFEST = 4 << 20
RETRIES = 3
TRANSIENT = (408, 429, 500, 502, 503, 504)
CHUNK = 1 << 20
USER_AGENT = "minictr/0.1"

MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
#: What a pull accepts, best first. schema1 is listed only to recognise it and say it is unsupported.
MANIFEST_ACCEPT = (
    oci.MEDIA_INDEX,
    MEDIA_DOCKER_LIST,
    oci.MEDIA_MANIFEST,
    oci.MEDIA_DOCKER_MANIFEST,
    *MEDIA_DOCKER_SCHEMA1,
)


def insecure_registries() -> set[str]:
    """Registries to reach over plain HTTP besides loopback ones (``$MINICTR_INSECURE_REGISTRIES``, comma-separated)."""
    return {r.strip() for r in os.environ.get("MINICTR_INSECURE_REGISTRIES", "").split(",") if r.strip()}


@dataclass
class Response:
    """A registry's answer. The body is read on demand (:meth:`read`, :meth:`readinto`)."""

    status: int
    headers: http.client.HTTPMessage
    url: str
    raw: http.client.HTTPResponse
    release: Callable[[bool], None]

    def read(self, limit: int | None = None) -> bytes:
        """The whole body (at most ``limit`` bytes, else :class:`RegistryError`); closes the response."""
        try:
            data = self.raw.read() if limit is None else self.raw.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise RegistryError(f"reading the answer of {self.url}: {exc}") from exc
        if limit is not None and len(data) > limit:
            self.close()
            raise RegistryError(f"{self.url}: the answer is larger than {limit} bytes")
        self.close()
        return data

    def discard(self) -> None:
        """Read and drop the body (so the connection can serve the next request)."""
        self.read(MAX_MANIFEST)

    def readinto(self, buffer: memoryview) -> int:
        """Read part of the body into ``buffer``; 0 at its end."""
        return self.raw.readinto(buffer)

    def close(self) -> None:
        """Finish with the answer; a half-read body costs its connection (it cannot be reused)."""
        self.release(self.raw.isclosed() or self.raw.length == 0)
        self.raw.close()


class Registry:
    """One registry (``host[:port]``), with its credentials, tokens and connections.

    Safe to use from several threads: each thread has connections of its own.
    """

    def __init__(self, host: str, *, insecure: bool | None = None, timeout: float = 60.0,
                 login: tuple[str, str] | None = None) -> None:  # fmt: skip
        self.host = host
        plain = insecure if insecure is not None else (is_loopback(host) or host in insecure_registries())
        self.base = f"{'http' if plain else 'https'}://{host}"
        self.timeout = timeout
        self._login = login
        self._login_read = login is not None
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._local = threading.local()

    # --- credentials ------------------------------------------------------------------

    @property
    def login(self) -> tuple[str, str] | None:
        """The (user, password) for this registry: given, or from Docker's config.json."""
        if not self._login_read:
            self._login = auth.credentials(self.host)
            self._login_read = True
        return self._login

    def _authorization(self, scope: str) -> str | None:
        if self._basic and self.login:
            return auth.basic_header(*self.login)
        return f"Bearer {self._tokens[scope]}" if scope in self._tokens else None

    def _authenticate(self, challenge: str, scope: str) -> None:
        """Answer a ``WWW-Authenticate`` challenge so the next request for ``scope`` passes."""
        scheme, params = auth.parse_challenge(challenge)
        if scheme == "basic":
            if not self.login:
                raise RegistryError(
                    f"{self.host} needs a user name and password: minictr login {self.host}", 401, "UNAUTHORIZED"
                )
            self._basic = True
            return
        if scheme != "bearer" or not params.get("realm"):
            raise RegistryError(f"{self.host} asks for an authentication minictr does not speak: {challenge!r}", 401)
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in scope.split(" ") if s]
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": auth.basic_header(*self.login)} if self.login else {}
        answer = self._send("GET", url, headers, None)
        if answer.status == 401:
            answer.read(MAX_MANIFEST)
            who = f"as {self.login[0]}" if self.login else f"anonymously (minictr login {self.host})"
            raise RegistryError(f"the token server of {self.host} refused access to {scope} {who}", 401, "UNAUTHORIZED")
        if answer.status != 200:
            raise _error(answer, f"token request to {realm}")
        self._tokens[scope] = auth.token_from_response(answer.read(MAX_MANIFEST), realm)

    # --- HTTP -------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, scope: str, headers: dict[str, str] | None = None,
                body: bytes | BinaryIO | None = None, ok: tuple[int, ...] = (200,)) -> Response:  # fmt: skip
        """``method path`` (a path below the registry, or a full URL) with auth, redirects and retries.

        Returns the response when its status is in ``ok`` (its body unread);
        raises :class:`RegistryError` otherwise.
        """
        url = path if "://" in path else self.base + path
        for attempt in (1, 2):
            sent = dict(headers or {})
            authorization = self._authorization(scope)
            if authorization:
                sent["Authorization"] = authorization
            response = self._send(method, url, sent, body)
            if response.status != 401 or attempt == 2:
                break
            challenge = response.headers.get("WWW-Authenticate", "")
            response.read(MAX_MANIFEST)
            if not challenge:
                break
            self._authenticate(challenge, scope)
        if response.status not in ok:
            error = _error(response, f"{method} {url}")
            if response.status == 401:
                who = f"as {self.login[0]}" if self.login else f"anonymously (minictr login {self.host})"
                error = RegistryError(f"{error}; tried {who}", 401, error.code)
            raise error
        return response

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes | BinaryIO | None) -> Response:
        """One request, following redirects and repeating it after transient failures."""
        headers = {"User-Agent": USER_AGENT, **headers}
        start = body.tell() if body is not None and not isinstance(body, bytes) else 0
        repeatable = body is None or isinstance(body, bytes) or body.seekable()
        redirects = attempt = 0
        while True:
            parts = urllib.parse.urlsplit(url)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            connection = self._connection(parts.scheme, parts.netloc)
            if body is not None and not isinstance(body, bytes):
                body.seek(start)
            try:
                connection.request(method, target, body=body, headers=headers)
                raw = connection.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(parts.scheme, parts.netloc)
                if attempt < RETRIES and repeatable:
                    attempt += 1
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise RegistryError(f"{method} {url}: {exc or type(exc).__name__}") from exc
            response = Response(raw.status, raw.headers, url, raw, self._releaser(parts.scheme, parts.netloc))
            if raw.status in TRANSIENT and attempt < RETRIES and repeatable:
                response.read(MAX_MANIFEST)
                attempt += 1
                time.sleep(min(float(_retry_after(raw.headers) or 0.2 * 2**attempt), 10.0))
                continue
            location = raw.headers.get("Location")
            if raw.status in (301, 302, 303, 307, 308) and location and method in ("GET", "HEAD"):
                response.read(MAX_MANIFEST)
                redirects += 1
                if redirects > 5:
                    raise RegistryError(f"{method} {url}: too many redirects")
                url = urllib.parse.urljoin(url, location)
                if urllib.parse.urlsplit(url).netloc != parts.netloc:
                    headers.pop("Authorization", None)  # a blob store elsewhere must not see our token
                continue
            return response

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        pool: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        key = (scheme, netloc)
        if key not in pool:
            if scheme == "https":
                pool[key] = http.client.HTTPSConnection(netloc, timeout=self.timeout, blocksize=CHUNK)
            elif scheme == "http":
                pool[key] = http.client.HTTPConnection(netloc, timeout=self.timeout, blocksize=CHUNK)
            else:
                raise RegistryError(f"{self.host} sent minictr to an unsupported URL scheme {scheme!r}")
        return pool[key]

    def _drop(self, scheme: str, netloc: str) -> None:
        connection = self._local.__dict__.get("pool", {}).pop((scheme, netloc), None)
        if connection is not None:
            connection.close()

    def _releaser(self, scheme: str, netloc: str) -> Callable[[bool], None]:
        def release(reusable: bool) -> None:
            if not reusable:
                self._drop(scheme, netloc)

        return release

    def close(self) -> None:
        """Close this thread's connections."""
        for connection in self._local.__dict__.pop("pool", {}).values():
            connection.close()

    # --- the API ------------------------------------------------------------------------------

    def ping(self) -> Response:
        """``GET /v2/``: is this a registry, and does it want credentials? (The body is read.)"""
        response = self._send("GET", f"{self.base}/v2/", {}, None)
        response.read(MAX_MANIFEST)
        return response

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """Fetch a manifest or index by tag or digest; return (bytes, media type, digest), verified.

        By digest, the bytes must hash to it; by tag, to the registry's
        ``Docker-Content-Digest`` when it sends one.
        """
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}", scope=pull_scope(repository),
                                headers={"Accept": ", ".join(MANIFEST_ACCEPT)})  # fmt: skip
        data = response.read(MAX_MANIFEST)
        digest = oci.sha256_digest(data)
        claimed = reference if reference.startswith("sha256:") else response.headers.get("Docker-Content-Digest", "")
        if claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(
                f"manifest {repository}:{reference} does not match its digest: expected {claimed}, got {digest}"
            )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise RegistryError(f"manifest {repository}:{reference} is not JSON") from exc
        if not isinstance(document, dict):
            raise RegistryError(f"manifest {repository}:{reference} is not a JSON object")
        media_type = document.get("mediaType") or media_type
        if media_type in MEDIA_DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
            raise RegistryError(f"{repository}:{reference} is a Docker schema 1 image, deprecated since 2017 and "
                                "not supported: push it again with a current tool")  # fmt: skip
        return data, media_type, digest

    def blob_exists(self, repository: str, digest: str, scope: str | None = None) -> bool:
        """``HEAD`` the blob: True when the repository has it."""
        response = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", scope=scope or pull_scope(repository), ok=(200, 404)
        )
        response.discard()
        return response.status == 200

    def download_blob(
        self, repository: str, descriptor: dict[str, Any], writer: Any, progress: Callable[[int], None]
    ) -> None:
        """Stream a blob into ``writer`` (a :class:`~.store.BlobWriter`), resuming after failures.

        The writer enforces the declared size and verifies the digest. After a
        broken connection the download goes on from where it stopped with a
        ``Range`` request when the registry allows ranges, else from the start.
        """
        digest = descriptor["digest"]
        buffer = memoryview(bytearray(CHUNK))
        failures = 0
        while True:
            headers = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
            response = self.request(
                "GET", f"/v2/{repository}/blobs/{digest}", scope=pull_scope(repository), headers=headers, ok=(200, 206)
            )
            if response.status == 200 and writer.offset:
                progress(-writer.offset)
                writer.reset()  # the registry ignored the Range: start again
            try:
                while count := response.readinto(buffer):
                    writer.write(buffer[:count])
                    progress(count)
                if writer.offset < int(descriptor["size"]):  # http.client ends quietly when a connection drops early
                    raise http.client.IncompleteRead(b"", int(descriptor["size"]) - writer.offset)
                return
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                if failures > RETRIES:
                    raise RegistryError(f"downloading {digest}: {exc} (after {RETRIES} retries)") from exc
                time.sleep(0.2 * 2**failures)
            finally:
                response.close()


def pull_scope(repository: str) -> str:
    """The token scope that lets a client read ``repository``."""
    return f"repository:{repository}:pull"


def push_scope(repository: str, *mount_from: str) -> str:
    """The scopes to write ``repository`` (and read the repositories blobs are mounted from), space-separated."""
    return " ".join([f"repository:{repository}:pull,push", *(pull_scope(r) for r in mount_from)])


def _retry_after(headers: http.client.HTTPMessage) -> str | None:
    value = headers.get("Retry-After", "")
    return value if value.isdigit() else None


def _error(response: Response, what: str) -> RegistryError:
    """A :class:`RegistryError` from an error answer, with the spec's error code and message if present."""
    try:
        body = response.read(MAX_MANIFEST) if response.raw._method != "HEAD" else b""  # type: ignore[attr-defined]  # http.client's record of the method
    except RegistryError:
        body = b""
    code, message = "", ""
    try:
        errors = json.loads(body).get("errors") or []
        if errors:
            code, message = errors[0].get("code", ""), errors[0].get("message", "")
    except (ValueError, AttributeError):
        pass
    reason = f"{code}: {message}" if code else (response.raw.reason or "error")
    hint = ""
    if response.status == 404 and "/manifests/" in response.url:
        hint = " (no such image or tag)"
    return RegistryError(f"{what} -> {response.status} {reason}{hint}", response.status, code)
