"""More of Docker's container verbs, through the real command line: cp, pause/unpause, rename, exec -d/-u,
ps --format, rm -v, --sig-proxy, builder prune.

Each is checked by what it does to real containers and to the host: files on
both sides, the kernel's freezer, processes, volumes, the build cache.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from conftest import run_cli
from test_lifecycle import Minictr, minictr, wait_until  # noqa: F401 (minictr is a fixture)

pytestmark = pytest.mark.root


# --- cp --------------------------------------------------------------------------------------------


def test_cp_both_ways_with_dockers_rules_for_files_and_directories(minictr: Minictr, tmp_path) -> None:
    ctr = minictr.detach("--name", "cpbox", "busybox", "sh", "-c",
                         "mkdir -p /d/sub && echo one > /d/sub/f && ln -s sub/f /d/link && exec sleep 300")  # fmt: skip
    assert wait_until(lambda: minictr("exec", ctr, "test", "-L", "/d/link", check=False).returncode == 0)
    minictr("cp", "cpbox:/d", str(tmp_path / "out"))  # a missing DEST: created with the directory's contents
    assert (tmp_path / "out/sub/f").read_text() == "one\n"
    assert os.readlink(tmp_path / "out/link") == "sub/f"  # a symlink is copied as one, never followed
    (tmp_path / "into").mkdir()
    minictr("cp", "cpbox:/d", str(tmp_path / "into"))  # an existing DEST directory: the source goes inside
    assert (tmp_path / "into/d/sub/f").read_text() == "one\n"
    minictr("cp", "cpbox:/d/.", str(tmp_path / "into"))  # SRC/. : the contents only
    assert (tmp_path / "into/sub/f").exists()
    (tmp_path / "host.txt").write_text("from the host\n")
    minictr("cp", str(tmp_path / "host.txt"), "cpbox:/d/renamed")  # a file to a new name
    minictr("cp", str(tmp_path / "host.txt"), "cpbox:/d/sub")  # a file into a directory
    assert minictr("exec", ctr, "cat", "/d/renamed", "/d/sub/host.txt").stdout == "from the host\n" * 2
    assert minictr("exec", ctr, "stat", "-c", "%u:%g", "/d/renamed").stdout.strip() == "0:0"  # the container's root owns it
    missing = minictr("cp", str(tmp_path / "host.txt"), "cpbox:/nowhere/", check=False)
    assert missing.returncode == 125 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    to_file = minictr("cp", str(tmp_path / "out"), "cpbox:/d/renamed", check=False)
    assert to_file.returncode == 125 and "cannot copy a directory to the file" in to_file.stderr


def test_cp_never_follows_a_container_symlink_out_of_its_root(minictr: Minictr, tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("host only\n")
    ctr = minictr.detach("busybox", "sh", "-c", f"mkdir -p {secret} && echo decoy > {secret}/key && "
                         f"ln -s {secret} /escape && ln -s ../../../../{secret} /dotdot && exec sleep 300")  # fmt: skip
    assert wait_until(lambda: minictr("exec", ctr, "test", "-L", "/dotdot", check=False).returncode == 0)
    (tmp_path / "payload").write_text("payload\n")
    minictr("cp", str(tmp_path / "payload"), f"{ctr}:/escape/key")
    minictr("cp", str(tmp_path / "payload"), f"{ctr}:/dotdot/other")
    assert (secret / "key").read_text() == "host only\n" and not (secret / "other").exists()  # the host's stays as it was
    assert minictr("exec", ctr, "cat", f"{secret}/key", f"{secret}/other").stdout == "payload\n" * 2
    minictr("cp", f"{ctr}:/dotdot/key", str(tmp_path / "read"))
    assert (tmp_path / "read").read_text() == "payload\n"  # the container's file, not the host's


def test_cp_to_and_from_a_stopped_container_and_tar_streams(minictr: Minictr, tmp_path) -> None:
    ctr = minictr.detach("busybox", "sh", "-c", "echo made > /made; cat /given 2>/dev/null || echo none")
    assert minictr("wait", ctr).stdout.strip() == "0"
    minictr("cp", f"{ctr}:/made", str(tmp_path / "made"))
    assert (tmp_path / "made").read_text() == "made\n"
    (tmp_path / "given").write_text("given\n")
    minictr("cp", str(tmp_path / "given"), f"{ctr}:/")
    assert minictr("start", "-a", ctr).stdout == "given\n"  # written into its own upper layer: it sees it on the next run
    with open("/proc/self/mountinfo") as mounts:
        assert minictr.directory(ctr) not in mounts.read()  # the helper's mount never reached the host
    archive = subprocess.run([sys.executable, "-m", "minictr.cli", "--data-root", minictr.data_root, "--root",
                              minictr.state_root, "cp", f"{ctr}:/made", "-"], capture_output=True, check=True)  # fmt: skip
    (tmp_path / "a.tar").write_bytes(archive.stdout)
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["made"] and tar.extractfile("made").read() == b"made\n"  # type: ignore[union-attr]
    with open(tmp_path / "a.tar", "rb") as stdin:
        subprocess.run([sys.executable, "-m", "minictr.cli", "--data-root", minictr.data_root, "--root",
                        minictr.state_root, "cp", "-", f"{ctr}:/tmp"], stdin=stdin, check=True)  # fmt: skip
    minictr("cp", f"{ctr}:/tmp/made", str(tmp_path / "again"))
    assert (tmp_path / "again").read_text() == "made\n"


# --- pause / unpause ---------------------------------------------------------------------------------


def _freezer_state(minictr: Minictr, ctr: str) -> str:
    cgroup = minictr.state(ctr)["cgroup"]
    dirs = cgroup["dirs"]
    path = os.path.join(dirs["unified"], "cgroup.freeze") if cgroup["version"] == "v2" else os.path.join(dirs["freezer"], "freezer.state")
    with open(path) as handle:
        return handle.read().strip()


def test_pause_freezes_the_container_and_unpause_thaws_it(minictr: Minictr) -> None:
    ctr = minictr.detach("--name", "ticker", "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /n; done")
    root = f"/proc/{minictr.state(ctr)['pid']}/root/n"
    assert wait_until(lambda: os.path.exists(root) and open(root).read().strip())
    assert minictr("pause", "ticker").stdout == "ticker\n"
    assert _freezer_state(minictr, ctr) in ("FROZEN", "1")  # the kernel's word
    frozen = open(root).read()
    time.sleep(0.5)  # a frozen process cannot write: the file stays as it was, however long we look
    assert open(root).read() == frozen
    state = minictr.inspect(ctr)["State"]
    assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True)
    assert "(Paused)" in minictr("ps", "--filter", "status=paused").stdout
    for verb in (("exec", ctr, "true"), ("kill", ctr), ("rm", ctr), ("pause", ctr)):
        refused = minictr(*verb, check=False)
        assert refused.returncode in (1, 125) and refused.stderr.count("\n") == 1 and "paused" in refused.stderr, verb
    minictr("unpause", "ticker")
    assert minictr.inspect(ctr)["State"]["Status"] == "running"
    assert wait_until(lambda: open(root).read() != frozen)  # it runs on
    not_paused = minictr("unpause", "ticker", check=False)
    assert not_paused.returncode == 1 and "is not paused" in not_paused.stderr


def test_a_paused_container_stops_and_is_removed_with_rm_f(minictr: Minictr) -> None:
    first = minictr.detach("busybox", "sleep", "300")
    second = minictr.detach("busybox", "sleep", "300")
    pids = [minictr.state(c)["pid"] for c in (first, second)]
    minictr("pause", first, second)
    minictr("stop", "-t", "1", first)
    assert minictr.inspect(first)["State"]["Status"] == "exited"
    minictr("rm", "-f", second)
    assert not os.path.exists(minictr.directory(second))
    assert wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids))
    stopped = minictr("pause", first, check=False)
    assert stopped.returncode == 1 and "is stopped: cannot pause it" in stopped.stderr


# --- rename, exec -u / -d, ps --format, rm -v ----------------------------------------------------------


def test_rename_and_the_names_it_refuses(minictr: Minictr) -> None:
    ctr = minictr.detach("--name", "old", "busybox", "sleep", "300")
    minictr.detach("--name", "taken", "busybox", "sleep", "300")
    minictr("rename", "old", "new")
    assert minictr.inspect("new")["Id"] == ctr and minictr("inspect", "old", check=False).returncode == 125
    for name, reason in (("taken", "already in use"), ("bad/name", "invalid container name")):
        refused = minictr("rename", "new", name, check=False)
        assert refused.returncode == 125 and reason in refused.stderr and refused.stderr.count("\n") == 1


def test_exec_u_and_d(minictr: Minictr) -> None:
    ctr = minictr.detach("busybox", "sleep", "300")
    assert minictr("exec", "-u", "nobody", ctr, "id", "-u").stdout.strip() == "65534"
    assert minictr("exec", "-u", "1234:5678", ctr, "id").stdout.startswith("uid=1234 gid=5678")
    unknown = minictr("exec", "-u", "nosuchuser", ctr, "id", check=False)
    assert unknown.returncode == 125 and "no such user" in unknown.stderr
    started = minictr("exec", "-d", ctr, "sh", "-c", "sleep 1; echo done > /bg")
    assert started.stdout == ""  # back at once, the program runs on without us
    assert wait_until(lambda: minictr("exec", ctr, "cat", "/bg", check=False).stdout == "done\n")


def test_ps_format_templates(minictr: Minictr) -> None:
    ctr = minictr.detach("--name", "fmt", "busybox", "sleep", "300")
    line = minictr("ps", "--format", "{{.ID}} {{.Names}} {{.Image}} {{.Command}}").stdout.strip()
    assert line == f'{ctr} fmt busybox "sleep 300"'
    table = minictr("ps", "--format", r"table {{.Names}}\t{{.Status}}").stdout.splitlines()
    assert table[0].split() == ["NAMES", "STATUS"] and table[1].startswith("fmt ") and "Up" in table[1]
    assert table[1].index("Up") == table[0].index("STATUS")  # aligned columns
    bad = minictr("ps", "--format", "{{.Nope}}", check=False)
    assert bad.returncode == 125 and "no field 'Nope'" in bad.stderr


def test_rm_keeps_anonymous_volumes_and_rm_v_removes_them(minictr: Minictr) -> None:
    def volumes() -> set[str]:
        return set(minictr("volume", "ls", "-q").stdout.split())

    before = volumes()
    minictr("volume", "create", "keepme")
    kept = minictr.detach("-v", "/anon", "-v", "keepme:/named", "busybox", "sleep", "300")
    anonymous = volumes() - before - {"keepme"}
    assert len(anonymous) == 1
    minictr("rm", "-f", kept)
    assert volumes() - before == anonymous | {"keepme"}  # Docker's rm: the anonymous volume stays, dangling
    minictr("volume", "rm", *anonymous)
    gone = minictr.detach("-v", "/anon", "-v", "keepme:/named", "busybox", "sleep", "300")
    minictr("rm", "-f", "-v", gone)
    assert volumes() - before == {"keepme"}  # rm -v: its anonymous volume went, the named one stays
    minictr("volume", "rm", "keepme")


# --- --sig-proxy -----------------------------------------------------------------------------------


@pytest.mark.parametrize("proxy", ["true", "false"])
def test_sig_proxy_passes_sigterm_on_or_not(minictr: Minictr, proxy: str) -> None:
    command = [sys.executable, "-m", "minictr.cli", "--data-root", minictr.data_root, "--root", minictr.state_root,
               "run", "--rm", "--network", "none", f"--sig-proxy={proxy}", "busybox", "sh", "-c",
               "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done"]  # fmt: skip
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert cli.stdout is not None
    assert cli.stdout.readline() == "ready\n"
    cli.send_signal(signal.SIGTERM)
    out = cli.stdout.read()
    code = cli.wait(60)
    if proxy == "true":
        assert (code, out) == (7, "got TERM\n")  # the container's trap ran, its status is ours
    else:
        assert code == -signal.SIGTERM and "got TERM" not in out  # minictr itself ended; the container never saw it


# --- builder prune -----------------------------------------------------------------------------------


def test_builder_prune_empties_the_build_cache(tmp_path, state_root: str) -> None:
    from minictr.container_root import image_store
    from minictr.images.busybox import build_busybox_image

    data_root = str(tmp_path / "data")
    build_busybox_image(image_store(data_root))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, data_root=data_root, state_root=state_root, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    cli("build", "--network", "none", "-t", "pruned:1", str(context))
    assert "CACHED" in cli("build", "--network", "none", "-t", "pruned:1", str(context)).stdout
    cli("rmi", "pruned:1")  # the step's layer is now kept by the cache alone
    cache = os.path.join(data_root, "build-cache")
    assert os.listdir(cache)
    assert cli("builder", "prune", "-f").stdout.startswith("Build cache: 1 step forgotten, ")
    assert os.listdir(cache) == []
    assert "CACHED" not in cli("build", "--network", "none", "-t", "pruned:1", str(context)).stdout  # it ran again
