"""Healthchecks for real: checks run by the container's monitor through exec, their verdict in ps and inspect.

The checks test a file the container's own program creates or removes, so
the verdict follows what happens inside the container; every wait is for a
condition, with a generous deadline.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from conftest import run_cli, wait_for
from minictr.engine import health
from minictr.errors import ContainerError, UsageError

pytestmark = pytest.mark.root

#: Ready after a while: the file a check looks for appears two seconds after start.
READY_LATER = "sleep 2; touch /tmp/ready; exec sleep 120"


class Containers:
    """A test's detached containers; all removed with rm -f at the end."""

    def __init__(self, data_root: str, state_root: str) -> None:
        self.data_root, self.state_root = data_root, state_root
        self.started: list[str] = []

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, data_root=self.data_root, state_root=self.state_root)
        assert not check or done.returncode == 0, done.stderr
        return done

    def detach(self, *args: str) -> str:
        container = self.cli("run", "-d", "--network", "none", *args).stdout.strip()
        self.started.append(container)
        return container

    def inspect(self, container: str) -> dict:
        return json.loads(self.cli("inspect", container).stdout)[0]

    def status(self, container: str) -> str:
        (row,) = [json.loads(line) for line in self.cli("ps", "--format", "json").stdout.splitlines()
                  if json.loads(line)["ID"] == container[:12]]  # fmt: skip
        return row["Status"]


@pytest.fixture
def containers(data_root: str, state_root: str) -> Iterator[Containers]:
    made = Containers(data_root, state_root)
    yield made
    for container in made.started:
        made.cli("rm", "-f", container, check=False)


def health_of(containers: Containers, container: str) -> dict:
    return containers.inspect(container)["State"].get("Health", {})


def test_starting_then_healthy_shown_in_ps_and_inspect(containers: Containers) -> None:
    container = containers.detach("--health-cmd", "test -e /tmp/ready", "--health-interval", "200ms",
                                  "--health-start-period", "60s", "busybox", "sh", "-c", READY_LATER)  # fmt: skip
    assert health_of(containers, container)["Status"] == "starting"
    assert containers.status(container).endswith("(health: starting)")
    health.wait_healthy(container, timeout=60, state_root=containers.state_root)
    found = health_of(containers, container)
    assert found["Status"] == "healthy" and found["FailingStreak"] == 0
    assert found["Log"][-1]["ExitCode"] == 0 and 1 <= len(found["Log"]) <= health.LOG_LENGTH
    assert any(entry["ExitCode"] == 1 for entry in found["Log"]) or len(found["Log"]) == health.LOG_LENGTH
    assert containers.status(container).startswith("Up") and containers.status(container).endswith("(healthy)")
    config = containers.inspect(container)["Config"]["Healthcheck"]
    assert config["Test"] == ["CMD-SHELL", "test -e /tmp/ready"] and config["Interval"] == 200_000_000


def test_healthy_then_unhealthy_after_retries_failures_in_a_row(containers: Containers) -> None:
    checks = ["--health-cmd", "test -e /tmp/ready && echo fine", "--health-interval", "200ms", "--health-retries", "2",
              "--health-start-period", "60s"]  # fmt: skip
    container = containers.detach(*checks, "busybox", "sh", "-c", READY_LATER)
    health.wait_healthy(container, timeout=60, state_root=containers.state_root)
    assert health_of(containers, container)["Log"][-1]["Output"] == "fine\n"
    containers.cli("exec", container, "rm", "/tmp/ready")
    wait_for(lambda: health_of(containers, container)["Status"] == "unhealthy", "the container to turn unhealthy")
    found = health_of(containers, container)
    assert found["FailingStreak"] >= 2 and found["Log"][-1]["ExitCode"] == 1
    assert containers.status(container).endswith("(unhealthy)")
    with pytest.raises(ContainerError, match="unhealthy"):
        health.wait_healthy(container, timeout=5, state_root=containers.state_root)


def test_a_check_that_outlives_its_timeout_fails(containers: Containers) -> None:
    container = containers.detach("--health-cmd", "sleep 30", "--health-interval", "200ms", "--health-timeout", "300ms",
                                  "--health-retries", "1", "busybox", "sleep", "120")  # fmt: skip
    wait_for(lambda: health_of(containers, container)["Status"] == "unhealthy", "a timed-out check to count as failed")
    assert "exceeded timeout" in health_of(containers, container)["Log"][-1]["Output"]
    # killed with its check: its own sleep and at most the check running now (without, one more every 300 ms)
    assert int(containers.cli("exec", container, "sh", "-c", "pgrep -x sleep | wc -l").stdout) <= 2


def test_the_images_healthcheck_is_run_and_no_healthcheck_turns_it_off(containers: Containers, tmp_path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    check = "HEALTHCHECK --interval=200ms --start-period=60s CMD test -e /tmp/ready"
    (context / "Dockerfile").write_text(f"FROM busybox\nLABEL test={tmp_path.name}\n{check}\n")
    built = containers.cli("build", "--network", "none", "-t", "checked:1", str(context))
    assert built.returncode == 0
    container = containers.detach("checked:1", "sh", "-c", READY_LATER)
    health.wait_healthy(container, timeout=60, state_root=containers.state_root)
    unchecked = containers.detach("--no-healthcheck", "checked:1", "sleep", "120")
    assert "Health" not in containers.inspect(unchecked)["State"] and "(" not in containers.status(unchecked)
    with pytest.raises(ContainerError, match="no healthcheck"):
        health.wait_healthy(unchecked, timeout=5, state_root=containers.state_root)


def test_the_python_api_shows_and_waits_for_health(data_root: str, state_root: str) -> None:
    import minictr

    client = minictr.containers.Client(data_root=data_root, state_root=state_root)
    checked = {"Test": ["CMD-SHELL", "test -e /tmp/ready"], "Interval": 200_000_000, "StartPeriod": 60 * health.SECOND}
    container = client.run("busybox", ["sh", "-c", READY_LATER], detach=True, network="none", healthcheck=checked)
    try:
        assert container.health in ("starting", "healthy")
        container.wait_healthy(timeout=60)
        assert container.health == "healthy"
    finally:
        container.remove(force=True)


def test_health_flags_are_checked() -> None:
    assert health.from_flags("true", interval="1m30s", retries=5) == {
        "Test": ["CMD-SHELL", "true"], "Interval": 90_000_000_000, "Retries": 5}  # fmt: skip
    assert health.from_flags(disabled=True) == {"Test": ["NONE"]}
    assert health.from_flags() is None
    for bad in ({"interval": "often"}, {"retries": 0}, {"timeout": "0s"}, {"cmd": "true", "disabled": True}):
        with pytest.raises(UsageError):
            health.from_flags(**bad)  # type: ignore[arg-type]


def test_docker_rules_for_the_verdict() -> None:
    config = {**health.DEFAULTS, "Retries": 2, "StartPeriod": 10 * health.SECOND}
    starting = {"Status": "starting", "FailingStreak": 0}
    assert health.verdict(starting, config, False, since_start=1)["Status"] == "starting"  # in the start period
    assert health.verdict(starting, config, False, since_start=1)["FailingStreak"] == 0
    once = health.verdict(starting, config, False, since_start=11)
    assert (once["Status"], once["FailingStreak"]) == ("starting", 1)
    assert health.verdict(once, config, False, since_start=12)["Status"] == "unhealthy"
    assert health.verdict(once, config, True, since_start=12) == {"Status": "healthy", "FailingStreak": 0}
