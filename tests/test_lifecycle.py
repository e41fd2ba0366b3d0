"""Containers with a life, through the real command line: monitor, logs, ps, stop, rm, start, wait, inspect.

Each verb is checked by what it does to real containers and to the host:
processes, the container's directory, its cgroup and its monitor.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Iterator

import pytest
from helpers import cli_command

from conftest import cgroup_dirs, remove_all, run_cli
from minictr.engine.container_dir import alive, read_state
from minictr.engine.managed import monitor_alive

pytestmark = pytest.mark.root


class Minictr:
    """The CLI with a test's own state root; every container left is removed at the end."""

    def __init__(self, data_root: str, state_root: str) -> None:
        self.data_root, self.state_root = data_root, state_root

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, data_root=self.data_root, state_root=self.state_root, timeout=timeout)
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def detach(self, *args: str) -> str:
        """``run -d`` (without a bridge unless asked: these tests are about lives, not networks)."""
        network = () if any(a.startswith("--network") for a in args) else ("--network", "none")
        return self("run", "-d", *network, *args).stdout.strip()

    def state(self, container: str) -> dict:
        return read_state(self.directory(container))

    def directory(self, container: str) -> str:
        return os.path.join(self.state_root, "containers", container)

    def inspect(self, container: str) -> dict:
        return json.loads(self("inspect", container).stdout)[0]


@pytest.fixture
def minictr(data_root: str, state_root: str) -> Iterator[Minictr]:
    yield Minictr(data_root, state_root)
    remove_all(state_root)


def wait_until(predicate: Callable[[], object], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def cgroups_of(container: str) -> list[str]:
    """The cgroup directories named after ``container`` (other tests on this host make their own)."""
    return sorted(d for d in cgroup_dirs() if os.path.basename(d) == container)


def monitors() -> dict[int, int]:
    """pid -> parent pid of every ``minictr-monitor`` process on the host."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == "minictr-monitor":
                    found[int(pid)] = int(fields[1].split()[1])
        except (OSError, IndexError):
            pass
    return found


def monitor_of(minictr: Minictr, container: str) -> int:
    """The monitor holding ``container`` (the parent of its first process)."""
    pid = minictr.state(container)["pid"]
    with open(f"/proc/{pid}/stat") as handle:
        waiting = int(handle.read().rsplit(")", 1)[1].split()[1])  # minictr-wait, PID 1's parent
    with open(f"/proc/{waiting}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


# --- the monitor, its log and the exit -------------------------------------------------------------


def test_a_detached_container_is_logged_and_its_exit_recorded(minictr: Minictr) -> None:
    container = minictr.detach("busybox", "sh", "-c", "echo out; echo err >&2; sleep 0.5; exit 3")
    assert cgroups_of(container)
    assert minictr("wait", container).stdout == "3\n"
    logs = minictr("logs", container)
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    with open(os.path.join(minictr.directory(container), "container-json.log")) as handle:
        lines = [json.loads(line) for line in handle]
    assert [(line["stream"], line["log"]) for line in lines] == [("stdout", "out\n"), ("stderr", "err\n")]
    assert all(line["time"].endswith("Z") and len(line["time"]) == 30 for line in lines)
    state = minictr.inspect(container)["State"]
    assert (state["Status"], state["Running"], state["ExitCode"], state["OOMKilled"], state["Pid"]) == (
        "exited",
        False,
        3,
        False,
        0,
    )
    assert state["StartedAt"] < state["FinishedAt"]
    assert wait_until(lambda: not monitor_alive(minictr.directory(container)))  # its monitor ended
    assert cgroups_of(container) == []  # released at exit; the directory stays until rm
    assert minictr("ps", "-a", "-q").stdout.split() == [container]
    assert minictr("ps", "-q").stdout == ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_the_monitor_is_no_child_of_the_cli_and_stays_small(minictr: Minictr) -> None:
    container = minictr.detach("busybox", "sleep", "60")
    monitor = monitor_of(minictr, container)
    assert wait_until(lambda: monitor in monitors())  # named once its watch phase began
    assert monitors()[monitor] not in (os.getpid(), 0)  # reparented away from whoever started it
    with open(f"/proc/{monitor}/status") as handle:
        status = dict(line.split(":", 1) for line in handle)
    rss_kib = int(status["VmRSS"].split()[0])
    assert rss_kib < 15 * 1024, f"the monitor's RSS is {rss_kib} KiB"
    assert "-S" in _cmdline(monitor).split()  # the watch phase runs without site-packages


def test_kill_9_of_the_cli_leaves_the_container_running_and_rm_f_removes_all(minictr: Minictr) -> None:
    command = cli_command(
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sleep",
        "60",
        data_root=minictr.data_root,
        state_root=minictr.state_root,
    )
    cli = subprocess.Popen(command, stdout=subprocess.PIPE)
    assert wait_until(lambda: minictr("ps", "-q", check=False).stdout.strip())
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    container = minictr("ps", "-q").stdout.strip()
    pid = minictr.state(container)["pid"]
    monitor = monitor_of(minictr, container)
    assert alive(pid, minictr.state(container)["start"])
    os.kill(monitor, signal.SIGKILL)  # even its monitor gone, the container runs on and is listed
    assert wait_until(lambda: monitor not in monitors())
    assert minictr("ps", "--format", "json").stdout.count('"State": "running"') == 1
    removed = minictr("rm", "-f", "survivor")
    assert removed.stdout == "survivor\n"
    assert not os.path.exists(f"/proc/{pid}") and not os.path.exists(minictr.directory(container))
    assert cgroups_of(container) == []
    assert empty_monitor_cgroups() == []  # the dead monitor's cgroup went with rm (one with live monitors stays)
    assert minictr("ps", "-a", "-q").stdout == ""


def empty_monitor_cgroups() -> list[str]:
    """The monitors' cgroups (``minictr/monitor``) that no process is in: left behind."""
    empty = []
    for directory in cgroup_dirs():
        if directory.endswith("/minictr/monitor"):
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                if not handle.read().strip():
                    empty.append(directory)
    return empty


def test_a_monitor_whose_start_fails_leaves_the_monitors_cgroup(minictr: Minictr) -> None:
    failed = minictr("run", "-d", "busybox", "/no/such/program", check=False)
    assert failed.returncode != 0 and "/no/such/program" in failed.stderr
    # no monitor runs now, so the monitors' cgroup goes with the one that failed, before any rm
    assert wait_until(lambda: not [d for d in cgroup_dirs() if d.endswith("/minictr/monitor")])


def test_stopping_the_callers_cgroup_leaves_the_monitor_and_its_container(minictr: Minictr) -> None:
    from minictr.kernel import cgroups

    caller = cgroups.new(f"/minictr-test-caller-{os.getpid()}")  # a login session's scope, a kernel's unit
    caller.create({})
    try:
        procs = " ".join(os.path.join(d, "cgroup.procs") for d in caller.dirs.values())
        cli = cli_command("run", "-d", "--network", "none", "busybox", "sleep", "60", data_root=minictr.data_root,
                          state_root=minictr.state_root)  # fmt: skip
        joined = ["sh", "-c", f'for f in {procs}; do echo $$ > "$f"; done; exec "$@"', "sh", *cli]
        started = subprocess.run(joined, capture_output=True, text=True, timeout=60)
        assert started.returncode == 0, started.stderr
        container = started.stdout.strip()
        monitor = monitor_of(minictr, container)
        caller.kill()  # as stopping that scope does: SIGKILL to every process in it
        assert wait_until(lambda: monitor in monitors())  # (named again by each phase it execs into)
        assert minictr.state(container)["status"] == "running"
        with open(f"/proc/{monitor}/cgroup") as handle:  # where it went instead: the monitors' own cgroup
            assert any(line.endswith(":/minictr/monitor") for line in handle.read().splitlines())
        minictr("stop", "-t", "0", container)
        assert minictr("wait", container).stdout == "137\n"  # its monitor, alive, recorded the exit
    finally:
        caller.destroy()


# --- run --rm, rm, stop ------------------------------------------------------------------------------


def test_run_rm_leaves_nothing(minictr: Minictr) -> None:
    container = minictr.detach("--rm", "busybox", "sh", "-c", "echo bye")
    assert wait_until(lambda: not os.path.exists(minictr.directory(container)))
    assert cgroups_of(container) == []
    assert minictr("run", "--rm", "--network", "none", "busybox", "true").returncode == 0
    assert os.listdir(os.path.join(minictr.state_root, "containers")) == []
    conflict = minictr("run", "-d", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert (conflict.returncode, conflict.stderr) == (125, "minictr: error: conflicting options: --restart and --rm\n")


def test_rm_refuses_a_running_container_with_the_reason(minictr: Minictr) -> None:
    container = minictr.detach("--name", "busy", "busybox", "sleep", "60")
    refused = minictr("rm", "busy", check=False)
    assert refused.returncode == 1
    assert (
        refused.stderr
        == f"minictr: error: cannot remove container {container}: it is running (stop it first, or use rm -f)\n"
    )
    assert minictr.inspect(container)["State"]["Running"] is True
    assert minictr("stop", "-t", "1", "busy").stdout == "busy\n"
    assert minictr("rm", "busy").stdout == "busy\n"
    assert not os.path.exists(minictr.directory(container))


def test_stop_sends_the_stop_signal_then_sigkill_after_the_timeout(minictr: Minictr) -> None:
    trapping = minictr.detach("--stop-signal", "USR1", "busybox", "sh", "-c",
                              "trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.1; done")  # fmt: skip
    assert wait_until(lambda: "ready" in minictr("logs", trapping).stdout)
    minictr("stop", trapping)
    assert minictr.inspect(trapping)["State"]["ExitCode"] == 7
    assert minictr("logs", trapping).stdout == "ready\ngot-usr1\n"
    stubborn = minictr.detach("busybox", "sleep", "60")  # PID 1 without a handler: SIGTERM does nothing to it
    started = time.monotonic()
    minictr("stop", "-t", "1", stubborn)
    assert time.monotonic() - started < 30
    state = minictr.inspect(stubborn)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 137)
    assert minictr("stop", stubborn).stdout == f"{stubborn}\n"  # stopping a stopped container changes nothing


# --- start, restart, restart policies ------------------------------------------------------------------


def test_start_runs_the_same_root_again(minictr: Minictr) -> None:
    container = minictr.detach("--name", "again", "busybox", "sh", "-c", "echo x >> /counted; wc -l < /counted")
    assert minictr("wait", "again").stdout == "0\n"
    assert minictr("start", "again").stdout == "again\n"
    assert minictr("wait", "again").stdout == "0\n"
    assert minictr("logs", "again").stdout == "1\n2\n"
    created = minictr("create", "--network", "none", "--name", "fresh", "busybox", "echo", "created").stdout.strip()
    assert minictr.inspect(created)["State"]["Status"] == "created"
    assert created in minictr("ps", "-a", "-q").stdout.split() and created not in minictr("ps", "-q").stdout.split()
    minictr("start", "fresh")
    assert minictr("wait", "fresh").stdout == "0\n" and minictr("logs", "fresh").stdout == "created\n"
    assert container != created


def test_two_stops_at_once_leave_one_consistent_stopped_state(minictr: Minictr) -> None:
    """Two ``stop`` commands racing (and the monitor recording the exit meanwhile) agree, and the container starts
    again from the state they leave.
    """
    container = minictr.detach("--name", "raced", "busybox", "sleep", "60")
    stop = cli_command("stop", "-t", "1", "raced", data_root=minictr.data_root, state_root=minictr.state_root)
    stops = [subprocess.Popen(stop, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    said = [(*process.communicate(timeout=60), process.returncode) for process in stops]
    assert said == [("raced\n", "", 0)] * 2
    with open(os.path.join(minictr.directory(container), "state.json")) as handle:
        state = json.load(handle)  # whole, not torn
    assert (state["status"], state["exit_code"]) == ("stopped", 137)  # PID 1 ignores SIGTERM: SIGKILL, recorded once
    assert minictr.inspect("raced")["State"]["Status"] == "exited"
    assert minictr("start", "raced").stdout == "raced\n"  # stopped → creating → created → running
    assert minictr.state(container)["status"] == "running"
    minictr("stop", "-t", "1", "raced")


def test_restart_stops_then_starts(minictr: Minictr) -> None:
    container = minictr.detach("busybox", "sh", "-c", "echo started; exec sleep 60")
    first = minictr.state(container)["pid"]
    assert minictr("restart", "-t", "1", container).stdout == f"{container}\n"
    state = minictr.inspect(container)["State"]
    assert state["Running"] and state["Pid"] != first
    assert minictr("logs", container).stdout == "started\nstarted\n"


def test_on_failure_restarts_n_times_and_always_until_stopped(minictr: Minictr) -> None:
    failing = minictr.detach("--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1")
    assert wait_until(
        lambda: minictr.state(failing).get("restart_count") == 2 and minictr("wait", failing).stdout == "1\n"
    )
    assert wait_until(lambda: minictr.inspect(failing)["State"]["Status"] == "exited")
    assert minictr("logs", failing).stdout == "run\nrun\nrun\n"
    assert minictr.inspect(failing)["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    succeeding = minictr.detach("--restart", "on-failure", "busybox", "true")
    assert minictr("wait", succeeding).stdout == "0\n" and minictr.state(succeeding)["restart_count"] == 0
    always = minictr.detach("--restart", "always", "busybox", "sh", "-c", "echo tick; sleep 0.2")
    assert wait_until(lambda: minictr.state(always).get("restart_count", 0) >= 2)
    minictr("stop", "-t", "1", always)
    count = minictr.state(always)["restart_count"]
    assert minictr.inspect(always)["State"]["Status"] == "exited"
    time.sleep(1)  # a stopped container is not restarted by its policy
    assert minictr.state(always)["restart_count"] == count


# --- logs ---------------------------------------------------------------------------------------------


def test_logs_follow_tail_and_timestamps(minictr: Minictr) -> None:
    container = minictr.detach("busybox", "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done")
    followed = minictr("logs", "-f", container)  # returns when the container exits
    assert followed.stdout == "line1\nline2\nline3\n"
    assert minictr("logs", "--tail", "1", container).stdout == "line3\n"
    stamped = minictr("logs", "-t", container).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line1", "line2", "line3"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in stamped)


def test_the_log_is_rotated_at_its_size_cap(minictr: Minictr) -> None:
    container = minictr.detach("--log-opt", "max-size=2k", "--log-opt", "max-file=2", "busybox", "sh", "-c",
                               "for i in $(seq 1 400); do echo line-$i; done")  # fmt: skip
    minictr("wait", container)
    files = sorted(name for name in os.listdir(minictr.directory(container)) if name.startswith("container-json.log"))
    assert files == ["container-json.log", "container-json.log.1"]
    assert all(os.path.getsize(os.path.join(minictr.directory(container), name)) <= 2048 for name in files)
    kept = minictr("logs", container).stdout.splitlines()
    assert kept[-1] == "line-400" and "line-1" not in kept  # the oldest went


# --- ps, inspect, names, errors -------------------------------------------------------------------------


def test_ps_inspect_and_names_or_prefixes_wherever_an_id_goes(minictr: Minictr) -> None:
    running = minictr.detach("--name", "lister", "-e", "GREETING=hi", "busybox", "sleep", "60")
    exited = minictr.detach("busybox", "true")
    minictr("wait", exited)
    table = minictr("ps").stdout.splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert len(table) == 2 and table[1].startswith(running) and table[1].endswith("lister") and " Up " in table[1]
    rows = [json.loads(line) for line in minictr("ps", "-a", "--format", "json").stdout.splitlines()]
    assert [(row["ID"], row["State"]) for row in rows] == [(exited, "exited"), (running, "running")]
    assert rows[0]["Status"].startswith("Exited (0) ")
    info = minictr.inspect(running[:5])  # a unique prefix
    assert info["Id"] == running and info["Name"] == "/lister" and info["State"]["Pid"] == minictr.state(running)["pid"]
    assert "GREETING=hi" in info["Config"]["Env"] and info["Config"]["Cmd"] == ["sleep", "60"]
    assert info["HostConfig"]["NetworkMode"] == "none" and info["Mounts"] == []
    assert set(info) >= {"Id", "Name", "State", "Config", "HostConfig", "NetworkSettings", "Mounts"}
    unknown = minictr("inspect", "no-such-container", check=False)
    assert (unknown.returncode, unknown.stderr) == (125, "minictr: error: no such container: 'no-such-container'\n")
    twice = minictr("start", "lister", check=False)
    assert (twice.returncode, twice.stderr) == (
        1,
        f"minictr: error: container lister ({running}) is running: it cannot be started\n",
    )


def test_container_prune_removes_only_stopped_containers(minictr: Minictr) -> None:
    running = minictr.detach("busybox", "sleep", "60")
    exited = minictr.detach("busybox", "true")
    minictr("wait", exited)
    pruned = minictr("container", "prune", "-f").stdout.split()
    assert pruned == ["Deleted", "Containers:", exited]
    assert minictr("ps", "-a", "-q").stdout.split() == [running]


def test_the_oom_kill_is_recorded(minictr: Minictr) -> None:
    container = minictr.detach("-m", "32m", "busybox", "sh", "-c", "head -c 64m /dev/zero > /dev/shm/fill")
    assert minictr("wait", container).stdout == "137\n"
    assert minictr.inspect(container)["State"]["OOMKilled"] is True


def test_many_containers_started_and_removed_at_once_keep_ps_consistent(minictr: Minictr) -> None:
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        started = list(
            pool.map(
                lambda i: minictr.detach("--network", "bridge", "--name", f"many-{i}", "busybox", "sleep", "60"),
                range(10),
            )
        )
        assert sorted(minictr("ps", "-q").stdout.split()) == sorted(started)
        removed = list(pool.map(lambda c: minictr("rm", "-f", c).stdout.strip(), started))
    assert sorted(removed) == sorted(started)
    assert minictr("ps", "-a", "-q").stdout == ""
    assert {f"mv-{c}"[:15] for c in started} & set(os.listdir("/sys/class/net")) == set()  # their veths went
    assert [c for c in started if cgroups_of(c)] == []


# --- -i and -t ------------------------------------------------------------------------------------------


class Terminal:
    """A pty this test owns, standing for a user's terminal: the CLI runs with its slave as stdin/out/err."""

    def __init__(self, rows: int, columns: int) -> None:
        self.master, self.slave = os.openpty()
        self.resize(rows, columns)
        self.output = b""

    def resize(self, rows: int, columns: int) -> None:
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, token: bytes, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while token not in self.output and time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.master, 4096)
                except OSError:
                    break
        return token in self.output


def test_an_interactive_shell_through_a_pty(minictr: Minictr) -> None:
    terminal = Terminal(30, 100)
    settings = termios.tcgetattr(terminal.slave)
    command = cli_command(
        "run", "-it", "--network", "none", "busybox", "sh", data_root=minictr.data_root, state_root=minictr.state_root
    )
    cli = subprocess.Popen(
        command, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, start_new_session=True
    )
    assert terminal.read_until(b"# "), terminal.output  # the shell's prompt: it knows it is interactive
    assert termios.tcgetattr(terminal.slave) != settings  # the user's terminal is raw meanwhile
    terminal.type("stty size; [ -t 0 ] && echo stdin-is-a-tty\n")
    assert terminal.read_until(b"30 100\r\nstdin-is-a-tty"), terminal.output
    terminal.resize(40, 120)
    cli.send_signal(signal.SIGWINCH)  # what the kernel sends a terminal's foreground group when it is resized
    terminal.type("sleep 0.2; stty size\n")
    assert terminal.read_until(b"40 120"), terminal.output
    terminal.type("echo hi; exit 3\n")
    assert terminal.read_until(b"hi\r\n"), terminal.output
    assert cli.wait(30) == 3
    assert termios.tcgetattr(terminal.slave) == settings  # restored


def test_the_pty_comes_from_the_containers_own_devpts(minictr: Minictr) -> None:
    terminal = Terminal(24, 80)
    command = cli_command("run", "-it", "--network", "none", "busybox", "sh", data_root=minictr.data_root,
                          state_root=minictr.state_root)  # fmt: skip
    cli = subprocess.Popen(
        command, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, start_new_session=True
    )
    assert terminal.read_until(b"# "), terminal.output
    terminal.type("tty; ls /dev/pts | tr '\\n' ' '; echo\n")
    assert terminal.read_until(b"/dev/pts/0\r\n0 ptmx \r\n"), terminal.output  # a fresh instance: its first pty
    (container,) = os.listdir(os.path.join(minictr.state_root, "containers"))
    pid = minictr.state(container)["pid"]
    host_devpts = os.stat("/dev/pts").st_dev
    held = {os.stat(f"/proc/{pid}/fd/{fd}").st_dev for fd in (0, 1, 2)}
    assert held and host_devpts not in held  # the host's /dev/pts holds no pty of the container's
    assert os.stat(f"/proc/{pid}/root/dev/pts").st_dev in held  # its own does
    terminal.type("exit 0\n")
    assert cli.wait(30) == 0


def test_with_t_a_signal_to_minictr_is_minictrs_and_the_terminal_is_restored(minictr: Minictr) -> None:
    terminal = Terminal(24, 80)
    settings = termios.tcgetattr(terminal.slave)
    command = cli_command("run", "-it", "--rm", "--network", "none", "busybox", "sh", "-c",
                          "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done",
                          data_root=minictr.data_root, state_root=minictr.state_root)  # fmt: skip
    cli = subprocess.Popen(
        command, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, start_new_session=True
    )
    assert terminal.read_until(b"ready"), terminal.output
    cli.send_signal(signal.SIGTERM)  # not passed on with -t (as Docker): it ends minictr
    assert cli.wait(30) == -signal.SIGTERM
    assert termios.tcgetattr(terminal.slave) == settings  # raw mode undone on the way out
    assert not terminal.read_until(b"got TERM", timeout=1)


def test_stdin_reaches_the_container_only_with_i(minictr: Minictr) -> None:
    streamed = run_cli("run", "-i", "--network", "none", "busybox", "sh", "-c", "cat; echo end",
                       input="one\ntwo\n", data_root=minictr.data_root, state_root=minictr.state_root)  # fmt: skip
    assert streamed.stdout == "one\ntwo\nend\n"  # all of it, then EOF closed the container's stdin
    closed = run_cli("run", "--network", "none", "busybox", "sh", "-c", "cat; echo end",
                     input="one\n", data_root=minictr.data_root, state_root=minictr.state_root)  # fmt: skip
    assert closed.stdout == "end\n"
    not_a_tty = run_cli("run", "--network", "none", "busybox", "sh", "-c", "[ -t 1 ] || echo no-tty",
                        data_root=minictr.data_root, state_root=minictr.state_root)  # fmt: skip
    assert not_a_tty.stdout == "no-tty\n"


def test_a_detached_container_with_t_has_a_terminal(minictr: Minictr) -> None:
    container = minictr.detach("-t", "busybox", "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty; tty; stty size")
    assert minictr("wait", container).stdout == "0\n"
    assert minictr("logs", container).stdout.startswith("tty\n/dev/pts/0\n")  # from its own devpts


# --- the Python API -------------------------------------------------------------------------------------


def test_the_python_api_runs_containers_that_outlive_the_caller(minictr: Minictr) -> None:
    import minictr as package

    client = package.containers.Client(data_root=minictr.data_root, state_root=minictr.state_root)
    web = client.run("busybox", ["sh", "-c", "echo hi; echo err >&2; exec sleep 60"], detach=True, name="api",
                     network="none", mem_limit="64m", environment={"WHO": "api"})  # fmt: skip
    assert web.status == "running" and web.name == "api"
    assert monitor_of(minictr, web.id) not in (os.getpid(), 0)
    assert wait_until(lambda: web.logs() == b"hi\nerr\n")
    assert web.logs(stderr=False) == b"hi\n"
    assert web.exec_run("sh -c 'echo $WHO'") == package.containers.ExecResult(0, b"api\n")
    stats = web.stats()
    assert stats["pids"] >= 1 and stats["memory"] > 0 and stats["memory_limit"] == 64 << 20
    assert [c.id for c in client.list()] == [web.id] and client.get("api").id == web.id
    web.stop(timeout=1)
    assert web.wait() == {"StatusCode": 137, "Error": None} and web.status == "exited"
    web.remove()
    assert client.list(all=True) == []
    assert client.run("busybox", "echo done", network="none", remove=True) == b"done\n"
    with pytest.raises(package.ContainerError, match="exited with 4: failed"):  # its stderr says why
        client.run("busybox", ["sh", "-c", "echo failed >&2; exit 4"], network="none", remove=True)
    assert client.list(all=True) == []
    # without remove, as docker-py: its stdout back, and the exited container kept until removed
    assert client.run("busybox", ["sh", "-c", "echo out; echo err >&2"], network="none") == b"out\n"
    assert client.run("busybox", ["sh", "-c", "echo out; echo err >&2"], network="none", stderr=True) == b"out\nerr\n"
    with pytest.raises(package.ContainerError, match="exited with 5"):
        client.run("busybox", ["sh", "-c", "exit 5"], network="none")
    kept = client.list(all=True)
    assert sorted(c.wait()["StatusCode"] for c in kept) == [0, 0, 5] and {c.status for c in kept} == {"exited"}
    assert {c.logs() for c in kept} == {b"out\nerr\n", b""}
    for container in kept:
        container.remove()


# --- errors, and a full disk ------------------------------------------------------------------------------


def test_a_program_that_cannot_start_leaves_nothing_and_exec_needs_a_running_container(minictr: Minictr) -> None:
    missing = minictr("run", "-d", "--network", "none", "busybox", "no-such-program", check=False)
    assert missing.returncode == 127 and 'exec: "no-such-program": executable file not found in $PATH' in missing.stderr
    assert minictr("ps", "-a", "-q").stdout == ""
    exited = minictr.detach("--name", "done", "busybox", "true")
    minictr("wait", exited)
    refused = minictr("exec", "done", "true", check=False)
    assert (refused.returncode, refused.stderr) == (125, f"minictr: error: container {exited} is not running\n")


def test_a_full_disk_stops_the_log_not_the_container(minictr: Minictr) -> None:
    container = minictr(
        "create", "--network", "none", "busybox", "sh", "-c", "seq 1 10000; echo done >&2"
    ).stdout.strip()
    os.symlink("/dev/full", os.path.join(minictr.directory(container), "container-json.log"))  # every write: ENOSPC
    minictr("start", container)
    assert minictr("wait", container).stdout == "0\n"  # it ran to its end, its output going nowhere
    assert minictr.inspect(container)["State"]["Status"] == "exited"
    os.unlink(os.path.join(minictr.directory(container), "container-json.log"))  # reading /dev/full never ends
    assert minictr("logs", container).stdout == ""


def test_stats_top_and_port_of_a_running_container(minictr: Minictr) -> None:
    container = minictr.detach(
        "--network", "bridge", "-m", "64m", "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p", "80"
    )
    stats = minictr("stats", "--no-stream", container).stdout.splitlines()
    assert stats[0].split() == ["CONTAINER", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%", "PIDS"]
    assert stats[1].split()[0] == container and stats[1].split()[4] == "64MiB" and stats[1].split()[-1] == "1"
    top = minictr("top", container).stdout.splitlines()
    assert [line.split(None, 2)[2] for line in top[1:]] == ["httpd -f -p 80"]
    assert int(top[1].split()[0]) == minictr.state(container)["pid"]
    mapping = minictr("port", container).stdout.strip()
    assert mapping.startswith("80/tcp -> 127.0.0.1:")
    published = int(mapping.rsplit(":", 1)[1])
    assert minictr.inspect(container)["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(published)}]
    }


# --- attach ---------------------------------------------------------------------------------------------


def test_detach_and_attach_again(minictr: Minictr) -> None:
    container = minictr.detach("-it", "busybox", "sh")
    command = cli_command("attach", container, data_root=minictr.data_root, state_root=minictr.state_root)

    def attach() -> tuple[Terminal, subprocess.Popen[bytes]]:
        terminal = Terminal(24, 80)
        return terminal, subprocess.Popen(command, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave,
                                          start_new_session=True)  # fmt: skip

    terminal, cli = attach()
    terminal.type("echo hi-$((6*7))\n")
    assert terminal.read_until(b"hi-42"), terminal.output
    terminal.type("\x10\x11")  # ctrl-p ctrl-q: detach
    assert cli.wait(30) == 0 and terminal.read_until(b"read escape sequence")
    assert minictr.inspect(container)["State"]["Running"] is True
    terminal, cli = attach()
    terminal.type("echo again; exit 4\n")
    assert terminal.read_until(b"again"), terminal.output
    assert cli.wait(30) == 4  # the container's status, once it exited
    assert minictr.inspect(container)["State"]["ExitCode"] == 4
    assert "hi-42" in minictr("logs", container).stdout  # what was typed and shown is in its log too


def test_attach_sends_input_to_a_container_run_with_i(minictr: Minictr) -> None:
    container = minictr.detach("-i", "busybox", "sh", "-c", "read line; echo got-$line")
    attached = run_cli("attach", container, input="typed\n", data_root=minictr.data_root, state_root=minictr.state_root)
    assert (attached.returncode, attached.stdout) == (0, "got-typed\n")
    not_interactive = minictr.detach("busybox", "sh", "-c", "read line; echo got-$line")
    assert minictr("wait", not_interactive).stdout == "0\n"  # its stdin is /dev/null: read meets EOF at once
    assert minictr("logs", not_interactive).stdout == "got-\n"


def test_start_a_shows_the_run_and_returns_its_status(minictr: Minictr) -> None:
    container = minictr(
        "create", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 6"
    ).stdout.strip()
    for _ in range(2):  # each start shows its own run only
        started = minictr("start", "-a", container, check=False)
        assert (started.returncode, started.stdout, started.stderr) == (6, "out\n", "err\n")
    interactive = minictr(
        "create", "--network", "none", "-i", "busybox", "sh", "-c", "read x; echo got-$x"
    ).stdout.strip()
    typed = run_cli(
        "start", "-a", "-i", interactive, input="typed\n", data_root=minictr.data_root, state_root=minictr.state_root
    )
    assert (typed.returncode, typed.stdout) == (0, "got-typed\n")


def test_ps_filters_and_logs_since(minictr: Minictr) -> None:
    running = minictr.detach("--name", "filtered", "busybox", "sh", "-c", "echo early; exec sleep 60")
    exited = minictr.detach("busybox", "true")
    minictr("wait", exited)
    assert minictr("ps", "-q", "--filter", "status=exited").stdout.split() == [exited]
    assert minictr("ps", "-q", "-f", "name=filter", "-f", "status=running").stdout.split() == [running]
    assert minictr("ps", "-q", "-f", f"id={running[:4]}", "-f", "ancestor=busybox").stdout.split() == [running]
    bad = minictr("ps", "-f", "colour=red", check=False)
    assert (bad.returncode, bad.stderr) == (
        125,
        "minictr: error: --filter 'colour=red': filter by id=, name=, status= or ancestor=\n",
    )
    assert wait_until(lambda: minictr("logs", running).stdout == "early\n")
    assert minictr("logs", "--since", "2000-01-01T00:00:00Z", running).stdout == "early\n"
    assert minictr("logs", "--since", "2999-01-01T00:00:00Z", running).stdout == ""
    assert minictr("logs", "--since", "1h", running).stdout == "early\n"


def test_exec_i_and_t(minictr: Minictr) -> None:
    container = minictr.detach("busybox", "sleep", "60")
    piped = run_cli(
        "exec", "-i", container, "cat", input="piped\n", data_root=minictr.data_root, state_root=minictr.state_root
    )
    assert piped.stdout == "piped\n"
    closed = run_cli(
        "exec", container, "cat", input="lost\n", data_root=minictr.data_root, state_root=minictr.state_root
    )
    assert (closed.returncode, closed.stdout) == (0, "")  # without -i its stdin is /dev/null
    terminal = Terminal(30, 100)
    command = cli_command("exec", "-it", container, "sh", data_root=minictr.data_root, state_root=minictr.state_root)
    cli = subprocess.Popen(
        command, stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, start_new_session=True
    )
    terminal.type("stty size; tty; exit 2\n")
    assert terminal.read_until(b"30 100\r\n/dev/pts/0"), terminal.output  # from the container's devpts too
    assert cli.wait(30) == 2
