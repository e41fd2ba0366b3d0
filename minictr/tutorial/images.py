"""08 · Images and layers: a registry on loopback, raw HTTP to it, layers and overlays seen from outside,
and the exercise ``container_diff(upper)`` with its check and solution.

Every request these helpers send goes to 127.0.0.1 (they refuse any other
host), and no proxy is consulted.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minictr.tutorial.checking import Verdict, printed_by, raised, returned_none, run_in_child, source_of

# --- a registry on loopback ----------------------------------------------------------------------


@dataclass
class LoopbackRegistry:
    """Debian's docker-registry, serving on ``host`` (127.0.0.1:PORT) from ``storage``."""

    host: str
    storage: str
    process: subprocess.Popen[bytes]

    def blob_file(self, digest: str) -> str:
        """Where the registry keeps a blob's bytes on disk."""
        hexdigest = digest.partition(":")[2]
        return os.path.join(
            self.storage, "docker", "registry", "v2", "blobs", "sha256", hexdigest[:2], hexdigest, "data"
        )

    def stop(self) -> None:
        """Stop the registry (its storage stays until its directory is removed)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_registry(directory: str, auth: dict[str, Any] | None = None) -> LoopbackRegistry:
    """Start ``docker-registry serve`` on 127.0.0.1 (a free port), its config and storage in ``directory``."""
    from minictr.tutorial.common import HostLacks

    if not shutil.which("docker-registry"):
        raise HostLacks("this notebook starts a registry on loopback: apt-get install docker-registry")
    port = free_port()
    storage = os.path.join(directory, "storage")
    os.makedirs(storage, exist_ok=True)
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}"},
        **({"auth": auth} if auth else {}),
    }
    path = os.path.join(directory, "config.yml")
    with open(path, "w") as handle:
        json.dump(config, handle)  # JSON is YAML
    with open(os.path.join(directory, "registry.log"), "wb") as log:  # the server holds its own copy
        process = subprocess.Popen(["docker-registry", "serve", path], stdout=log, stderr=subprocess.STDOUT)
    registry = LoopbackRegistry(f"127.0.0.1:{port}", storage, process)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            http_get(f"http://{registry.host}/v2/")
            return registry
        except OSError:
            time.sleep(0.1)
    registry.stop()
    with open(os.path.join(directory, "registry.log")) as handle:
        raise RuntimeError(f"docker-registry did not start: {handle.read().strip()}")


# --- raw HTTP, loopback only -----------------------------------------------------------------------


@dataclass
class Answer:
    """An HTTP answer: status, headers, body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(url: str, accept: str | None = None) -> Answer:
    """``GET url`` — only to 127.0.0.1, without proxies or redirects — and the answer, errors included."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host.startswith("127."):
        raise ValueError(f"this notebook's raw requests go only to 127.0.0.1, not {host!r}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with opener.open(request, timeout=10) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def show_answer(
    answer: Answer, headers: tuple[str, ...] = ("Content-Type", "Docker-Content-Digest"), body: int = 0
) -> None:
    """Print the status line, a few headers, and the start of the body."""
    print(f"HTTP {answer.status}")
    for name in headers:
        if name in answer.headers:
            print(f"{name}: {answer.headers[name]}")
    if body:
        text = answer.body[:body].decode(errors="replace")
        print(text + (" …" if len(answer.body) > body else ""))


def tar_entries(layer: bytes, limit: int = 10) -> list[str]:
    """The first entries of a (gzip'd) layer, as ``tar tv`` shows them: type, mode, owner, size, name."""
    data = gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer
    lines = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            kind = {tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.LNKTYPE: "h", tarfile.CHRTYPE: "c"}.get(
                member.type, "-"
            )
            target = (
                f" -> {member.linkname}"
                if member.issym()
                else (f" link to {member.linkname}" if member.islnk() else "")
            )
            lines.append(
                f"{kind}{stat.filemode(member.mode)[1:]} {member.uid}/{member.gid} {member.size:>8} "
                f"{member.name}{target}"
            )
            if len(lines) == limit:
                break
    return lines


# --- overlays, from outside ----------------------------------------------------------------------------


def describe(path: str) -> str:
    """One ``ls -l``-like word for an upper-directory entry, telling whiteouts and opaque directories apart."""
    info = os.lstat(path)
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
        return "whiteout (character device 0/0)"
    if stat.S_ISDIR(info.st_mode):
        try:
            if os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                return "opaque directory (trusted.overlay.opaque=y)"
        except OSError:
            pass
        return "directory"
    return "symlink" if stat.S_ISLNK(info.st_mode) else f"file, {info.st_size} bytes"


def upper_listing(upper: str) -> list[str]:
    """Every entry of a container's upper directory, with what it is."""
    lines = []
    for directory, dirs, files in os.walk(upper):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            lines.append(f"/{os.path.relpath(path, upper)}: {describe(path)}")
    return lines


def internet_route() -> tuple[bool, str]:
    """Whether this host *could* reach the internet, judged without sending a single packet.

    It looks for a default route (``/proc/net/route``, ``/proc/net/ipv6_route``)
    and a name server (``/etc/resolv.conf``). Both present does not prove the
    internet answers; either missing proves it cannot.
    """
    default = False
    try:
        with open("/proc/net/route") as handle:
            default = any(line.split()[1] == "00000000" for line in list(handle)[1:] if len(line.split()) > 1)
        with open("/proc/net/ipv6_route") as handle:
            default = default or any(
                line.split()[0] == "0" * 32 and line.split()[1] == "00" and line.split()[9] != "lo" for line in handle
            )
    except OSError:
        pass
    try:
        with open("/etc/resolv.conf") as handle:
            servers = [line.split()[1] for line in handle if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        servers = []
    if not default:
        return False, "no default route: packets to the internet have nowhere to go"
    if not servers:
        return False, "no name server in /etc/resolv.conf: registry-1.docker.io cannot be resolved"
    return True, "a default route and a name server (the internet may answer)"


# --- the exercise: container_diff(upper) -------------------------------------------------------------------------


def _diff_check(
    source: str, name: str, where: str
) -> dict[str, object]:  # only builtins in annotations: it travels as source to a bare child
    """(Runs in the check's child, as root.) Build an upper directory as overlayfs leaves it, run the learner's
    function on it.
    """
    import stat as stat_module

    from minictr.tutorial.checking import run_learner

    upper = os.path.join(where, "upper")
    for directory in ("etc", "usr/local/bin", "bin", "tmp/cache", "var/log/empty", "home/user"):
        os.makedirs(os.path.join(upper, directory), exist_ok=True)
    for path, text in (("etc/hostname", "web\n"), ("usr/local/bin/tool", "#!/bin/sh\n"), ("home/user/.profile", "x\n")):
        with open(os.path.join(upper, path), "w") as handle:
            handle.write(text)
    os.symlink("/usr/local/bin/tool", os.path.join(upper, "bin/tool"))
    for path in ("bin/vi", "tmp/cache/old", "etc/motd"):
        os.mknod(os.path.join(upper, path), stat_module.S_IFCHR | 0o600, os.makedev(0, 0))  # what rm leaves
    return run_learner(source, name, upper)


EXPECTED_DIFF = (["/bin/tool", "/etc/hostname", "/home/user/.profile", "/usr/local/bin/tool"],
                 ["/bin/vi", "/etc/motd", "/tmp/cache/old"])  # fmt: skip


def judge_container_diff(function: Callable[[str], Any], where: str) -> Verdict:
    """Run ``function(upper)`` in a child on an upper directory made there; say precisely what is wrong."""
    name = function.__name__
    os.makedirs(where, exist_ok=True)
    try:
        report = run_in_child(_diff_check, source_of(function), name, where)
    finally:
        shutil.rmtree(os.path.join(where, "upper"), ignore_errors=True)
    printed = printed_by(report)
    if "error" in report:
        return Verdict(False, printed + f"✘ the check could not run: {report['error']['message']}")
    state = report["value"]
    if "error" in state:
        return Verdict(False, printed + raised(name, state["error"]))
    value = state.get("value")
    if value is None:
        return Verdict(False, printed + returned_none(f"{name}(upper)"))
    if not isinstance(value, list) or len(value) != 2:
        return Verdict(False, printed + f"✘ {name}(upper) returned {value!r}: return two lists, (changed, deleted)")
    changed, deleted = (sorted(v) if isinstance(v, list) else v for v in value)
    want_changed, want_deleted = EXPECTED_DIFF
    if any(not str(p).startswith("/") for p in changed + deleted):
        return Verdict(
            False,
            printed + "✘ give paths as the container sees them, from its root: '/etc/hostname', not 'etc/hostname'",
        )
    if any(p in want_deleted for p in changed):
        return Verdict(
            False,
            printed + f"✘ {sorted(set(changed) & set(want_deleted))} are whiteouts (character devices 0/0):\n"
            "  they mark what the container deleted, so they belong in the second list",
        )
    if any(
        p.rstrip("/") in ("/etc", "/bin", "/usr", "/usr/local", "/tmp", "/home", "/var") or p.startswith("/var/log")
        for p in changed
    ):
        return Verdict(
            False,
            printed + "✘ directories are listed as changed: overlayfs copies a directory up only to hold\n"
            "  what changed inside it; list files, symlinks and whiteouts, not directories",
        )
    if changed != want_changed:
        return Verdict(False, printed + f"✘ changed: expected {want_changed}, got {changed}")
    if deleted != want_deleted:
        return Verdict(False, printed + f"✘ deleted: expected {want_deleted}, got {deleted}")
    return Verdict(
        True, printed + f"✔ Correct: {name} tells what a container wrote from what it deleted, as `docker diff` does."
    )


def check_container_diff(function: Callable[[str], Any]) -> None:
    """Print the verdict of :func:`judge_container_diff` (in this notebook's work directory)."""
    from minictr.tutorial.common import workdir

    judge_container_diff(function, os.path.join(workdir("08-images"), "exercise")).show()


SOLUTIONS = {
    "container_diff": '''
        def container_diff(upper):
            """(changed, deleted): what a container wrote, and what it deleted, from its overlay's upper directory."""
            import stat
            changed, deleted = [], []
            for directory, dirs, files in os.walk(upper):
                for entry in dirs + files:
                    path = os.path.join(directory, entry)
                    info = os.lstat(path)
                    seen = "/" + os.path.relpath(path, upper)
                    if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                        deleted.append(seen)          # a whiteout: deleted in the container
                    elif not stat.S_ISDIR(info.st_mode):
                        changed.append(seen)          # written (or copied up to be changed)
            return sorted(changed), sorted(deleted)
    ''',
}
