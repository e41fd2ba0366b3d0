"""A real registry on loopback for the tests: Debian's docker-registry, and a token server for its auth.

:func:`start_registry` (notebook 08's helper) runs ``docker-registry serve`` on
127.0.0.1 with a free port and a storage directory of its own;
:class:`TokenServer` is the small token endpoint that registry's ``auth:
token`` configuration points at: it checks HTTP basic credentials and issues
JWTs signed with a key and certificate made for the session, which the
registry trusts through ``rootcertbundle``. Test images are OCI layouts built
here from the busybox image (never downloaded), pushed with skopeo.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from minictr.engine.images import oci
from minictr.tutorial.images import LoopbackRegistry, start_registry  # noqa: F401 - re-exported for the tests

USER, PASSWORD = "tester", "secret"
SERVICE, ISSUER = "minictr-test-registry", "minictr-test-tokens"


#: The registry helpers are notebook 08's: one implementation for the lesson and the tests.
LocalRegistry = LoopbackRegistry


class TokenServer:
    """A token endpoint: basic-auth users get what they ask for; anonymous users may pull ``public/*``."""

    def __init__(self, directory: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )  # fmt: skip
        self.bundle = os.path.join(directory, "token-cert.pem")
        with open(self.bundle, "wb") as handle:
            handle.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                user = server.check(self.headers.get("Authorization", ""))
                if user is None:
                    self.send_response(401)
                    self.end_headers()
                    return
                access = server.grant(user, query.get("scope", []))
                server.requests.append({"user": user, "scope": query.get("scope", []), "access": access})
                body = json.dumps({"token": server.token(user, query.get("service", [""])[0], access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def auth_config(self) -> dict[str, Any]:
        """docker-registry's ``auth:`` section for this server."""
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": self.bundle}}

    @staticmethod
    def check(header: str) -> str | None:
        """'' for anonymous, the user for good credentials, None for bad ones."""
        if not header:
            return ""
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if (user, password) == (USER, PASSWORD) else None

    @staticmethod
    def grant(user: str, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            allowed = wanted if user else [a for a in wanted if a == "pull" and name.startswith("public/")]
            if kind == "repository" and allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def token(self, user: str, service: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        def part(value: Any) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        der = self.cert.public_bytes(serialization.Encoding.DER)
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": ISSUER, "sub": user, "aud": service, "exp": now + 600, "nbf": now - 10, "iat": now,
                  "jti": os.urandom(8).hex(), "access": access}  # fmt: skip
        signing_input = f"{part(header)}.{part(claims)}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FlakyProxy:
    """A proxy in front of a registry that breaks the first large blob download half way (a flaky network)."""

    def __init__(self, upstream: str) -> None:
        import http.client

        self.broken = 0
        self.ranges: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                connection = http.client.HTTPConnection(upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                if "Range" in self.headers:
                    proxy.ranges.append(self.headers["Range"])
                connection.request(self.command, self.path, headers=headers)
                answer = connection.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "GET" and "/blobs/" in self.path and len(body) > 100_000 and not proxy.broken:
                    proxy.broken += 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _forward  # http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- test images: OCI layouts built here ------------------------------------------------------


def tar_layer(entries: list[tuple[Any, ...]], mtime: int = 1_600_000_000) -> bytes:
    """An uncompressed layer tar from (name, kind, payload[, attributes]) tuples.

    kind is file, dir, symlink, link or chr; attributes set TarInfo fields
    (uid, gid, mode, mtime, pax_headers).
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, *rest in entries:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            info.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "file":
                info.size = len(payload)
                data = io.BytesIO(payload)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, payload
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            for key, value in (rest[0] if rest else {}).items():
                setattr(info, key, value)
            tar.addfile(info, data)
    return raw.getvalue()


#: Layers that must be refused, and the words of the refusal.
HOSTILE_LAYERS = [
    ([("../escape", "file", b"x")], "outside the image"),
    ([("/abs", "file", b"x")], "outside the image"),
    ([("evil", "symlink", "/tmp"), ("evil/file", "file", b"x")], "through a symlink"),
    ([("hard", "link", "../../etc/passwd")], "outside the image"),
    ([("dev", "symlink", "/dev"), ("dev/null", "chr", None)], "through a symlink"),
]
HOSTILE_IDS = ["dotdot", "absolute", "symlink-escape", "hardlink-escape", "device-through-symlink"]


class Layout:
    """An OCI image layout directory that tests fill with images, then push with skopeo."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(root, "oci-layout"), "w") as handle:
            json.dump({"imageLayoutVersion": "1.0.0"}, handle)
        self.manifests: list[dict[str, Any]] = []
        self._write_index()

    def blob(self, data: bytes) -> str:
        digest = oci.sha256_digest(data)
        with open(os.path.join(self.root, "blobs", "sha256", digest[7:]), "wb") as handle:
            handle.write(data)
        return digest

    def image(self, name: str, layers: list[tuple[bytes, str]], *, config: dict[str, Any] | None = None,
              platform: dict[str, str] | None = None, tag: bool = True) -> dict[str, Any]:  # fmt: skip
        """Add an image of (uncompressed tar, compression) layers; return its manifest descriptor."""
        platform = platform or oci.host_platform()
        blobs, diff_ids = [], []
        for tar, compression in layers:
            diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
            if compression == "gzip":
                data, media = gzip.compress(tar, mtime=0), oci.MEDIA_LAYER_GZIP
            elif compression == "zstd":
                import zstandard

                data, media = zstandard.ZstdCompressor().compress(tar), oci.MEDIA_LAYER_ZSTD
            else:
                data, media = tar, oci.MEDIA_LAYER_TAR
            self.blob(data)
            blobs.append(oci.descriptor(media, data))
        image_config = {
            **platform,
            "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"], **(config or {})},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        config_bytes = oci.canonical_json(image_config)
        self.blob(config_bytes)
        manifest = oci.canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": oci.MEDIA_MANIFEST,
                "config": oci.descriptor(oci.MEDIA_CONFIG, config_bytes),
                "layers": blobs,
            }
        )
        self.blob(manifest)
        descriptor = oci.descriptor(oci.MEDIA_MANIFEST, manifest, platform=platform)
        if tag:
            self.name(name, descriptor)
        return descriptor

    def index(self, name: str, manifests: list[dict[str, Any]]) -> str:
        data = oci.canonical_json({"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": manifests})
        self.blob(data)
        self.name(name, oci.descriptor(oci.MEDIA_INDEX, data))
        return oci.sha256_digest(data)

    def name(self, name: str, descriptor: dict[str, Any]) -> None:
        self.manifests = [m for m in self.manifests if m["annotations"][oci.REF_NAME] != name]
        self.manifests.append({**descriptor, "annotations": {oci.REF_NAME: name}})
        self._write_index()

    def archive(self, path: str) -> str:
        """The layout as one tar file (an oci-archive, as ``minictr load -i`` reads it); return ``path``."""
        with tarfile.open(path, "w") as tar:
            for name in sorted(os.listdir(self.root)):
                tar.add(os.path.join(self.root, name), name)
        return path

    def _write_index(self) -> None:
        with open(os.path.join(self.root, "index.json"), "w") as handle:
            json.dump({"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": self.manifests}, handle)


def busybox_tar(store_root: str) -> bytes:
    """The uncompressed layer of the session's busybox image (a base for test images)."""
    from minictr.engine.images.store import ImageStore

    store = ImageStore(store_root)
    layer = store.get("busybox").layers[0]
    with open(store.blob_path(layer["digest"]), "rb") as handle:
        return gzip.decompress(handle.read())


def skopeo_copy(source: str, dest: str, *extra: str) -> None:
    """``skopeo copy`` to or from the loopback registry (plain HTTP)."""
    flags = ["--src-tls-verify=false"] if source.startswith("docker://") else []
    flags += ["--dest-tls-verify=false"] if dest.startswith("docker://") else []
    subprocess.run(
        ["skopeo", "copy", "-q", *flags, *extra, source, dest], check=True, capture_output=True, text=True, timeout=120
    )


def have_peers() -> str:
    """'' when docker-registry and skopeo are installed, else what is missing."""
    missing = [tool for tool in ("docker-registry", "skopeo") if not shutil.which(tool)]
    return f"{' and '.join(missing)} not installed (apt-get install docker-registry skopeo)" if missing else ""
