"""The recipe's steps, chosen per container, and a learner's functions carrying some out.

Each test runs real containers with a subset of the steps the notebooks
teach and checks what the program inside sees against what the host shows:
without the pid step the host's processes are there, without the uts step
the host's name, without the network step the host's interfaces, without
the security step every capability. The learner's path runs the exercises'
reference solutions in the container's first process and compares that
container with the runtime's own; each exercise that is a step (init,
new_user, join_cgroup, drop_bounding) is also plugged in broken, and the
difference is seen in the container (zombies and a lost SIGTERM, an error
naming the line, limits that do not apply, a capability left in the
bounding set).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest

from conftest import remove_all, run_cli
from minictr import tutorial
from minictr.engine.container import run
from minictr.engine.run_options import RunOptions
from minictr.errors import ContainerError, UsageError
from minictr.runtime.process import recipe
from minictr.tutorial import step_exercises

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def roots(data_root: str, state_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's busybox store and a state root of the test's own, for the tutorial's helpers too."""
    monkeypatch.setenv("MINICTR_DATA_ROOT", data_root)
    monkeypatch.setenv("MINICTR_ROOT", state_root)


@pytest.fixture
def open_roots(open_base: str, open_data_root: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Roots any uid may pass through, for containers in a user namespace (root inside is uid 100000 outside)."""
    state = tempfile.mkdtemp(prefix="run-", dir=open_base)
    os.chmod(state, 0o711)
    monkeypatch.setenv("MINICTR_DATA_ROOT", open_data_root)
    monkeypatch.setenv("MINICTR_ROOT", state)
    yield
    remove_all(state)
    shutil.rmtree(state, ignore_errors=True)


def inside(command: str, steps: list[str], **options: object) -> str:
    """What ``sh -c command`` prints in a container of ``steps``."""
    done = run("busybox", ["sh", "-c", command], RunOptions(steps=steps, **options), capture=True)  # type: ignore[arg-type]
    assert done.exit_code == 0, done.stderr
    return done.stdout.decode()


def test_without_the_pid_step_the_host_pids_are_seen(roots: None) -> None:
    listing = "ls /proc | grep '^[0-9]*$'; echo self $$"
    shared = inside(listing, tutorial.taught("03")).split()
    assert str(os.getpid()) in shared  # this test's process, seen from inside
    assert shared[-1] != "1"
    own = inside(listing, tutorial.taught("04")).split()
    assert str(os.getpid()) not in own and own[-1] == "1"


def test_without_the_uts_step_the_host_name_stays(roots: None) -> None:
    assert inside("hostname", ["chroot", "mount"]).strip() == socket.gethostname()
    assert inside("hostname", tutorial.taught("03"), hostname="stepped").strip() == "stepped"


def test_without_the_network_step_the_host_network_is_seen(roots: None) -> None:
    look = "readlink /proc/self/ns/net; cat /proc/net/dev"
    namespace, devices = inside(look, tutorial.taught("05")).split("\n", 1)
    assert namespace == os.readlink("/proc/self/ns/net")  # the host's: its interfaces come and go with the host's
    assert "lo" in tutorial.interfaces(devices) and len(tutorial.interfaces(devices)) > 1
    namespace, devices = inside(look, tutorial.taught("06"), network="none").split("\n", 1)
    assert namespace != os.readlink("/proc/self/ns/net") and tutorial.interfaces(devices) == ["lo"]


def test_without_the_security_step_every_capability_stays(roots: None) -> None:
    def effective(steps: list[str]) -> int:
        return int(inside("grep CapEff /proc/self/status", steps, network="none").split()[1], 16)

    with open("/proc/self/status") as handle:
        ours = next(int(line.split()[1], 16) for line in handle if line.startswith("CapEff"))
    assert effective(tutorial.taught("07")) == ours
    assert effective(tutorial.taught("09")) & ~ours == 0 and effective(tutorial.taught("09")) != ours


def test_chroot_alone_is_the_chroot_isolation(roots: None) -> None:
    alone = inside("ls -l /proc/self/ns/uts /proc/self/ns/pid | cut -d'>' -f2", ["chroot"]).split()
    assert alone == [os.readlink("/proc/self/ns/pid"), os.readlink("/proc/self/ns/uts")]


def test_the_reference_solutions_build_the_runtime_container(roots: None) -> None:
    chrooted = tutorial.judge_own_steps([tutorial.reference("enter_root")], ["chroot"])
    assert chrooted.ok, chrooted.message
    mine = [tutorial.reference("pivot_into"), tutorial.reference("new_uts")]
    full = tutorial.judge_own_steps(mine, list(recipe.STEPS))
    assert full.ok, full.message


def test_the_learner_function_runs_in_the_container(roots: None) -> None:
    def new_uts(hostname, domainname):
        from minictr.kernel import linux

        linux.unshare(linux.CLONE_NEWUTS)
        linux.sethostname(hostname.upper() + str(os.getpid()))  # PID 1 of its pid namespace: 1

    done = tutorial.run_with([new_uts], ["hostname"], steps=tutorial.taught("04"), hostname="box")
    assert done.stdout.decode().strip() == "BOX1"


def test_a_learner_mistake_is_named_and_stays_inside(roots: None) -> None:
    def pivot_into(new_root):
        os.chdir(new_root)
        raise ValueError("not yet")

    with pytest.raises(ContainerError, match=r"your pivot_into\(\) line 3 raised ValueError: not yet"):
        tutorial.run_with([pivot_into], ["true"], steps=tutorial.taught("02"))

    def new_uts(hostname, domainname):
        from minictr.kernel import linux

        linux.sethostname(hostname)

    before = socket.gethostname()
    done = tutorial.run_with([new_uts], ["hostname"], steps=tutorial.taught("03"), hostname="not-the-host")
    assert done.stdout.decode().strip() == "not-the-host" and socket.gethostname() == before


@pytest.mark.parametrize(("options", "message"), [
    (RunOptions(steps=["mount"]), "needs the chroot step"),
    (RunOptions(steps=["chroot", "pods"]), "no step called pods"),
    (RunOptions(steps=["chroot"], own_steps={"pivot_into": {"name": "p", "source": ""}}), "container does not have"),
    (RunOptions(steps=["chroot", "mount"], own_steps={"enter_root": {"name": "e", "source": ""}}), "pivot_into enters"),
    (RunOptions(steps=["chroot", "mount"], network="none"), "need the network step"),
    (RunOptions(steps=["chroot", "mount"], cap_drop=["CHOWN"]), "need the security step"),
    (RunOptions(steps=["chroot"], volumes=["/tmp:/tmp"]), "need the mount step"),
    (RunOptions(steps=["chroot", "mount"], userns="private"), "need the user step"),
    (RunOptions(isolation="chroot", steps=["chroot", "mount"]), "not both"),
])  # fmt: skip
def test_steps_that_cannot_be_made_are_refused(roots: None, options: RunOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        run("busybox", ["true"], options, capture=True)


def test_the_command_line_takes_steps(data_root: str, state_root: str) -> None:
    done = run_cli("run", "--steps", "chroot,mount", "busybox", "hostname", data_root=data_root, state_root=state_root)
    assert done.returncode == 0 and done.stdout.strip() == socket.gethostname()
    wrong = run_cli("run", "--steps", "mount,uts", "busybox", "true", data_root=data_root, state_root=state_root)
    assert wrong.returncode == 125 and "every container needs the chroot step" in wrong.stderr


def test_a_detached_container_keeps_its_steps_under_its_monitor(data_root: str, state_root: str) -> None:
    started = run_cli(
        "run",
        "-d",
        "--steps",
        "chroot,mount,uts",
        "-h",
        "kept",
        "busybox",
        "sleep",
        "300",
        data_root=data_root,
        state_root=state_root,
    )
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        seen = run_cli("exec", container, "sh", "-c", "hostname; ls /proc", data_root=data_root, state_root=state_root)
        assert seen.stdout.split()[0] == "kept"
        assert str(os.getpid()) in seen.stdout.split()  # no pid step: the host's processes
    finally:
        run_cli("rm", "-f", container, data_root=data_root, state_root=state_root)


# --- the exercises that are steps: a correct and a broken version of each, in real containers ----------


def test_the_learner_init_reaps_and_passes_signals_on(roots: None) -> None:
    assert tutorial.judge_init(tutorial.reference("init")).ok

    def init(program):  # waits for the program only, and installs no handler
        _, status = os.waitpid(program, 0)
        return os.waitstatus_to_exitcode(status)

    theirs, mine = step_exercises.side_by_side(init, step_exercises.INIT_PROBE, tutorial.taught("04"), init=True)
    assert theirs["children of PID 1 left"] == "0" and theirs["exit status"] == "143"
    assert mine["children of PID 1 left"] == "3" and mine["exit status"] == "0"  # zombies; SIGTERM dropped
    assert "Orphans are left as zombies" in tutorial.judge_init(init).message


def test_the_learner_new_user_enters_the_user_namespace(open_roots: None) -> None:
    assert tutorial.judge_new_user(tutorial.reference("new_user")).ok

    def new_user(write_maps):  # root inside before the maps exist
        from minictr.kernel import linux

        linux.unshare(linux.CLONE_NEWUSER)
        os.setresuid(0, 0, 0)
        write_maps()

    with pytest.raises(ContainerError, match=r"your new_user\(\) line 5 raised OSError: \[Errno 22\]"):
        tutorial.run_with([new_user], ["id"], steps=tutorial.taught("05"), userns="private")

    def new_user(write_maps):  # type: ignore[no-redef]  # no namespace of its own: the host's maps are fixed
        write_maps()

    verdict = tutorial.judge_new_user(new_user)
    assert not verdict.ok and "linux.unshare(linux.CLONE_NEWUSER)" in verdict.message


def test_the_learner_join_cgroup_puts_the_container_under_its_limits(roots: None) -> None:
    assert tutorial.judge_join_cgroup(tutorial.reference("join_cgroup")).ok

    def join_cgroup(paths):  # the memory hierarchy alone (on cgroup v2, with its one directory: none)
        for path in paths:
            if "/memory/" in path:
                with open(os.path.join(path, "cgroup.procs"), "w") as procs:
                    procs.write(str(os.getpid()))

    limits = step_exercises.CGROUP_LIMITS
    theirs, mine = step_exercises.side_by_side(
        join_cgroup, step_exercises.CGROUP_PROBE, tutorial.taught("07"), **limits
    )
    assert theirs["exit status"] == "2" and "ten processes" not in theirs  # the sixth fork failed: sh gave up
    assert mine["ten processes"] == "started" and mine["exit status"] == "0"
    verdict = tutorial.judge_join_cgroup(join_cgroup)
    missed = "memory" if mine["dd of 64 MiB"] != theirs["dd of 64 MiB"] else "pids"  # v2: one directory, not joined
    assert not verdict.ok and f"The {missed} limit did not apply" in verdict.message


def test_the_learner_drop_bounding_shapes_the_bounding_set(roots: None) -> None:
    assert tutorial.judge_drop_bounding(tutorial.reference("drop_bounding")).ok

    def drop_bounding(keep):  # off by one: the kernel's last capability stays
        from minictr.kernel import linux
        from minictr.kernel.security.capabilities import NAMES

        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for number in range(last):
            if NAMES[number] not in keep:
                linux.prctl(linux.PR_CAPBSET_DROP, number)

    theirs, mine = step_exercises.side_by_side(drop_bounding, step_exercises.BOUNDING_PROBE, tutorial.taught("09"))
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    assert int(mine["CapBnd"], 16) == int(theirs["CapBnd"], 16) | 1 << last
    assert "Off by one?" in tutorial.judge_drop_bounding(drop_bounding).message


def test_the_learner_steps_together_make_the_runtime_container(open_roots: None) -> None:
    names = ["pivot_into", "new_uts", "init", "new_user", "drop_bounding"]  # join_cgroup: not in a user namespace
    verdict = tutorial.judge_own_steps([tutorial.reference(name) for name in names], list(recipe.STEPS))
    assert verdict.ok, verdict.message
