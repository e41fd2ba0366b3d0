"""minictr-oci through its command line, on real bundles, as engines drive it.

Every test runs the real ``minictr-oci`` (or, with ``MINICTR_TEST_RUNTIME=runc``,
runc itself: the same tests then show what the reference does) on a bundle
whose config.json comes from ``runc spec`` and whose ``rootfs`` is a copy
of the busybox image (runc refuses a symlinked one), read-only. The runtime's state after each step is read with
``state``, and what it claims is checked in /proc.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import RUNTIME, RUNTIME_IS_OURS, runtime_command

from conftest import wait_for

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="minictr-oci needs root here")]

IS_OURS = RUNTIME_IS_OURS
only_ours = pytest.mark.skipif(not IS_OURS, reason="checks minictr-oci's own wording or extension")


class Runtime:
    """One ``--root`` of the runtime under test, and the bundles it runs."""

    def __init__(self, root: str, rootfs: str, tmp: pathlib.Path, binary: str = RUNTIME) -> None:
        self.root, self.rootfs, self.tmp, self.binary = root, rootfs, tmp, binary
        self.name = os.path.basename(binary)  # minictr-oci, runc, crun: how a parametrized test names it
        self.made: list[str] = []

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        # Files, not pipes: a created container keeps the runtime's stdio (it becomes the container's), and
        # a pipe would stay open for as long as the container lives.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            if "input" not in kwargs:
                kwargs.setdefault("stdin", subprocess.DEVNULL)
            code = subprocess.run(
                [*runtime_command(self.binary), "--root", self.root, *args],
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                **kwargs,
            ).returncode
            out.seek(0)
            err.seek(0)
            done = subprocess.CompletedProcess(args, code, out.read().decode(), err.read().decode())
        if check:
            assert done.returncode == 0, f"{args}: {done.returncode} {done.stderr}"
        return done

    def bundle(
        self, args: list[str], name: str = "bundle", edit: Callable[[dict[str, Any]], None] | None = None
    ) -> str:
        """A bundle with ``runc spec``'s config (``minictr-oci spec`` without runc), running ``args``, /tmp shared."""
        path = self.tmp / name
        path.mkdir()
        # root.path is "rootfs": relative to the bundle. cp -a keeps busybox's hard links: a copy of each applet
        # would make every bundle half a gigabyte.
        subprocess.run(["cp", "-a", self.rootfs, str(path / "rootfs")], check=True)
        maker = shutil.which("runc") or self.binary
        subprocess.run([maker, "spec"], cwd=path, check=True)
        spec = json.loads((path / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = args
        self.shared = self.tmp / f"{name}-tmp"
        self.shared.mkdir()
        spec["mounts"].append(
            {"destination": "/tmp", "type": "bind", "source": str(self.shared), "options": ["rbind", "rw"]}
        )
        if edit:
            edit(spec)
        (path / "config.json").write_text(json.dumps(spec))
        return str(path)

    def create(self, container_id: str, bundle: str, *extra: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.made.append(container_id)
        return self("create", "--bundle", bundle, *extra, container_id, **kwargs)

    def state(self, container_id: str) -> dict[str, Any]:
        return json.loads(self("state", container_id).stdout)

    def status(self, container_id: str) -> str:
        done = self("state", container_id, check=False)
        return json.loads(done.stdout)["status"] if done.returncode == 0 else "gone"


@pytest.fixture
def oci(tmp_path: pathlib.Path, rootfs: str) -> Iterator[Runtime]:
    runtime = Runtime(str(tmp_path / "root"), rootfs, tmp_path)
    yield runtime
    for container_id in runtime.made:
        runtime("delete", "--force", container_id, check=False)


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


LOOP = ["sh", "-c", "echo started > /tmp/started; while :; do sleep 0.1; done"]


# --- the lifecycle ---------------------------------------------------------------------------


def test_create_start_kill_delete_with_the_state_after_each_step(oci: Runtime) -> None:
    bundle = oci.bundle(LOOP)
    pid_file = oci.tmp / "init.pid"
    oci.create("life", bundle, "--pid-file", str(pid_file))
    state = oci.state("life")
    assert state["status"] == "created" and state["id"] == "life"
    assert os.path.realpath(state["bundle"]) == os.path.realpath(bundle)
    assert pid_file.read_text() == str(state["pid"])  # the bare pid, no newline
    assert running(state["pid"])
    assert not (oci.shared / "started").exists()  # created: the program has not run
    assert os.readlink(f"/proc/{state['pid']}/ns/pid") != os.readlink("/proc/self/ns/pid")  # it holds its namespaces
    oci("start", "life")
    assert oci.state("life")["status"] == "running"
    wait_for(lambda: (oci.shared / "started").exists(), "the program to run after start")
    oci("kill", "life", "KILL")
    wait_for(lambda: oci.status("life") == "stopped", "the container to stop")
    assert "pid" not in oci.state("life") or not running(oci.state("life").get("pid", 0))
    oci("delete", "life")
    assert oci.status("life") == "gone"
    assert "does not exist" in oci("state", "life", check=False).stderr


def test_start_twice_and_start_of_a_stopped_container_are_refused(oci: Runtime) -> None:
    bundle = oci.bundle(["true"])
    oci.create("twice", bundle)
    oci("start", "twice")
    wait_for(lambda: oci.status("twice") == "stopped", "true to exit")
    refused = oci("start", "twice", check=False)
    assert refused.returncode != 0 and refused.stderr.strip()


def test_delete_of_a_running_container_needs_force(oci: Runtime) -> None:
    bundle = oci.bundle(LOOP)
    oci.create("busy", bundle)
    oci("start", "busy")
    pid = oci.state("busy")["pid"]
    refused = oci("delete", "busy", check=False)
    assert refused.returncode != 0 and "running" in refused.stderr
    assert oci.status("busy") == "running"
    oci("delete", "--force", "busy")
    assert oci.status("busy") == "gone"
    wait_for(lambda: not running(pid), "the container's processes to die")


def test_delete_of_a_created_container_removes_it(oci: Runtime) -> None:
    oci.create("made", oci.bundle(LOOP))
    pid = oci.state("made")["pid"]
    oci("delete", "made")
    assert oci.status("made") == "gone"
    wait_for(lambda: not running(pid), "the waiting process to die")


def test_run_gives_stdio_and_the_exit_status(oci: Runtime) -> None:
    bundle = oci.bundle(["sh", "-c", "read line; echo got $line; echo to-stderr >&2; exit 3"])
    oci.made.append("attached")
    done = oci("run", "--bundle", bundle, "attached", input="hello\n", check=False)
    assert done.returncode == 3
    assert done.stdout == "got hello\n" and "to-stderr" in done.stderr
    assert oci.status("attached") == "gone"  # run deletes what it ran


def test_fds_above_2_are_closed_unless_preserved(oci: Runtime) -> None:
    bundle = oci.bundle(["sh", "-c", "ls /proc/self/fd > /tmp/fds; echo through-3 >&3"])
    read_end, write_end = os.pipe()
    oci.made.append("fds")
    try:
        oci(
            "run", "--bundle", bundle, "--preserve-fds", "1", "fds", pass_fds=(write_end,), stdin=subprocess.DEVNULL
        ) if write_end == 3 else _run_with_fd3(oci, bundle, write_end)
    finally:
        os.close(write_end)
    assert os.read(read_end, 100) == b"through-3\n"
    os.close(read_end)
    fds = sorted(int(n) for n in (oci.shared / "fds").read_text().split())
    assert fds[:4] == [0, 1, 2, 3] and len(fds) <= 5  # 0-2, the preserved 3, and ls's own directory


def _run_with_fd3(oci: Runtime, bundle: str, fd: int) -> None:
    """Run with ``fd`` as descriptor 3 of the runtime (the shell's 3>&fd)."""
    runtime = shlex.join(runtime_command())
    command = f"exec 3>&{fd}; exec {runtime} --root {oci.root} run --bundle {bundle} --preserve-fds 1 fds"
    done = subprocess.run(
        ["bash", "-c", command], pass_fds=(fd,), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr


def test_a_missing_program_fails_create_with_runcs_words(oci: Runtime) -> None:
    bundle = oci.bundle(["no-such-program"])
    log = oci.tmp / "log.json"
    oci.made.append("missing")
    done = oci("--log", str(log), "--log-format", "json", "create", "--bundle", bundle, "missing", check=False)
    if done.returncode == 0:  # a runtime may find out at start instead
        done = oci("start", "missing", check=False)
    assert done.returncode != 0
    assert "executable file not found" in done.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line["level"] == "error" and "executable file not found" in line["msg"] for line in lines)


# --- signals, processes, exec ---------------------------------------------------------------


def test_kill_takes_names_and_numbers(oci: Runtime) -> None:
    script = "trap 'echo usr1 >> /tmp/sig' USR1; echo ready > /tmp/ready; while :; do sleep 0.1; done"
    oci.create("sig", oci.bundle(["sh", "-c", script]))
    oci("start", "sig")
    wait_for(lambda: (oci.shared / "ready").exists(), "the trap to be set")
    caught = lambda: len((oci.shared / "sig").read_text().split()) if (oci.shared / "sig").exists() else 0  # noqa: E731
    for number, name in enumerate(("USR1", "SIGUSR1", str(int(signal.SIGUSR1))), 1):
        oci("kill", "sig", name)
        wait_for(lambda n=number: caught() == n, f"USR1 given as {name}")  # one at a time: pending signals merge
    assert oci("kill", "sig", "NOSUCHSIGNAL", check=False).returncode != 0


def test_ps_exec_and_kill_all(oci: Runtime) -> None:
    oci.create("procs", oci.bundle(LOOP))
    oci("start", "procs")
    init = oci.state("procs")["pid"]
    assert init in json.loads(oci("ps", "--format", "json", "procs").stdout)
    hostname = oci("exec", "procs", "hostname")
    assert hostname.stdout.strip() == "runc"  # runc spec's hostname: exec is in the container's uts namespace
    assert oci("exec", "procs", "sh", "-c", "exit 5", check=False).returncode == 5
    pid_file = oci.tmp / "exec.pid"
    oci("exec", "--detach", "--pid-file", str(pid_file), "procs", "sleep", "300")
    extra = int(pid_file.read_text())
    assert os.readlink(f"/proc/{extra}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    listed = json.loads(oci("ps", "--format", "json", "procs").stdout)
    assert {init, extra} <= set(listed)
    assert "sleep" in oci("ps", "procs").stdout
    oci("kill", "--all", "procs", "KILL")
    wait_for(lambda: not running(extra) and not running(init), "kill --all to reach every process")


def test_exec_with_a_process_file(oci: Runtime) -> None:
    oci.create("proc-file", oci.bundle(LOOP))
    oci("start", "proc-file")
    process = {
        "args": ["sh", "-c", "echo $GREETING from $(pwd)"],
        "cwd": "/etc",
        "env": ["GREETING=hello", "PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
        "terminal": False,
    }
    path = oci.tmp / "process.json"
    path.write_text(json.dumps(process))
    assert oci("exec", "--process", str(path), "proc-file").stdout == "hello from /etc\n"


# --- hooks ---------------------------------------------------------------------------------


def test_hooks_fire_in_every_phase_with_the_state_on_stdin(oci: Runtime) -> None:
    out = oci.tmp / "hooks"
    out.mkdir()

    def host_hook(phase: str) -> dict[str, Any]:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{phase}"], "timeout": 10}

    def edit(spec: dict[str, Any]) -> None:
        spec["hooks"] = {
            phase: [host_hook(phase)]
            for phase in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
        }
        spec["hooks"]["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer"]}]

    bundle = oci.bundle(LOOP, edit=edit)
    oci.create("hooked", bundle)
    pid = oci.state("hooked")["pid"]
    for phase in ("prestart", "createRuntime", "createContainer"):
        state = json.loads((out / phase).read_text())
        assert state["id"] == "hooked" and state["pid"] in (pid, 1), phase  # runc: 1 for the hook run inside
    assert not (oci.shared / "startContainer").exists()
    if IS_OURS:  # runc 1.1 runs poststart at create already; the runtime-spec says after start
        assert not (out / "poststart").exists()
    oci("start", "hooked")
    assert json.loads((oci.shared / "startContainer").read_text())["id"] == "hooked"  # ran inside: its /tmp
    assert json.loads((out / "poststart").read_text())["pid"] == pid
    oci("delete", "--force", "hooked")
    assert json.loads((out / "poststop").read_text())["id"] == "hooked"


def test_a_failing_hook_fails_create_and_leaves_nothing(oci: Runtime) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}

    oci.made.append("badhook")
    done = oci("create", "--bundle", oci.bundle(LOOP, edit=edit), "badhook", check=False)
    assert done.returncode != 0
    assert oci.status("badhook") in ("gone", "stopped")


def test_a_hook_past_its_timeout_fails_create(oci: Runtime) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}]}

    oci.made.append("slowhook")
    done = oci("create", "--bundle", oci.bundle(LOOP, edit=edit), "slowhook", check=False, timeout=50)
    assert done.returncode != 0 and ("timeout" in done.stderr.lower() or "timed out" in done.stderr.lower())
    assert oci.status("slowhook") in ("gone", "stopped")


# --- terminals ------------------------------------------------------------------------------


def test_terminal_through_the_console_socket(oci: Runtime) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["terminal"] = True

    bundle = oci.bundle(["sh", "-c", "test -t 0 && test -t 1 && echo is-a-tty; tty"], edit=edit)
    path = str(oci.tmp / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        oci.create("tty", bundle, "--console-socket", path)
        connection, _ = server.accept()
        with connection:
            _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
    oci("start", "tty")
    output = read_until(fds[0], b"/dev/pts/")
    assert b"is-a-tty" in output and b"/dev/pts/" in output


def test_exec_with_a_terminal_through_the_console_socket(oci: Runtime) -> None:
    oci.create("exec-tty", oci.bundle(LOOP))
    oci("start", "exec-tty")
    path = str(oci.tmp / "exec-console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        pid_file = oci.tmp / "exec-tty.pid"
        command = ["sh", "-c", "test -t 0 && echo is-a-tty; tty; sleep 300"]
        oci("exec", "--tty", "--console-socket", path, "--detach", "--pid-file", str(pid_file), "exec-tty", *command)
        connection, _ = server.accept()
        with connection:
            _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
    output = read_until(fds[0], b"/dev/pts/")
    assert b"is-a-tty" in output
    assert os.readlink(f"/proc/{int(pid_file.read_text())}/ns/pid") == os.readlink(
        f"/proc/{oci.state('exec-tty')['pid']}/ns/pid"
    )


def read_until(master: int, wanted: bytes) -> bytes:
    """Read a pty master until ``wanted`` shows (or the other side is gone); close it."""
    output = b""
    deadline = time.monotonic() + 30
    while wanted not in output and time.monotonic() < deadline:
        try:
            output += os.read(master, 1024)
        except OSError:
            break
    os.close(master)
    return output


def test_a_terminal_without_console_socket_is_refused(oci: Runtime) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["terminal"] = True

    oci.made.append("notty")
    done = oci("create", "--bundle", oci.bundle(["true"], edit=edit), "notty", check=False)
    assert done.returncode != 0 and "console socket" in done.stderr


# --- the other verbs -----------------------------------------------------------------------


def test_list_in_both_formats(oci: Runtime) -> None:
    oci.create("listed", oci.bundle(LOOP))
    rows = json.loads(oci("list", "--format", "json").stdout)
    assert [(r["id"], r["status"]) for r in rows] == [("listed", "created")]
    assert "listed" in oci("list").stdout


def test_pause_and_resume(oci: Runtime) -> None:
    oci.create("frozen", oci.bundle(LOOP))
    oci("start", "frozen")
    pid = oci.state("frozen")["pid"]
    oci("pause", "frozen")
    assert oci.state("frozen")["status"] == "paused"
    assert freezer(pid) in ("FROZEN", "1")
    oci("resume", "frozen")
    assert oci.state("frozen")["status"] == "running"
    assert freezer(pid) in ("THAWED", "0")


def freezer(pid: int) -> str:
    """The freezer state of ``pid``'s cgroup, read from the host (v1 freezer.state, else v2 cgroup.freeze)."""
    with open(f"/proc/{pid}/cgroup") as handle:
        lines = [line.rstrip("\n").split(":", 2) for line in handle]
    for _, controllers, path in lines:
        if "freezer" in controllers.split(","):
            with open(f"/sys/fs/cgroup/freezer{path}/freezer.state") as state:
                return state.read().strip()
    path = next(path for number, _, path in lines if number == "0")
    with open(f"/sys/fs/cgroup{path}/cgroup.freeze") as state:
        return state.read().strip()


def test_update_changes_the_cgroup(oci: Runtime) -> None:
    oci.create("limits", oci.bundle(LOOP))
    oci("start", "limits")
    oci("update", "--resources", "-", "limits", input=json.dumps({"pids": {"limit": 77}}))
    done = oci(
        "exec", "limits", "sh", "-c", "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"
    )
    assert done.stdout.strip() == "77"


def test_features_and_spec(oci: Runtime, tmp_path: pathlib.Path) -> None:
    features = json.loads(oci("features").stdout)
    assert "createRuntime" in features["hooks"] and "pid" in features["linux"]["namespaces"]
    assert features["ociVersionMax"].startswith("1.")
    made = tmp_path / "spec-bundle"
    made.mkdir()
    subprocess.run([RUNTIME, "spec", "--bundle", str(made)], check=True)
    spec = json.loads((made / "config.json").read_text())
    assert spec["root"]["path"] == "rootfs" and spec["process"]["terminal"] is True
    assert subprocess.run([RUNTIME, "spec", "--bundle", str(made)], capture_output=True).returncode != 0  # no overwrite


@only_ours
def test_events_stats(oci: Runtime) -> None:
    oci.create("stats", oci.bundle(LOOP))
    oci("start", "stats")
    event = json.loads(oci("events", "--stats", "stats").stdout)
    assert event["type"] == "stats" and event["data"]["pids"] >= 1


@only_ours
def test_a_field_not_implemented_is_named(oci: Runtime) -> None:
    def edit(spec: dict[str, Any]) -> None:
        spec["linux"]["intelRdt"] = {"closID": "x"}

    oci.made.append("rdt")
    done = oci("create", "--bundle", oci.bundle(["true"], edit=edit), "rdt", check=False)
    assert done.returncode == 1 and "linux.intelRdt" in done.stderr
    assert oci.status("rdt") == "gone"


@only_ours
def test_systemd_cgroup_is_accepted_and_refused_clearly(oci: Runtime) -> None:
    bundle = oci.bundle(["true"])
    oci.made.append("sd")
    done = oci("--systemd-cgroup", "create", "--bundle", bundle, "sd", check=False)
    assert done.returncode == 1 and "--systemd-cgroup: the systemd cgroup driver is not supported" in done.stderr
    assert oci.status("sd") == "gone"
    assert oci("--systemd-cgroup", "list").returncode == 0  # the flag itself is accepted, as engines pass it

    def slice_path(spec: dict[str, Any]) -> None:
        spec["linux"]["cgroupsPath"] = "system.slice:minictr:sd"

    oci.made.append("sd2")
    done = oci("create", "--bundle", oci.bundle(["true"], name="slice", edit=slice_path), "sd2", check=False)
    assert done.returncode == 1 and "slice:prefix:name, not supported" in done.stderr


def test_the_runtimes_own_spec_runs(oci: Runtime, tmp_path: pathlib.Path) -> None:
    made = tmp_path / "own-spec"
    made.mkdir()
    shutil.copytree(oci.rootfs, made / "rootfs", symlinks=True)
    subprocess.run([RUNTIME, "spec", "--bundle", str(made)], check=True)
    spec = json.loads((made / "config.json").read_text())
    spec["process"].update(terminal=False, args=["sh", "-c", "grep -E 'CapEff|NoNewPrivs' /proc/self/status"])
    (made / "config.json").write_text(json.dumps(spec))
    oci.made.append("own")
    done = oci("run", "--bundle", str(made), "own")
    assert "NoNewPrivs:\t1" in done.stdout
    assert "CapEff:\t0000000000000000" not in done.stdout  # the default capabilities, not none


@only_ours
def test_the_default_cgroup_parent_goes_with_the_last_container_whichever_made_it(oci: Runtime) -> None:
    """Two containers overlap; the first made /minictr-oci and goes first; the second's delete removes the parent."""
    from minictr.kernel import cgroups

    def no_cgroups_path(spec: dict[str, Any]) -> None:
        spec["linux"].pop("cgroupsPath", None)

    layout = cgroups.layout()
    mount = layout["v2"]["path"] if layout["layout"] == "v2" else layout["v1"]["pids"]
    parent = os.path.join(mount, cgroups.OCI_PARENT)
    if os.path.isdir(parent):
        pytest.skip(f"{parent} is there already (another session's containers)")
    first = oci.bundle(["sleep", "60"], "first", edit=no_cgroups_path)
    second = oci.bundle(["sleep", "60"], "second", edit=no_cgroups_path)
    oci.create("first", first)
    oci.create("second", second)
    assert os.path.isdir(os.path.join(parent, "second"))
    oci("delete", "--force", "first")
    assert os.path.isdir(parent)  # the second still lives in it
    oci("delete", "--force", "second")
    assert not os.path.exists(parent)
