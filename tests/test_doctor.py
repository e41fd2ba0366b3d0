"""Tests of minictr.doctor on the real host (it only reads, so this is safe anywhere)."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from minictr import doctor
from minictr.engine.images.busybox import elf_interpreter
from minictr.kernel import privilege

NAMES = {
    "root",
    "kernel",
    "cgroups",
    "overlayfs",
    "userns",
    "propagation",
    "registry_server",
    "firewall",
    "network",
    "busybox",
    "seccomp",
    "vm",
    "registry",
    "microservices",
}


@pytest.fixture(scope="module")
def checks() -> list[doctor.Check]:
    return doctor.run_checks()


def test_every_check_is_reported(checks: list[doctor.Check]) -> None:
    assert [c.name for c in checks] and {c.name for c in checks} == NAMES
    assert len(checks) == len(NAMES)


def test_statuses_and_fields(checks: list[doctor.Check]) -> None:
    for c in checks:
        assert c.status in {"ok", "missing", "unknown"}, c
        assert c.detail and "\n" not in c.detail, c
        assert isinstance(c.affects, tuple) and c.affects, c
        assert set(c.affects) <= set(doctor.NOTEBOOKS), c
        if c.status == "ok":
            assert c.fix == ""


def test_registry_not_contacted_by_default(checks: list[doctor.Check]) -> None:
    reg = next(c for c in checks if c.name == "registry")
    assert reg.status == "unknown"
    assert reg.detail == "not checked (pass --registry HOST:PORT)"


def test_to_json_round_trips(checks: list[doctor.Check]) -> None:
    data = json.loads(doctor.to_json(checks))
    assert [d["name"] for d in data] == [c.name for c in checks]
    assert all(set(d) == {"name", "title", "status", "detail", "affects", "fix"} for d in data)
    assert data[0]["affects"] == list(checks[0].affects)


def test_render_table_has_every_title(checks: list[doctor.Check]) -> None:
    table = doctor.render_table(checks)
    for c in checks:
        assert c.title in table
    assert table.splitlines()[0].split() == ["CHECK", "STATUS", "DETAIL"]
    assert "affects:" in table  # the registry row is never "ok" by default


def _cgroup_mounts() -> dict[str, list[str]]:
    """fstype -> mount points, straight from mountinfo (no escapes on a normal host)."""
    found: dict[str, list[str]] = {"cgroup": [], "cgroup2": []}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split()[0]
            if fstype in found:
                found[fstype].append(left.split()[4])
    return found


def test_cgroup_layout_matches_mountinfo() -> None:
    layout = doctor.cgroup_layout()
    mounts = _cgroup_mounts()
    assert set(mounts["cgroup"]) <= set(layout["v1"].values())
    if mounts["cgroup2"]:
        path = layout["v2"]["path"]
        assert path == mounts["cgroup2"][0]
        with open(os.path.join(path, "cgroup.controllers")) as f:
            assert layout["v2"]["controllers"] == f.read().split()
    else:
        assert layout["v2"] == {"path": None, "controllers": []}
    has_v1 = any(not c.startswith("name=") for c in layout["v1"])
    expected = {(True, True): "hybrid", (True, False): "v1", (False, True): "v2", (False, False): "none"}[
        (has_v1, bool(mounts["cgroup2"]))
    ]
    assert layout["layout"] == expected


def test_cgroup_layout_v2_only(tmp_path: pathlib.Path) -> None:
    # a v2-only host, described by a mountinfo file pointing at a fake mount point
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    mi = tmp_path / "mountinfo"
    mi.write_text(
        f"30 23 0:26 / {tmp_path} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
        "31 23 0:27 / /x\\040y rw - cgroup cgroup rw,xattr,name=systemd\n"
    )
    layout = doctor.cgroup_layout(str(mi))
    assert layout == {
        "layout": "v2",
        "v1": {"name=systemd": "/x y"},
        "v2": {"path": str(tmp_path), "controllers": ["cpu", "io", "memory", "pids"]},
    }


def test_elf_interpreter_of_python_and_busybox() -> None:
    interp = elf_interpreter(os.path.realpath(sys.executable))
    assert interp is None or interp.startswith("/")
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.isfile(path):
            assert elf_interpreter(path) is None  # busybox-static is installed here
    with pytest.raises(ValueError):
        elf_interpreter(__file__)


def test_failing_probe_becomes_unknown() -> None:
    def boom() -> doctor.Finding:
        raise RuntimeError("kaboom")

    check = doctor.run_probe(doctor.Probe("x", "a failing check", ("07-cgroups",), "do y", boom))
    assert check.status == "unknown"
    assert "RuntimeError" in check.detail and "kaboom" in check.detail
    assert check.fix == ""


def _registry_check(registry: str, timeout: float = 2.0) -> doctor.Check:
    return next(c for c in doctor.run_checks(registry=registry, timeout=timeout) if c.name == "registry")


def test_registry_closed_port_is_missing_quickly() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    start = time.monotonic()
    check = _registry_check(f"127.0.0.1:{port}")
    assert check.status == "missing", check
    assert time.monotonic() - start < 1.5
    assert check.fix


class _Registry(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 200 if self.path == "/v2/" else 404
        self.send_response(code)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_registry_answering_v2_is_ok(registry: str) -> None:
    check = _registry_check(registry)
    assert check.status == "ok", check
    assert "200" in check.detail and "registry/2.0" in check.detail


def test_import_is_cheap() -> None:
    # the HTTP stack and subprocess must not be loaded just by importing doctor
    code = (
        "import sys, minictr.doctor; "
        "print(sorted(m for m in ('urllib.request', 'http.client', 'subprocess') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert out.stdout.strip() == "[]"


def _as_root_without_cap_sys_admin(code: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` as root with CAP_SYS_ADMIN dropped from the bounding set (as in an unprivileged pod)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop CAP_SYS_ADMIN from a root process")
    capsh = shutil.which("capsh")
    if capsh is None:
        pytest.skip("capsh is missing (apt-get install libcap2-bin)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(
        [capsh, "--drop=cap_sys_admin", "--", "-c", f"exec {sys.executable} -c '{code}'"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        timeout=60,
    )


@pytest.mark.root
def test_root_privilege_is_proven_by_trying() -> None:
    root = next(c for c in doctor.run_checks() if c.name == "root")
    assert root.status == "ok", root
    assert "CAP_SYS_ADMIN" in root.detail and "mounted a tmpfs" in root.detail


@pytest.mark.root
def test_root_without_cap_sys_admin_is_told_what_it_lacks() -> None:
    done = _as_root_without_cap_sys_admin(
        "import json, os; from minictr import doctor; "
        'print(json.dumps([os.geteuid(), next(c.as_dict() for c in doctor.run_checks() if c.name == "root")]))'
    )
    euid, root = json.loads(done.stdout)
    assert euid == 0
    assert root["status"] == "missing", root
    assert "euid 0, but CAP_SYS_ADMIN is not in this process's effective capabilities" in root["detail"]
    assert "--privileged" in root["fix"]
    assert root["affects"] == list(doctor.NOTEBOOKS)


@pytest.mark.root
def test_the_mount_namespace_trial_fails_without_cap_sys_admin() -> None:
    # the trial itself, apart from the CapEff reading: its child cannot unshare and says which call failed
    done = _as_root_without_cap_sys_admin("from minictr.kernel.privilege import try_mount_namespace as t; print(t())")
    assert done.stdout.strip().startswith("unshare("), done.stdout
    assert "Operation not permitted" in done.stdout


def test_effective_capabilities_reads_capeff(tmp_path: pathlib.Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n")
    assert privilege.effective_capabilities(str(status)) >> privilege.CAP_SYS_ADMIN & 1
    status.write_text("CapEff:\t000001fffedfffff\n")  # what capsh --drop=cap_sys_admin leaves
    assert not privilege.effective_capabilities(str(status)) >> privilege.CAP_SYS_ADMIN & 1


def test_registry_server_check_follows_path(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    # notebook 08 requires this check: it must say "missing" where docker-registry cannot be found
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(doctor, "_which", lambda name: shutil.which(name, path=str(tmp_path)))
    check = next(c for c in doctor.run_checks() if c.name == "registry_server")
    assert check.status == "missing" and check.fix == "apt-get install docker-registry", check
    server = tmp_path / "docker-registry"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    check = next(c for c in doctor.run_checks() if c.name == "registry_server")
    assert check.status == "ok" and str(server) in check.detail, check
