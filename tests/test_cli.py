"""The minictr command line, run for real in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from helpers import cli_command

from conftest import host_snapshot, kill_9_of_a_foreground_run_leaks_nothing, remove_container, run_cli, wait_until

pytestmark = pytest.mark.root


def test_run_passes_output_and_exit_status(data_root: str, state_root: str) -> None:
    result = run_cli(
        "run", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", data_root=data_root, state_root=state_root
    )
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")


def test_run_default_command_env_workdir_entrypoint(data_root: str, state_root: str) -> None:
    result = run_cli("run", "-i", "busybox", input="echo $0 from sh\n", data_root=data_root, state_root=state_root)
    assert result.stdout.strip() == "sh from sh"
    result = run_cli(
        "run",
        "-e",
        "GREETING=hi",
        "-w",
        "/etc",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING $PWD",
        data_root=data_root,
        state_root=state_root,
    )
    assert result.stdout.strip() == "hi /etc"
    result = run_cli("run", "--entrypoint", "echo", "busybox", "a", "b", data_root=data_root, state_root=state_root)
    assert result.stdout.strip() == "a b"


def test_changes_stay_in_the_container(data_root: str, state_root: str) -> None:
    roots = {"data_root": data_root, "state_root": state_root}
    first = run_cli("run", "--rm", "busybox", "sh", "-c", "echo changed > /etc/passwd && rm /bin/ls", **roots)
    assert first.returncode == 0
    second = run_cli(
        "run", "--rm", "busybox", "sh", "-c", "head -1 /etc/passwd; ls / >/dev/null && echo ls-ok", **roots
    )
    assert second.stdout.split("\n")[:2] == ["root:x:0:0:root:/root:/bin/sh", "ls-ok"]
    assert os.listdir(os.path.join(state_root, "containers")) == []


def test_errors_are_one_line_and_exit_125(data_root: str, state_root: str) -> None:
    missing = run_cli("run", "--pull", "never", "no-such-image", "true", data_root=data_root, state_root=state_root)
    assert missing.returncode == 125
    assert missing.stderr == "minictr: error: no such image: no-such-image (minictr images lists what the store has)\n"
    # a missing image is pulled; port 9 (discard) on loopback has no registry: one line, no traffic elsewhere
    unreachable = run_cli("run", "127.0.0.1:9/no-such-image", "true", data_root=data_root, state_root=state_root)
    assert unreachable.returncode == 125
    assert unreachable.stderr.splitlines() == [
        "Unable to find image '127.0.0.1:9/no-such-image' locally",
        "minictr: error: GET http://127.0.0.1:9/v2/no-such-image/manifests/latest: [Errno 111] Connection refused",
    ]
    bad_flag = run_cli("run", "--no-such-flag", "busybox", data_root=data_root, state_root=state_root)
    assert bad_flag.returncode == 125 and "unrecognized arguments: --no-such-flag" in bad_flag.stderr
    isolation = run_cli("run", "--isolation", "vm", "busybox", "true", data_root=data_root, state_root=state_root)
    assert isolation.returncode == 125 and "argument --isolation: invalid choice: 'vm'" in isolation.stderr
    not_found = run_cli("run", "busybox", "nope", data_root=data_root, state_root=state_root)
    assert not_found.returncode == 127 and 'exec: "nope": executable file not found in $PATH' in not_found.stderr


def test_images_and_inspect(data_root: str, state_root: str) -> None:
    table = run_cli("images", data_root=data_root, state_root=state_root).stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:2] == ["busybox", "latest"]
    info = json.loads(run_cli("image", "inspect", "busybox", data_root=data_root, state_root=state_root).stdout)
    assert info[0]["Config"]["config"]["Cmd"] == ["sh"]


def test_doctor_json(data_root: str, state_root: str) -> None:
    checks = json.loads(run_cli("doctor", "--json", data_root=data_root, state_root=state_root).stdout)
    assert {c["name"] for c in checks} >= {"root", "kernel", "cgroups", "overlayfs", "busybox"}


# Changing credentials (-u, the root of a user namespace) makes the kernel forget PR_SET_PDEATHSIG: minictr asks again.
# (--userns private: test_ns_user.py, whose state roots a user-namespaced root can enter.)
@pytest.mark.parametrize("options", [[], ["-u", "nobody"], ["--init", "-u", "nobody", "--network", "none"]])
def test_kill_9_of_minictr_leaks_nothing(options: list[str], data_root: str, state_root: str) -> None:
    kill_9_of_a_foreground_run_leaks_nothing(options, data_root=data_root, state_root=state_root)


def test_kill_9_of_minictr_kills_a_set_user_id_program(tmp_path, data_root: str, state_root: str) -> None:
    # executing a set-user-ID program clears PID 1's death signal: the process waiting for PID 1 kills it instead
    volume = tmp_path / "suid"
    volume.mkdir()
    shutil.copy(shutil.which("busybox") or "/bin/busybox", volume / "busybox")
    os.chmod(volume / "busybox", 0o4755)
    options = ["-u", "nobody", "--network", "none", "-v", f"{volume}:/x:ro", "--entrypoint", "/x/busybox"]
    kill_9_of_a_foreground_run_leaks_nothing(options, data_root=data_root, state_root=state_root)


def test_kill_9_of_minictr_exec_kills_what_it_started(data_root: str, state_root: str) -> None:
    container = run_cli(
        "run", "-d", "busybox", "sleep", "120", data_root=data_root, state_root=state_root
    ).stdout.strip()
    mark = os.urandom(6).hex()
    command = cli_command(
        "exec", "-e", f"MINICTR_TEST_MARK={mark}", container, "sleep", "60", data_root=data_root, state_root=state_root
    )
    program = lambda: [p for p in host_snapshot(state_root)["processes"] if mark in p and " minictr-" not in p]  # noqa: E731
    try:
        cli = subprocess.Popen(command)
        try:
            assert wait_until(lambda: program() or cli.poll() is not None, timeout=30) and program(), "exec never ran"
        finally:
            cli.kill()
            cli.wait()
        assert wait_until(lambda: not program(), timeout=30), program()  # it died with its minictr exec
        assert [p for p in host_snapshot(state_root)["processes"] if mark in p] == []
    finally:
        remove_container(container, data_root=data_root, state_root=state_root)
    assert os.listdir(os.path.join(state_root, "containers")) == []


def test_concurrent_runs_do_not_trip_over_each_other(data_root: str, state_root: str) -> None:
    # A new container's directory must never look stale to another run's sweep.
    command = cli_command("run", "--rm", "busybox", "true", data_root=data_root, state_root=state_root)
    for _ in range(5):
        runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [(run.wait(60), run.stderr.read()) for run in runs]
        assert results == [(0, "")] * 4
    assert os.listdir(os.path.join(state_root, "containers")) == []


def test_a_verb_given_several_names_goes_on_past_a_missing_one(data_root: str, state_root: str) -> None:
    """As Docker: each name is tried, each failure is one line naming it, and the exit status is 1."""
    tags = [f"several-{os.getpid()}-{n}" for n in range(2)]
    for tag in tags:
        assert run_cli("tag", "busybox", tag, data_root=data_root, state_root=state_root).returncode == 0
    removed = run_cli("rmi", tags[0], "no-such-image-a", tags[1], data_root=data_root, state_root=state_root)
    assert removed.returncode == 1 and removed.stdout.splitlines() == [f"Untagged: {tag}" for tag in tags]
    assert removed.stderr.splitlines() == [
        "minictr: error: no such image: no-such-image-a (minictr images lists what the store has)"
    ]
    listed = run_cli("images", data_root=data_root, state_root=state_root).stdout
    assert not any(tag in listed for tag in tags)

    def start() -> str:
        started = run_cli("run", "-d", "--network", "none", "busybox", "sleep", "60",
                          data_root=data_root, state_root=state_root)  # fmt: skip
        assert started.returncode == 0, started.stderr
        return started.stdout.strip()

    for verb in (["kill"], ["stop", "-t", "1"], ["rm", "-f"]):
        container = start()
        done = run_cli(*verb, "no-such-1", container, "no-such-2", data_root=data_root, state_root=state_root)
        assert done.returncode == 1 and done.stdout.splitlines() == [container], done.stderr
        errors = done.stderr.splitlines()
        assert len(errors) == 2 and "no-such-1" in errors[0] and "no-such-2" in errors[1], errors
        if verb[0] == "rm":
            assert run_cli("inspect", container, data_root=data_root, state_root=state_root).returncode != 0
            continue

        def exited(container: str = container) -> bool:
            shown = run_cli("inspect", container, data_root=data_root, state_root=state_root).stdout
            return bool(json.loads(shown)[0]["State"]["Status"] == "exited")

        assert wait_until(exited, timeout=30)
        remove_container(container, data_root=data_root, state_root=state_root)


def test_key_values_reads_every_kind_of_pair_and_names_the_flag_of_an_empty_key() -> None:
    from minictr.cli.run import key_values
    from minictr.errors import UsageError

    assert key_values(["a=1", "b=", "c", "d=x=y", "a=2"], "--label") == {"a": "2", "b": "", "c": "", "d": "x=y"}
    environment = {"FROM_ENV": "here"}
    assert key_values(["FROM_ENV", "MISSING", "SET=1"], "--build-arg", word="NAME", bare=environment) == {
        "FROM_ENV": "here", "SET": "1"
    }  # fmt: skip
    with pytest.raises(UsageError, match=r"^--label '=v': give KEY=VALUE$"):
        key_values(["ok=1", "=v"], "--label")
    with pytest.raises(UsageError, match=r"^--build-arg '=': give NAME=VALUE$"):
        key_values(["="], "--build-arg", word="NAME", bare=environment)


@pytest.mark.parametrize(("verb", "message"), [
    (("run", "--label", "=web", "busybox", "true"), "--label '=web': give KEY=VALUE"),
    (("create", "-l", "=web", "busybox", "true"), "--label '=web': give KEY=VALUE"),
    (("network", "create", "--label", "=web", "never-made"), "--label '=web': give KEY=VALUE"),
    (("volume", "create", "--label", "=web", "never-made"), "--label '=web': give KEY=VALUE"),
    (("build", "--build-arg", "=1", "."), "--build-arg '=1': give NAME=VALUE"),
], ids=lambda value: " ".join(value[:2]) if isinstance(value, tuple) else "")  # fmt: skip
def test_an_empty_key_is_a_one_line_usage_error_of_every_verb(verb: tuple[str, ...], message: str, data_root: str,
                                                               state_root: str) -> None:  # fmt: skip
    done = run_cli(*verb, data_root=data_root, state_root=state_root)
    assert (done.returncode, done.stderr) == (125, f"minictr: error: {message}\n")
    assert "never-made" not in run_cli("network", "ls", data_root=data_root, state_root=state_root).stdout
    assert "never-made" not in run_cli("volume", "ls", "-q", data_root=data_root, state_root=state_root).stdout
