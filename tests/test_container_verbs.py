"""More of Docker's container verbs, through the real command line: cp, pause/unpause, rename, exec -d/-u,
ps --format, rm -v, --sig-proxy, builder prune.

Each is checked by what it does to real containers and to the host: files on
both sides, the kernel's freezer, processes, volumes, the build cache.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator

import pytest
from helpers import cli_command
from test_lifecycle import Minictr, wait_until

from conftest import remove_all, run_cli

pytestmark = pytest.mark.root


@pytest.fixture
def minictr(data_root: str, state_root: str) -> Iterator[Minictr]:
    yield Minictr(data_root, state_root)
    remove_all(state_root)


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
    owner = minictr("exec", ctr, "stat", "-c", "%u:%g", "/d/renamed").stdout.strip()
    assert owner == "0:0"  # the container's root owns what was copied in
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
    assert (secret / "key").read_text() == "host only\n"  # the host's stays as it was
    assert not (secret / "other").exists()
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
    assert minictr("start", "-a", ctr).stdout == "given\n"  # in its own upper layer: it sees it on the next run
    with open("/proc/self/mountinfo") as mounts:
        assert minictr.directory(ctr) not in mounts.read()  # the helper's mount never reached the host
    cli = cli_command(data_root=minictr.data_root, state_root=minictr.state_root)
    archive = subprocess.run([*cli, "cp", f"{ctr}:/made", "-"], capture_output=True, check=True)
    (tmp_path / "a.tar").write_bytes(archive.stdout)
    with tarfile.open(tmp_path / "a.tar") as tar:
        assert tar.getnames() == ["made"] and tar.extractfile("made").read() == b"made\n"  # type: ignore[union-attr]
    with open(tmp_path / "a.tar", "rb") as stdin:
        subprocess.run([*cli, "cp", "-", f"{ctr}:/tmp"], stdin=stdin, check=True)
    minictr("cp", f"{ctr}:/tmp/made", str(tmp_path / "again"))
    assert (tmp_path / "again").read_text() == "made\n"


# --- pause / unpause ---------------------------------------------------------------------------------


def _freezer_state(minictr: Minictr, ctr: str) -> str:
    cgroup = minictr.state(ctr)["cgroup"]
    dirs = cgroup["dirs"]
    if cgroup["version"] == "v2":
        return pathlib.Path(dirs["unified"], "cgroup.freeze").read_text().strip()
    return pathlib.Path(dirs["freezer"], "freezer.state").read_text().strip()


def test_pause_freezes_the_container_and_unpause_thaws_it(minictr: Minictr) -> None:
    ctr = minictr.detach("--name", "ticker", "busybox", "sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /n; done")
    root = pathlib.Path(f"/proc/{minictr.state(ctr)['pid']}/root/n")
    assert wait_until(lambda: root.exists() and root.read_text().strip())
    assert minictr("pause", "ticker").stdout == "ticker\n"
    assert _freezer_state(minictr, ctr) in ("FROZEN", "1")  # the kernel's word
    frozen = root.read_text()
    time.sleep(0.5)  # a frozen process cannot write: the file stays as it was, however long we look
    assert root.read_text() == frozen
    state = minictr.inspect(ctr)["State"]
    assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True)
    assert "(Paused)" in minictr("ps", "--filter", "status=paused").stdout
    for verb in (("exec", ctr, "true"), ("kill", ctr), ("rm", ctr), ("pause", ctr)):
        refused = minictr(*verb, check=False)
        assert refused.returncode in (1, 125) and refused.stderr.count("\n") == 1 and "paused" in refused.stderr, verb
    minictr("unpause", "ticker")
    assert minictr.inspect(ctr)["State"]["Status"] == "running"
    assert wait_until(lambda: root.read_text() != frozen)  # it runs on
    not_paused = minictr("unpause", "ticker", check=False)
    assert (not_paused.returncode, not_paused.stderr) == (
        1, f"minictr: error: container ticker ({ctr}) is running: it cannot be resumed\n"
    )  # fmt: skip


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
    assert (stopped.returncode, stopped.stderr) == (
        1,
        f"minictr: error: container {first} is stopped: it cannot be paused\n",
    )
    resumed = minictr("unpause", first, check=False)
    assert (resumed.returncode, resumed.stderr) == (
        1,
        f"minictr: error: container {first} is stopped: it cannot be resumed\n",
    )


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
    command = cli_command(
        "run",
        "--rm",
        "--network",
        "none",
        f"--sig-proxy={proxy}",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        data_root=minictr.data_root,
        state_root=minictr.state_root,
    )
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


TRAPS_TERM = "trap 'echo got TERM; exit 7' TERM; while :; do echo tick; sleep 0.2; done"


@pytest.mark.parametrize(
    ("verb", "proxy", "tty"),
    [("attach", "true", False), ("attach", "false", False), ("start", "true", False), ("start", "false", False),
     ("attach", "true", True)],
)  # fmt: skip
def test_sig_proxy_of_attach_and_start_a(minictr: Minictr, verb: str, proxy: str, tty: bool) -> None:
    if verb == "attach":
        ctr = minictr.detach(*(["-t"] if tty else []), "busybox", "sh", "-c", TRAPS_TERM)
        args = ["attach", "--no-stdin", f"--sig-proxy={proxy}", ctr]
    else:
        ctr = minictr("create", "--network", "none", "busybox", "sh", "-c", TRAPS_TERM).stdout.strip()
        args = ["start", "-a", f"--sig-proxy={proxy}", ctr]
    command = cli_command(*args, data_root=minictr.data_root, state_root=minictr.state_root)
    cli = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    assert cli.stdout is not None
    assert cli.stdout.readline().strip() == "tick"  # attached: the container's output reaches us
    cli.send_signal(signal.SIGTERM)
    out = cli.stdout.read()
    code = cli.wait(60)
    if proxy == "true" and not tty:
        assert (code, out.count("got TERM")) == (7, 1)  # the container's trap ran; its status is ours
        assert minictr("wait", ctr).stdout == "7\n"
    else:  # the signal ended minictr (with -t, as Docker: the keys go through the pty); the container runs on
        assert code == -signal.SIGTERM and "got TERM" not in out
        assert minictr.state(ctr)["status"] == "running"
        assert "got TERM" not in minictr("logs", ctr).stdout


# --- builder prune -----------------------------------------------------------------------------------


def test_builder_prune_empties_the_build_cache(tmp_path, state_root: str) -> None:
    from minictr.engine.container_root import image_store
    from minictr.engine.images.busybox import build_busybox_image

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


# --- a foreground container is kept after its exit ---------------------------------------------------


def test_a_foreground_container_is_kept_after_its_exit_unless_rm(minictr: Minictr) -> None:
    done = minictr("run", "--name", "fg", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
                   check=False)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")  # passed through as before
    ctr = minictr.inspect("fg")["Id"]
    assert minictr("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout == "fg exited\n"
    assert minictr("ps", "-q").stdout == ""  # not running
    state = minictr.inspect("fg")["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 3, False)
    logs = minictr("logs", "fg")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")  # each stream to its own
    assert minictr.state(ctr)["cgroup"] is None  # what it held on the host went at its exit; its root stays
    again = minictr("start", "-a", "fg", check=False)  # the same container again, under a monitor
    assert (again.returncode, again.stdout) == (3, "out\n")
    taken = minictr("run", "--name", "fg", "busybox", "true", check=False)
    assert taken.returncode == 125 and "already in use" in taken.stderr
    minictr("rm", "fg")
    assert not os.path.exists(minictr.directory(ctr))
    minictr("run", "--rm", "--network", "none", "busybox", "true")
    assert os.listdir(os.path.join(minictr.state_root, "containers")) == []


def test_a_kept_tty_run_logs_what_its_terminal_showed(minictr: Minictr) -> None:
    import pty

    command = cli_command(
        "run",
        "-t",
        "--name",
        "tty",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "test -t 1 && echo on-a-terminal",
        data_root=minictr.data_root,
        state_root=minictr.state_root,
    )
    pid, master = pty.fork()
    if pid == 0:
        os.execv(command[0], command)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    os.close(master)
    assert b"on-a-terminal" in output
    assert minictr("logs", "tty").stdout.strip() == "on-a-terminal"  # what its terminal showed
