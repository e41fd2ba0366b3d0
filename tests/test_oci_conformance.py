"""The runtime-spec's behaviours as tables, run against minictr-oci, runc and crun side by side.

Every test is parametrized by runtime (``[minictr-oci]``, ``[runc]``,
``[crun]``: each one installed here), so a behaviour where minictr-oci and
the reference differ fails under one name and passes under the other. The
tables come from the runtime-spec (runtime.md's lifecycle and operations,
config.md's process, linux's rlimits, capabilities, masked and read-only
paths, hooks, features.md); where the spec is silent (``pause``,
``resume``, ``exec``, exit statuses) the expected row is what runc does, as
engines are written against runc. A row runc itself gets wrong against the
spec is marked ``xfail(strict=True)`` for runc with the reason.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import OURS
from test_oci import LOOP, Runtime

from conftest import wait_until

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="runtimes need root here")]

RUNTIMES = {name: path for name, path in (("minictr-oci", OURS), ("runc", shutil.which("runc")),
                                          ("crun", shutil.which("crun"))) if path}  # fmt: skip


@pytest.fixture(params=sorted(RUNTIMES))
def rt(request: pytest.FixtureRequest, tmp_path: pathlib.Path, rootfs: str) -> Iterator[Runtime]:
    # crun 1.8 refuses the hybrid layout: Runtime runs it without the cgroup2 mount (helpers.runtime_command)
    runtime = Runtime(str(tmp_path / "root"), rootfs, tmp_path, RUNTIMES[request.param])
    yield runtime
    for container_id in runtime.made:
        runtime("delete", "--force", container_id, check=False)


#: Where a reference runtime is known to part from runc (whom minictr-oci follows): (runtime, case) -> why.
KNOWN = {
    ("crun", "created-kill-TERM"): "crun's waiting init ignores SIGTERM: the container stays created",
    ("crun", "created-pause"): "crun reports a paused created container as created",
    ("crun", "created-resume"): "crun resumes a container that is not paused without an error",
    ("crun", "running-resume"): "crun resumes a container that is not paused without an error",
    ("crun", "paused-kill-KILL"): "crun does not thaw a paused container for SIGKILL: it stays paused",
    ("crun", "paused-pause"): "crun pauses a paused container again without an error",
    ("crun", "paused-exec"): "crun exits 1, not 255, when exec itself fails",
    ("crun", "stopped-exec"): "crun exits 1, not 255, when exec itself fails",
    ("crun", "missing-exec"): "crun exits 1, not 255, when exec itself fails",
    ("crun", "signal-lower-case"): "crun does not read signal names in lower case",
    ("crun", "cwd-relative"): "crun runs a process whose cwd is relative (the spec says it MUST be absolute)",
    ("crun", "hooks"): "crun gives the create-phase hooks the status created, startContainer 'starting'",
    ("runc", "hooks"): "runc 1.1 runs poststart as soon as start opens the fifo, before the program (status created)",
    ("crun", "exec-env"): "crun's exec --env replaces the process's environment (PATH goes) instead of adding to it",
    ("crun", "exec-cap"): "crun's exec --cap gives the process that capability alone",
    **{
        ("crun", f"features-{field}"): "crun 1.8 has no features command"
        for field in (
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "linux.namespaces",
            "linux.capabilities",
            "linux.cgroup.v1",
            "linux.cgroup.v2",
            "linux.seccomp.enabled",
            "linux.apparmor.enabled",
            "linux.selinux.enabled",
        )
    },
}


def expect_known(request: pytest.FixtureRequest, rt: Runtime, case: str) -> None:
    """Mark a known difference of ``rt`` as a strict xfail: it still runs, and a runtime that changes shows."""
    reason = KNOWN.get((rt.name, case))
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=True))


# --- every operation in every state ----------------------------------------------------------

#: The operations, with the container's id in place of ``ID``.
OPERATIONS = {
    "start": ["start", "ID"],
    "kill-KILL": ["kill", "ID", "KILL"],
    "kill-TERM": ["kill", "ID", "TERM"],
    "pause": ["pause", "ID"],
    "resume": ["resume", "ID"],
    "delete": ["delete", "ID"],
    "delete-force": ["delete", "--force", "ID"],
    "exec": ["exec", "ID", "true"],
    "state": ["state", "ID"],
}

#: (state before, operation) -> (exit status, or "error" for any failure; status afterwards, "gone" once deleted).
#: exec fails with 255 in runc, apart from any status of the program it would have run.
TABLE: dict[tuple[str, str], tuple[int | str, str]] = {
    # created: start runs it; a signal that ends a process ends it (spec: kill MUST send it); delete removes it
    ("created", "start"): (0, "running"), ("created", "kill-KILL"): (0, "stopped"),
    ("created", "kill-TERM"): (0, "stopped"), ("created", "pause"): (0, "paused"),
    ("created", "resume"): ("error", "created"), ("created", "delete"): (0, "gone"),
    ("created", "delete-force"): (0, "gone"), ("created", "exec"): (0, "created"), ("created", "state"): (0, "created"),
    # running: delete without --force MUST NOT (spec); the program ignores TERM as PID 1 without a handler
    ("running", "start"): ("error", "running"), ("running", "kill-KILL"): (0, "stopped"),
    ("running", "kill-TERM"): (0, "running"), ("running", "pause"): (0, "paused"),
    ("running", "resume"): ("error", "running"), ("running", "delete"): ("error", "running"),
    ("running", "delete-force"): (0, "gone"), ("running", "exec"): (0, "running"), ("running", "state"): (0, "running"),
    # paused: SIGKILL thaws it so that it dies; TERM waits for resume
    ("paused", "start"): ("error", "paused"), ("paused", "kill-KILL"): (0, "stopped"),
    ("paused", "kill-TERM"): (0, "paused"), ("paused", "pause"): ("error", "paused"),
    ("paused", "resume"): (0, "running"), ("paused", "delete"): ("error", "paused"),
    ("paused", "delete-force"): (0, "gone"), ("paused", "exec"): (255, "paused"), ("paused", "state"): (0, "paused"),
    # stopped: signals MUST be an error and change nothing (spec); delete removes it
    ("stopped", "start"): ("error", "stopped"), ("stopped", "kill-KILL"): ("error", "stopped"),
    ("stopped", "kill-TERM"): ("error", "stopped"), ("stopped", "pause"): ("error", "stopped"),
    ("stopped", "resume"): ("error", "stopped"), ("stopped", "delete"): (0, "gone"),
    ("stopped", "delete-force"): (0, "gone"), ("stopped", "exec"): (255, "stopped"),
    ("stopped", "state"): (0, "stopped"),
    # no such container: an error everywhere, but delete --force succeeds (nothing to remove)
    ("missing", "start"): ("error", "gone"), ("missing", "kill-KILL"): ("error", "gone"),
    ("missing", "pause"): ("error", "gone"), ("missing", "resume"): ("error", "gone"),
    ("missing", "delete"): ("error", "gone"), ("missing", "delete-force"): (0, "gone"),
    ("missing", "exec"): (255, "gone"), ("missing", "state"): ("error", "gone"),
}  # fmt: skip


def bring_to(rt: Runtime, container_id: str, state: str) -> None:
    """A container running ``LOOP`` in ``state`` (``missing``: none at all)."""
    if state == "missing":
        return
    rt.create(container_id, rt.bundle(LOOP, name=container_id))
    if state in ("running", "paused", "stopped"):
        rt("start", container_id)
    if state == "paused":
        rt("pause", container_id)
    if state == "stopped":
        rt("kill", container_id, "KILL")
        assert wait_until(lambda: rt.status(container_id) == "stopped", timeout=30)


@pytest.mark.parametrize(("before", "operation"), list(TABLE), ids=[f"{s}-{o}" for s, o in TABLE])
def test_operation_in_state(request: pytest.FixtureRequest, rt: Runtime, before: str, operation: str) -> None:
    expect_known(request, rt, f"{before}-{operation}")
    status, after = TABLE[before, operation]
    bring_to(rt, "subject", before)
    done = rt(*[("subject" if arg == "ID" else arg) for arg in OPERATIONS[operation]], check=False)
    if status == "error":
        assert done.returncode != 0 and done.stderr.strip(), f"{operation} of a {before} container must fail"
    else:
        assert done.returncode == status, f"{operation} of a {before} container: {done.returncode} {done.stderr}"
    # a signal acts after kill returns: wait for the expected status, then say what it is
    wait_until(lambda: rt.status("subject") == after, timeout=10)
    assert rt.status("subject") == after


def test_created_paused_resumed_is_created_and_starts(request: pytest.FixtureRequest, rt: Runtime) -> None:
    expect_known(request, rt, "created-pause")
    bring_to(rt, "frozen", "created")
    rt("pause", "frozen")
    assert rt.status("frozen") == "paused"
    rt("resume", "frozen")
    assert rt.status("frozen") == "created"
    rt("start", "frozen")
    assert wait_until(lambda: (rt.shared / "started").exists(), timeout=30)


# --- exit statuses -----------------------------------------------------------------------------


def without_pid_namespace(spec: dict[str, Any]) -> None:
    """The host's pid namespace: the program is not an init, so a signal it sends itself ends it."""
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "pid"]


#: (program, whether it needs the host's pid namespace, expected exit status of ``run``): the program's own
#: status, or 128+N when signal N killed it.
EXITS = {
    "exit-0": (["true"], False, 0),
    "exit-7": (["sh", "-c", "exit 7"], False, 7),
    "exit-255": (["sh", "-c", "exit 255"], False, 255),
    "killed-by-KILL": (["sh", "-c", "kill -KILL $$"], True, 137),
    "killed-by-TERM": (["sh", "-c", "kill -TERM $$"], True, 143),
}


@pytest.mark.parametrize("case", list(EXITS))
def test_run_exit_status(rt: Runtime, case: str) -> None:
    args, host_pids, expected = EXITS[case]
    rt.made.append(case)
    bundle = rt.bundle(args, edit=without_pid_namespace if host_pids else None)
    assert rt("run", "--bundle", bundle, case, check=False).returncode == expected


#: runc's and crun's wording of a program not found (podman maps both to exit 127).
NOT_FOUND = re.compile(r"executable file .*not found")


def test_exec_exit_status_and_its_own_failure(rt: Runtime) -> None:
    bring_to(rt, "execs", "running")
    assert rt("exec", "execs", "sh", "-c", "exit 5", check=False).returncode == 5
    missing = rt("exec", "execs", "no-such-program", check=False)
    assert missing.returncode == 255 and NOT_FOUND.search(missing.stderr)


def test_run_of_a_missing_program(rt: Runtime) -> None:
    rt.made.append("missing")
    done = rt("run", "--bundle", rt.bundle(["no-such-program"]), "missing", check=False)
    assert done.returncode != 0 and NOT_FOUND.search(done.stderr)


# --- signals by every spelling ------------------------------------------------------------------

SPELLINGS = {"name": "HUP", "prefixed": "SIGHUP", "number": "1", "lower-case": "hup"}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_kill_delivers_the_signal_spelt(request: pytest.FixtureRequest, rt: Runtime, spelling: str) -> None:
    expect_known(request, rt, f"signal-{spelling}")
    script = "trap 'echo hup > /tmp/got' HUP; echo ready > /tmp/ready; while :; do sleep 0.1; done"
    rt.create("sig", rt.bundle(["sh", "-c", script]))
    rt("start", "sig")
    assert wait_until(lambda: (rt.shared / "ready").exists(), timeout=30)
    rt("kill", "sig", SPELLINGS[spelling])
    assert wait_until(lambda: (rt.shared / "got").exists(), timeout=30), f"SIGHUP given as {SPELLINGS[spelling]}"


# --- config.json, field by field ------------------------------------------------------------------


def edit_process(**fields: Any) -> Any:
    return lambda spec: spec["process"].update(fields)


def edit_linux(**fields: Any) -> Any:
    return lambda spec: spec["linux"].update(fields)


CAPS = ["CAP_CHOWN", "CAP_KILL"]  # bits 0 and 5: 0x21
STATUS_LINES = "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs)' /proc/self/status"
MOUNT_OPTIONS = 'awk \'$5 == "/proc/sys" || $5 == "/etc" {split($6, o, ","); print $5, o[1]}\' /proc/self/mountinfo'

#: case -> (program, edit of config.json, exact output of ``run``, or None: ``run`` must fail).
CONFIG: dict[str, tuple[list[str], Any, str | None]] = {
    "rlimits": (["sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -c"],
                edit_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                                      {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]), "512\n1024\n0\n"),
    "rlimit-unknown": (["true"], edit_process(rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]), None),
    "masked-file": (["sh", "-c", "wc -c < /proc/timer_list"], edit_linux(maskedPaths=["/proc/timer_list"]), "0\n"),
    "masked-directory": (["sh", "-c", "ls -A /sys/firmware | wc -l"], edit_linux(maskedPaths=["/sys/firmware"]), "0\n"),
    "readonly-paths": (["sh", "-c", MOUNT_OPTIONS], edit_linux(readonlyPaths=["/proc/sys", "/etc"]),
                       "/proc/sys ro\n/etc ro\n"),
    "capabilities": (["sh", "-c", "grep -E '^Cap' /proc/self/status"],
                     edit_process(capabilities={"bounding": CAPS, "effective": CAPS, "permitted": CAPS,
                                                "inheritable": CAPS, "ambient": ["CAP_KILL"]}),
                     "CapInh:\t0000000000000021\nCapPrm:\t0000000000000021\nCapEff:\t0000000000000021\n"
                     "CapBnd:\t0000000000000021\nCapAmb:\t0000000000000020\n"),
    "user": (["sh", "-c", "grep -E '^(Uid|Gid|Groups)' /proc/self/status; umask"],
             edit_process(user={"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027}),
             "Uid:\t1000\t1000\t1000\t1000\nGid:\t1001\t1001\t1001\t1001\nGroups:\t10 20 \n0027\n"),
    "cwd": (["pwd"], edit_process(cwd="/etc"), "/etc\n"),
    "cwd-relative": (["pwd"], edit_process(cwd="etc"), None),
    "env": (["env"], edit_process(env=["A=1", "B=two words", "PATH=/bin:/usr/bin"]),
            "A=1\nB=two words\nPATH=/bin:/usr/bin\nHOME=/root\n"),
    "hostname": (["hostname"], lambda spec: spec.update(hostname="conformance"), "conformance\n"),
    "no-new-privileges": (["sh", "-c", "grep NoNewPrivs /proc/self/status"], edit_process(noNewPrivileges=True),
                          "NoNewPrivs:\t1\n"),
    "oom-score-adj": (["cat", "/proc/self/oom_score_adj"], edit_process(oomScoreAdj=123), "123\n"),
    "sysctl": (["cat", "/proc/sys/net/ipv4/ip_forward"], edit_linux(sysctl={"net.ipv4.ip_forward": "1"}), "1\n"),
    "args-missing": (["no-such-program"], None, None),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CONFIG))
def test_config_field(request: pytest.FixtureRequest, rt: Runtime, case: str) -> None:
    expect_known(request, rt, case)
    args, edit, expected = CONFIG[case]
    rt.made.append(case)
    done = rt("run", "--bundle", rt.bundle(args, edit=edit), case, check=False)
    if expected is None:
        assert done.returncode != 0 and done.stderr.strip(), f"{case} must fail: {done.stdout}"
    else:
        assert (done.returncode, done.stdout) == (0, expected), done.stderr


# --- hooks: every phase, in order, each with the state it MUST see -------------------------------

#: The phases in the spec's order, with the status in the state each hook reads on its stdin.
PHASES = [("prestart", "creating"), ("createRuntime", "creating"), ("createContainer", "creating"),
          ("startContainer", "created"), ("poststart", "running"), ("poststop", "stopped")]  # fmt: skip


def test_hooks_run_in_order_with_their_status(request: pytest.FixtureRequest, rt: Runtime) -> None:
    expect_known(request, rt, "hooks")
    out = rt.tmp / "bundle-tmp" / "order"  # the bundle's /tmp: startContainer runs inside and writes there

    def hook(phase: str, inside: bool) -> dict[str, Any]:
        target = "/tmp/order" if inside else str(out)
        line = f"tr -d ' \\n' | grep -o '\"status\":\"[a-z]*\"' | sed 's/^/{phase} /' >> {target}"
        if inside:  # a slow startContainer hook: poststart must still wait for it, and for the program
            line = f"sleep 1; {line}"
        return {"path": "/bin/sh", "args": ["sh", "-c", line]}

    def edit(spec: dict[str, Any]) -> None:
        spec["hooks"] = {phase: [hook(phase, phase == "startContainer")] for phase, _ in PHASES}

    rt.create("hooks", rt.bundle(["sh", "-c", "sleep 1"], edit=edit))
    rt("start", "hooks")
    assert wait_until(lambda: rt.status("hooks") == "stopped", timeout=30)
    rt("delete", "hooks")
    seen = out.read_text().splitlines()
    assert seen == [f'{phase} "status":"{status}"' for phase, status in PHASES], seen


# --- the features document ------------------------------------------------------------------------

#: Where in ``features`` -> what it must hold (features.md): a type, or a set the list must include.
FEATURES: dict[str, Any] = {
    "ociVersionMin": str,
    "ociVersionMax": str,
    "hooks": {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
    "mountOptions": {"ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private", "rprivate"},
    "linux.namespaces": {"cgroup", "ipc", "mount", "network", "pid", "user", "uts"},
    "linux.capabilities": {"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_BIND_SERVICE"},
    "linux.cgroup.v1": bool,
    "linux.cgroup.v2": bool,
    "linux.seccomp.enabled": bool,
    "linux.apparmor.enabled": bool,
    "linux.selinux.enabled": bool,
}


@pytest.mark.parametrize("field", list(FEATURES))
def test_features_field(request: pytest.FixtureRequest, rt: Runtime, field: str) -> None:
    expect_known(request, rt, f"features-{field}")
    value: Any = json.loads(rt("features").stdout)
    for key in field.split("."):
        assert isinstance(value, dict) and key in value, f"features has no {field}"
        value = value[key]
    wanted = FEATURES[field]
    if isinstance(wanted, set):
        assert wanted <= set(value), f"{field} lacks {sorted(wanted - set(value))}"
    else:
        assert isinstance(value, wanted), f"{field} is {value!r}"


# --- exec's flags ------------------------------------------------------------------------------------

#: case -> (exec's flags and command, exact output): each changes the container's own process for this one.
EXEC_FLAGS: dict[str, tuple[list[str], str]] = {
    "cwd": (["--cwd", "/etc", "ID", "pwd"], "/etc\n"),
    "env": (["--env", "GREETING=hi", "ID", "sh", "-c", "echo $GREETING"], "hi\n"),
    "user": (["--user", "1000:1001", "ID", "sh", "-c", "id -u; id -g"], "1000\n1001\n"),
    "cap": (["--cap", "CAP_SYS_ADMIN", "ID", "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
            "CapEff:\t0000000020200420\nCapBnd:\t0000000020200420\n"),  # runc spec's three, and SYS_ADMIN
    "no-cap": (["ID", "sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"],
               "CapEff:\t0000000020000420\nCapBnd:\t0000000020000420\n"),  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
}  # fmt: skip


@pytest.mark.parametrize("case", list(EXEC_FLAGS))
def test_exec_flag(request: pytest.FixtureRequest, rt: Runtime, case: str) -> None:
    expect_known(request, rt, f"exec-{case}")
    args, expected = EXEC_FLAGS[case]
    bring_to(rt, "target", "running")
    done = rt("exec", *[("target" if arg == "ID" else arg) for arg in args], check=False)
    assert (done.returncode, done.stdout) == (0, expected), done.stderr


# --- create's errors, and the state document ----------------------------------------------------------


def no_config(bundle: pathlib.Path) -> None:
    (bundle / "config.json").unlink()


def broken_config(bundle: pathlib.Path) -> None:
    (bundle / "config.json").write_text("{not json")


def no_args(bundle: pathlib.Path) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["args"] = []
    (bundle / "config.json").write_text(json.dumps(spec))


#: case -> how the bundle is spoilt: create MUST fail, and leave no container behind.
CREATE_ERRORS = {"no-config": no_config, "broken-config": broken_config, "no-args": no_args}


@pytest.mark.parametrize("case", list(CREATE_ERRORS))
def test_create_refuses(rt: Runtime, case: str) -> None:
    bundle = pathlib.Path(rt.bundle(["true"]))
    CREATE_ERRORS[case](bundle)
    done = rt.create("spoilt", str(bundle), check=False)
    assert done.returncode != 0 and done.stderr.strip()
    assert rt.status("spoilt") == "gone"


def test_create_with_an_id_in_use_fails_and_leaves_the_first(rt: Runtime) -> None:
    bring_to(rt, "twin", "running")
    pid = rt.state("twin")["pid"]
    done = rt.create("twin", rt.bundle(["true"], name="second"), check=False)
    assert done.returncode != 0 and done.stderr.strip()
    assert rt.state("twin")["status"] == "running" and rt.state("twin")["pid"] == pid


def test_state_document(rt: Runtime) -> None:
    bundle = rt.bundle(LOOP, edit=lambda spec: spec.update(annotations={"org.example.lesson": "10"}))
    rt.create("doc", bundle)
    state = rt.state("doc")
    assert {"ociVersion", "id", "status", "pid", "bundle"} <= set(state)
    assert (state["id"], state["status"], state["annotations"]) == ("doc", "created", {"org.example.lesson": "10"})
    assert os.path.isabs(state["bundle"]) and os.path.samefile(state["bundle"], bundle)
    assert os.path.exists(f"/proc/{state['pid']}")
