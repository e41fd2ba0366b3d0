"""What this host allows, and what each missing piece costs the learner.

``minictr doctor`` (and the first notebook) run :func:`run_checks` and show
the result with :func:`render_table` or :func:`to_json`. Every check only
*reads* the host (``/proc``, ``/sys``, ``PATH``, ELF headers), except the
privilege check, which proves privilege by trying: a short-lived child
process unshares a mount namespace and mounts a tmpfs inside it, which dies
with the child (:mod:`minictr.kernel.privilege`). Doctor never mounts in its own
namespace, loads modules or writes sysctls, and it contacts no network host
unless a registry address is given explicitly.

Each check is a small ``_probe_*`` function returning a :class:`Finding`;
:func:`run_probe` turns any exception into status ``"unknown"`` with the
reason, so doctor never crashes on an unusual host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from minictr.errors import HostError
from minictr.kernel.cgroups.layout import cgroup_layout
from minictr.kernel.mountinfo import read_mountinfo

__all__ = [
    "NOTEBOOKS",
    "Check",
    "Finding",
    "Probe",
    "cgroup_layout",
    "render_table",
    "run_checks",
    "run_probe",
    "to_json",
]

#: The tutorial's notebooks, in order (see NOTEBOOKS.md); ``Check.affects`` names these.
NOTEBOOKS: tuple[str, ...] = (
    "00-welcome",
    "01-chroot",
    "02-mount-namespace",
    "03-uts-ipc",
    "04-pid-namespace",
    "05-user-namespace",
    "06-network",
    "07-cgroups",
    "08-images",
    "09-security",
    "10-runtime",
    "11-microservices",
    "12-containers-vs-vms",
)
STATUSES = ("ok", "missing", "unknown")


@dataclass(frozen=True)
class Check:
    """The result of one check. ``affects`` and ``fix`` matter only when status is not "ok"."""

    name: str
    title: str
    status: str
    detail: str
    affects: tuple[str, ...]
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``affects`` as a list)."""
        d = asdict(self)
        d["affects"] = list(self.affects)
        return d


class Finding(NamedTuple):
    """What a probe found; ``fix`` overrides the probe's default fix."""

    status: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Probe:
    """A check's fixed description plus the function that looks at the host."""

    name: str
    title: str
    affects: tuple[str, ...]
    fix: str
    func: Callable[[], Finding]


def run_probe(probe: Probe) -> Check:
    """Run one probe; any exception becomes status "unknown" with the reason as detail."""
    try:
        status, detail, fix = probe.func()
        if status not in STATUSES:
            raise ValueError(f"probe returned status {status!r}")
    except Exception as exc:  # doctor must survive any host, so catch everything
        status, detail, fix = "unknown", f"check failed: {type(exc).__name__}: {exc}", ""
    if status == "ok":
        fix = ""
    elif status == "missing":
        fix = fix or probe.fix
    return Check(probe.name, probe.title, status, " ".join(detail.split()), probe.affects, fix)


# --- helpers ---------------------------------------------------------------


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


# --- the probes --------------------------------------------------------------


def _probe_root() -> Finding:
    from minictr.kernel.privilege import probe  # tries, in a child process: uid 0 alone is not enough in a hosted pod

    privileged, detail, fix = probe()
    return Finding("ok" if privileged else "missing", detail, fix)


def _probe_kernel() -> Finding:
    release = os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        return Finding("unknown", f"cannot parse kernel release {release!r}")
    if (int(m[1]), int(m[2])) >= (5, 6):
        return Finding("ok", f"{release} (>= 5.6: time namespaces available)")
    return Finding("missing", f"{release} < 5.6: no time namespaces; everything else works")


def _probe_cgroups() -> Finding:
    info = cgroup_layout()
    layout, v1, v2 = info["layout"], info["v1"], info["v2"]
    parts = []
    if v1:
        real = sorted(c for c in v1 if not c.startswith("name="))
        named = sorted(c for c in v1 if c.startswith("name="))
        parts.append("v1 " + ",".join(real + named))
    if v2["path"]:
        parts.append(f"cgroup2 at {v2['path']}: " + (",".join(v2["controllers"]) or "no controllers"))
    if layout == "none":
        return Finding("missing", "no cgroup controllers mounted" + (f" ({'; '.join(parts)})" if parts else ""))
    return Finding("ok", f"{layout}: " + "; ".join(parts))


def _probe_overlayfs() -> Finding:
    with open("/proc/filesystems", encoding="utf-8") as f:
        names = {line.split()[-1] for line in f if line.strip()}
    if "overlay" in names:
        return Finding("ok", "overlay in /proc/filesystems")
    return Finding(
        "missing",
        "overlay not in /proc/filesystems (`modprobe overlay` may load it); 08-images falls back to copying layers",
    )


def _probe_userns() -> Finding:
    limit = int(_read("/proc/sys/user/max_user_namespaces"))
    if limit <= 0:
        return Finding("missing", f"user.max_user_namespaces = {limit}", "sysctl -w user.max_user_namespaces=15000")
    detail = f"user.max_user_namespaces = {limit}"
    # Ubuntu (AppArmor) and older Debian kernels block user namespaces for unprivileged users
    for sysctl, blocked in (
        ("kernel.apparmor_restrict_unprivileged_userns", "1"),
        ("kernel.unprivileged_userns_clone", "0"),
    ):
        path = "/proc/sys/" + sysctl.replace(".", "/")
        if os.path.exists(path) and _read(path) == blocked:
            if os.geteuid() != 0:
                return Finding(
                    "missing",
                    f"{detail}; {sysctl} = {blocked} blocks rootless containers",
                    f"sysctl -w {sysctl}={int(not int(blocked))} (or run as root)",
                )
            detail += f"; {sysctl} = {blocked} (blocks non-root only)"
    return Finding("ok", detail)


def _probe_propagation() -> Finding:
    roots = [m for m in read_mountinfo() if m.mount_point == "/"]
    if not roots:
        return Finding("unknown", "no mount at / in /proc/self/mountinfo")
    tags = [t for t in roots[-1].optional if t]  # the last "/" entry is the one on top
    mode = " ".join(tags) or "private"
    return Finding(
        "ok",
        f"/ is {mode}; minictr makes / private (rec) inside each container's own "
        "mount namespace, so container mounts never reach the host",
    )


def _which(name: str) -> str | None:
    # sbin is often missing from a non-root PATH, yet that is where nft lives
    path = os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin"
    return shutil.which(name, path=path)


def _probe_firewall() -> Finding:
    nft, ipt = _which("nft"), _which("iptables")
    if nft:
        return Finding("ok", f"nft at {nft}: minictr's NAT and published ports live in the nftables table ip minictr")
    if ipt:
        return Finding("missing", f"only iptables at {ipt}: minictr writes NAT and published ports with nft only")
    return Finding("missing", "neither nft nor iptables found: no NAT or published ports")


def _probe_network() -> Finding:
    try:
        import pyroute2  # noqa: F401 - doctor may be slow; the container start path may not
    except ImportError:
        return Finding("missing", "pyroute2 is not installed: no bridge networks (--network none or host still work)")
    from minictr.engine.network.links import host_networks
    from minictr.engine.network.pools import address_pools, free_subnet
    from minictr.errors import UsageError

    host = host_networks()
    seen = ", ".join(sorted({f"{net} ({device})" for net, device in host}))
    try:
        pools, source = address_pools()
        subnet = free_subnet(host, pools)
    except UsageError as exc:
        return Finding("missing", f"{exc}; this host's networks: {seen}")
    listed = ", ".join(f"{base} in /{size}s" for base, size in pools[:3])
    more = f" and {len(pools) - 3} more" if len(pools) > 3 else ""
    with open("/proc/sys/net/ipv4/ip_forward", encoding="utf-8") as f:
        forward = f.read().strip()
    return Finding(
        "ok",
        f"the default bridge network gets {subnet}, clear of this host's networks: {seen} "
        f"(address pools, {source}: {listed}{more}); "
        f"net.ipv4.ip_forward = {forward} (on while a bridge network has containers)",
    )


def _probe_busybox() -> Finding:
    from minictr.engine.images.busybox import find_static_busybox

    try:
        return Finding("ok", f"{find_static_busybox()} is statically linked")
    except HostError as exc:
        return Finding("missing", f"{exc}: the offline busybox image cannot be built")


#: Where the capstone lives (examples/microservices beside the package, in a checkout).
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "microservices")


def _probe_microservices() -> Finding:
    """The capstone builds offline: the Debian base image in the store, and each service's packages fetched."""
    from minictr.engine.container_root import image_store
    from minictr.errors import ImageNotFound

    if os.environ.get("MINICTR_DEBIAN_IMAGE") == "0":
        return Finding("missing", "MINICTR_DEBIAN_IMAGE=0: no Debian base image on this host")
    try:
        image_store().get("minictr/debian:bookworm")
    except (ImageNotFound, OSError):
        return Finding("missing", "no minictr/debian:bookworm image", "bash scripts/debian-image.sh")
    lacking = [s for s in ("web", "db", "lb") if not os.path.isfile(os.path.join(EXAMPLE, s, "debs", "Packages"))]
    if lacking:
        return Finding("missing", f"no Debian packages for {', '.join(lacking)} in examples/microservices")
    return Finding("ok", "minictr/debian:bookworm, and the packages examples/microservices installs (web, db, lb)")


def _probe_seccomp() -> Finding:
    from minictr.kernel.security.seccomp import SeccompError, library

    try:
        library()
    except SeccompError as exc:
        return Finding("missing", f"{exc}: containers could run only with --security-opt seccomp=unconfined")
    return Finding("ok", "libseccomp.so.2 builds the default seccomp profile")


def _probe_registry_server() -> Finding:
    found = _which("docker-registry")
    if found:
        return Finding("ok", f"{found}: notebook 08 and the tests serve images from it on 127.0.0.1")
    return Finding("missing", "docker-registry not found: notebook 08 runs its own registry on 127.0.0.1 with it")


def _probe_vm() -> Finding:
    from minictr.vm.guest import host_kernel, kvm_device, qemu_path

    try:
        qemu, kernel = qemu_path(), host_kernel()
    except HostError as exc:
        return Finding("missing", f"{exc}: notebook 12 cannot boot a VM beside its container")
    kvm = kvm_device() or "/dev/kvm opens (a test boot decides whether KVM is used)"
    return Finding("ok", f"{os.path.basename(qemu)} can boot {kernel.path}; {kvm}")


def _probe_registry(registry: str | None, timeout: float) -> Finding:
    if not registry:
        return Finding("unknown", "not checked (pass --registry HOST:PORT)")
    # imported here: the HTTP stack is only needed when a registry is given
    import socket
    import urllib.error
    import urllib.parse
    import urllib.request

    url = registry if "://" in registry else f"http://{registry}"
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return Finding("missing", f"cannot connect to {host}:{port}: {exc.strerror or exc}")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # never follow a redirect to some other (maybe outside) host

    # ProxyHandler({}) ignores http_proxy: the request goes only to the address given
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    v2 = f"{parts.scheme}://{parts.netloc}/v2/"
    try:
        with opener.open(v2, timeout=timeout) as resp:
            api = resp.headers.get("Docker-Distribution-API-Version", "")
            return Finding("ok", f"GET {v2} -> {resp.status}" + (f" ({api})" if api else ""))
    except urllib.error.HTTPError as exc:
        if exc.code == 401:  # a registry that wants a token still speaks the protocol
            return Finding("ok", f"GET {v2} -> 401 (registry requires authentication)")
        return Finding("missing", f"GET {v2} -> {exc.code}: not an OCI registry")
    except (urllib.error.URLError, OSError) as exc:
        return Finding("missing", f"GET {v2} failed: {getattr(exc, 'reason', exc)}")


def _probes(registry: str | None, timeout: float) -> list[Probe]:
    return [
        Probe("root", "running as root", NOTEBOOKS, "run as root (sudo)", _probe_root),
        Probe(
            "kernel", "kernel >= 5.6", ("05-user-namespace",), "use a kernel >= 5.6 for time namespaces", _probe_kernel
        ),
        Probe("cgroups", "cgroup hierarchies", ("07-cgroups",), "mount cgroup2 at /sys/fs/cgroup", _probe_cgroups),
        Probe("overlayfs", "overlay filesystem", ("08-images",), "modprobe overlay", _probe_overlayfs),
        Probe("userns", "user namespaces", ("05-user-namespace",), "", _probe_userns),
        Probe("propagation", "propagation of /", ("02-mount-namespace",), "", _probe_propagation),
        Probe("firewall", "nftables or iptables", ("06-network",), "apt-get install nftables", _probe_firewall),
        Probe("network", "bridge networks", ("06-network",), "pip install pyroute2", _probe_network),
        Probe("busybox", "static busybox", NOTEBOOKS[:6], "apt-get install busybox-static", _probe_busybox),
        Probe(
            "microservices",
            "Debian image and packages",
            ("11-microservices",),
            "bash examples/microservices/fetch-debs.sh",
            _probe_microservices,
        ),
        Probe("seccomp", "libseccomp", ("09-security",), "apt-get install libseccomp2", _probe_seccomp),
        Probe(
            "registry_server",
            "registry server",
            ("08-images",),
            "apt-get install docker-registry",
            _probe_registry_server,
        ),
        Probe(
            "vm",
            "QEMU and a kernel to boot",
            ("12-containers-vs-vms",),
            "apt-get install qemu-system-x86 linux-image-amd64",
            _probe_vm,
        ),
        Probe(
            "registry",
            "registry reachable",
            ("08-images",),
            "start a registry (apt-get install docker-registry) and pass --registry HOST:PORT",
            lambda: _probe_registry(registry, timeout),
        ),
    ]


def run_checks(registry: str | None = None, timeout: float = 2.0) -> list[Check]:
    """Run every check, in a fixed order. Only reads the host.

    *registry* (``HOST:PORT`` or a URL) is contacted only when given, with
    *timeout* seconds for the connect and for the ``GET /v2/``.
    """
    return [run_probe(p) for p in _probes(registry, timeout)]


def render_table(checks: list[Check]) -> str:
    """An aligned plain-text table: check, status, detail; affects/fix lines under non-ok rows."""
    w_title = max([len("CHECK")] + [len(c.title) for c in checks])
    w_status = max([len("STATUS")] + [len(c.status) for c in checks])
    indent = " " * (w_title + w_status + 4)
    lines = [f"{'CHECK':<{w_title}}  {'STATUS':<{w_status}}  DETAIL"]
    for c in checks:
        lines.append(f"{c.title:<{w_title}}  {c.status:<{w_status}}  {c.detail}")
        if c.status != "ok":
            if c.affects:
                shown = "all notebooks" if c.affects == NOTEBOOKS else ", ".join(c.affects)
                lines.append(f"{indent}affects: {shown}")
            if c.fix:
                lines.append(f"{indent}fix: {c.fix}")
    return "\n".join(lines) + "\n"


def to_json(checks: list[Check]) -> str:
    """The checks as a JSON list of objects (see :meth:`Check.as_dict`)."""
    return json.dumps([c.as_dict() for c in checks], indent=2)
