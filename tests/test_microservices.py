"""The capstone (examples/microservices), end to end: nginx in front of web replicas that keep their data in Redis.

Built offline from the Debian base image and the packages ``fetch-debs.sh``
downloaded (``scripts/setup.sh`` makes both); skipped, saying which is
missing, where either is not there (``MINICTR_DEBIAN_IMAGE=0``). Requests go
to the load balancer's port on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from helpers import cli_command

from conftest import free_port, host_leftovers, host_snapshot, remove_all, wait_for

pytestmark = pytest.mark.root
EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "microservices"
DATA_ROOT = "/var/lib/minictr"  # where setup made minictr/debian:bookworm


def _missing() -> str | None:
    """Why the shop cannot be built here (the doctor's check), or None."""
    from minictr.doctor import _probe_microservices

    if os.geteuid() != 0:
        return "needs root"
    found = _probe_microservices()
    return None if found.status == "ok" else f"{found.detail} ({found.fix or 'see minictr doctor'})"


class Shop:
    """``minictr compose`` in the example's directory, with the test's own state root and a free port."""

    def __init__(self, state_root: str) -> None:
        # a project name of its own: volumes live in the shared data root, beside a notebook's "shop"
        self.state_root, self.port, self.name = state_root, free_port(), f"shop{os.getpid()}"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = cli_command("compose", "-p", self.name, *args, data_root=DATA_ROOT, state_root=self.state_root)
        done = subprocess.run(command, cwd=EXAMPLE, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "LB_PORT": str(self.port)})  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def get(self, path: str = "/") -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def replicas(self, requests: int = 30) -> set[str]:
        return {str(self.get("/work")["replica"]) for _ in range(requests)}


@pytest.fixture
def shop(state_root: str) -> Iterator[Shop]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    project = Shop(state_root)
    yield project
    subprocess.run(
        cli_command(
            "compose",
            "-p",
            project.name,
            "-f",
            str(EXAMPLE / "compose.yaml"),
            "down",
            "-v",
            data_root=DATA_ROOT,
            state_root=state_root,
        ),
        capture_output=True,
        timeout=300,
    )
    remove_all(state_root)
    # the images are tagged with the project's name: untag them (their layers stay, shared with the shop's)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "minictr.cli",
            "--data-root",
            DATA_ROOT,
            "rmi",
            *(f"{project.name}-{s}" for s in ("web", "db", "lb")),
        ],
        capture_output=True,
        timeout=120,
    )


def _answers(shop: Shop) -> bool:
    try:
        return bool(shop.get())
    except OSError:
        return False


def test_the_shop_scales_survives_a_crash_keeps_its_data_and_leaves_nothing(shop: Shop) -> None:
    before = host_snapshot(shop.state_root)
    shop("build")  # offline: the packages come from debs/ (cached after the first build)
    shop("up", "-d")
    wait_for(lambda: _answers(shop), "the load balancer to answer", timeout=120)
    first = shop.get()
    wait_for(lambda: len(shop.replicas()) == 2, "both web replicas to answer through the load balancer", timeout=60)

    shop("up", "-d", "--scale", "web=3")
    wait_for(lambda: len(shop.replicas()) == 3, "the third replica to join the load balancer", timeout=60)

    from minictr.engine.compose import replicas

    crashed = next(x for x in replicas(shop.name, shop.state_root, ["web"]) if x.number == 1)
    subprocess.run([sys.executable, "-m", "minictr.cli", "--root", shop.state_root, "kill", crashed.id], check=True)
    assert all(shop.get()["visits"] for _ in range(10))  # the others answer meanwhile

    def back() -> bool:
        (again,) = (x for x in replicas(shop.name, shop.state_root, ["web"]) if x.number == 1)
        return again.status == "running" and again.state.get("restart_count", 0) >= 1

    wait_for(back, "the restart policy to bring web replica 1 back", timeout=60)

    before_restart = shop.get()["visits"]
    shop("restart", "db")
    wait_for(lambda: _answers(shop), "the service to answer after the database restarted", timeout=60)
    assert shop.get()["visits"] > before_restart > first["visits"]  # the count lives on in the volume

    ours = [shop.state_root, *(x.id for x in replicas(shop.name, shop.state_root))]
    shop("down", "-v")
    assert not replicas(shop.name, shop.state_root)
    from minictr.engine.volumes import listing

    assert f"{shop.name}_data" not in {v["Name"] for v in listing(data_root=DATA_ROOT)}
    assert not host_leftovers(before, host_snapshot(shop.state_root), *ours)
