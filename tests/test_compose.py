"""minictr compose, by behaviour: a file read and checked, projects brought up, scaled, changed and taken down.

The file checks need nothing but Python. The rest runs busybox services
through the real command line with a test's own state root and data root,
and checks what runs (requests between the project's containers, a published
port on loopback), what ``up`` changes the second time, a crashed replica
brought back by its restart policy, and that ``down -v`` leaves nothing.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import textwrap
import time
import urllib.request

import pytest

from conftest import free_port, host_leftovers, host_snapshot, remove_all, remove_container, run_cli, wait_for
from minictr.engine.compose.model import load
from minictr.errors import ComposeError

root = pytest.mark.skipif(os.geteuid() != 0, reason="compose projects need root (bridge networks, cgroups)")


def _file(tmp_path: pathlib.Path, text: str, name: str = "shop") -> str:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / "compose.yaml").write_text(textwrap.dedent(text))
    return str(directory / "compose.yaml")


# --- the file ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "services:\n  web:\n    image: busybox\n    ports: ['80:80:80']\n",
            "services.web.ports[0]: '80:80:80' is not",
        ),
        ("services:\n  web:\n    command: [sh]\n", "services.web: needs an image or a build"),
        ("services:\n  web:\n    image: busybox\n    environment: 3\n", "services.web.environment: must be a mapping"),
        ("services:\n  web:\n    image: busybox\n    depends_on: [db]\n", "services.web.depends_on: no service 'db'"),
        (
            "services:\n  web:\n    image: busybox\n    volumes: ['data:/d']\n",
            "services.web.volumes[0]: volume 'data' is not declared under the top-level volumes",
        ),
        (
            "services:\n  web:\n    image: busybox\n    restart: sometimes\n",
            "services.web.restart: 'sometimes': choose",
        ),
        (
            "services:\n  web:\n    image: busybox\n    deploy: {replicas: -1}\n",
            "services.web.deploy.replicas: must be",
        ),
        (
            "services:\n  a: {image: busybox, depends_on: [b]}\n  b: {image: busybox, depends_on: [a]}\n",
            "services.a.depends_on: a circle: a -> b -> a",
        ),
        (
            "services:\n  web:\n    image: busybox\n    healthcheck: {test: [WRONG, x]}\n",
            "services.web.healthcheck.test:",
        ),
        (
            "services:\n  web:\n    image: busybox\n    healthcheck: {test: true, interval: 3 days}\n",
            "services.web.healthcheck.test: must be a list",
        ),
        ("services:\n  web: [image]\n", "services.web: must be a mapping, not a list"),
        ("services:\n  web:\n    image: busybox\n   ports: []\n", "compose.yaml line 4: not valid YAML"),
        ("services:\n  web:\n    image: ${MISSING:?set MISSING first}\n", "services.web.image: set MISSING first"),
    ],
)
def test_an_invalid_file_is_one_error_naming_the_path_in_it(tmp_path: pathlib.Path, body: str, message: str) -> None:
    with pytest.raises(ComposeError) as raised:
        load(_file(tmp_path, body))
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)


def test_unknown_keys_are_warnings_naming_them_and_values_are_normalised(tmp_path: pathlib.Path) -> None:
    path = _file(tmp_path, """\
        version: "3.9"
        x-extra: 1
        services:
          web:
            image: busybox:${TAG:-1}
            privileged: true
            command: sh -c 'echo "a b"'
            environment: [A=1, FROM_HOST]
            env_file: web.env
            ports: [8080:80, {target: 81, published: 8081, protocol: udp}]
            volumes: [./site:/www:ro, data:/data, /anon]
            deploy: {replicas: 3, resources: {}}
            restart: on-failure:2
            depends_on: {db: {condition: service_healthy}}
          db:
            image: busybox
            healthcheck: {test: echo ok, interval: 1m30s, retries: 3}
        volumes:
          data:
        """)  # fmt: skip
    pathlib.Path(path).with_name("web.env").write_text("# comment\nB='two words'\nA=overridden\n")
    project = load(path, environ={"FROM_HOST": "h"})
    web = project.services["web"]
    assert project.name == "shop" and web.image == "busybox:1"
    assert project.warnings == ["version: obsolete, ignored", "services.web.privileged: not supported, ignored",
                                "services.web.deploy.resources: not supported, ignored"]  # fmt: skip
    assert web.command == ["sh", "-c", 'echo "a b"'] and web.replicas == 3 and web.restart == "on-failure:2"
    assert web.environment["B"] == "two words" and web.environment["A"] == "1"
    assert web.ports == ["8080:80", "8081:81/udp"]
    site = os.path.join(os.path.dirname(path), "site")
    assert [m["source"] for m in web.volumes] == [site, "data", ""] and web.volumes[0]["read_only"]
    assert web.depends_on == {"db": "service_healthy"}
    assert project.services["db"].healthcheck == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 90.0, "Retries": 3}
    assert [s.name for s in project.ordered(["web"])] == ["db", "web"]
    assert load(path, name="other", environ={}).volumes["data"].name == "other_data"


def test_a_bad_file_through_the_cli_is_one_line_and_exit_125(tmp_path: pathlib.Path) -> None:
    path = _file(tmp_path, "services:\n  web:\n    image: busybox\n    ports: [abc]\n")
    done = run_cli("compose", "-f", path, "up", "-d", data_root=str(tmp_path), state_root=str(tmp_path / "run"))
    assert done.returncode == 125
    assert done.stderr.strip().splitlines() == [
        "minictr: error: services.web.ports[0]: 'abc' is not "
        "[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp] (ranges are not supported)"
    ]


# --- projects on the host -----------------------------------------------------------------------------------


class Compose:
    """``minictr compose -f FILE`` with a test's own roots."""

    def __init__(self, path: str, data_root: str, state_root: str) -> None:
        self.path, self.data_root, self.state_root = path, data_root, state_root

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_cli(
            "compose", "-f", self.path, *args, data_root=self.data_root, state_root=self.state_root, timeout=180
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    def ps(self) -> dict[str, str]:
        """Container name -> status."""
        rows = self("ps", "-a").stdout.splitlines()[1:]
        return {row.split()[0]: row.split()[3] for row in rows}

    def ids(self) -> dict[str, str]:
        """Container name -> id."""
        from minictr.engine.compose import replicas

        return {x.name: x.id for x in replicas("shop", self.state_root)}


WEB = """\
    services:
      web:
        image: busybox
        init: true
        command: [sh, -c, 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www']
        deploy: {replicas: 2}
        stop_grace_period: 2s
      front:
        image: busybox
        init: true
        command: [sh, -c, 'echo front > /www/index.html; exec httpd -f -p 80 -h /www']
        ports: ["127.0.0.1:PORT:80"]
        volumes: [site:/www]
        depends_on: [web]
        stop_grace_period: 2s
    volumes:
      site:
    """


@pytest.fixture
def compose(tmp_path: pathlib.Path, data_root: str, state_root: str):  # type: ignore[no-untyped-def]
    port = free_port()
    project = Compose(_file(tmp_path, WEB.replace("PORT", str(port))), data_root, state_root)
    project.port = port  # type: ignore[attr-defined]
    yield project
    project("down", "-v", check=False)
    remove_all(state_root)


def _get(url: str, deadline: float = 30) -> bytes:
    """``GET url`` from the host, retried while the server starts."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _bridge(compose: Compose) -> str:
    done = run_cli("network", "inspect", "shop_default", data_root=compose.data_root, state_root=compose.state_root)
    return json.loads(done.stdout)[0]["Bridge"]


@root
def test_up_scale_change_and_down_v_leave_nothing(compose: Compose) -> None:
    before = host_snapshot(compose.state_root)
    up = compose("up", "-d")
    assert "Network shop_default  Created" in up.stderr and "Volume shop_site  Created" in up.stderr
    assert compose.ps() == {"shop-web-1": "Up", "shop-web-2": "Up", "shop-front-1": "Up"}
    # the service's name reaches its replicas from the project's network; the published port from loopback
    answers = {compose("exec", "front", "wget", "-qO-", f"http://shop-web-{n}/").stdout.strip() for n in (1, 2)}
    ids = compose.ids()
    assert answers == {ids["shop-web-1"][:12], ids["shop-web-2"][:12]}
    assert compose("exec", "front", "wget", "-qO-", "http://web/").stdout.strip() in answers
    url = f"http://127.0.0.1:{compose.port}/"  # type: ignore[attr-defined]
    assert _get(url) == b"front\n"

    compose("up", "-d", "--scale", "web=3")
    assert compose.ids().items() >= ids.items() and len(compose.ids()) == 4  # the two kept, a third added
    compose("up", "-d")  # the file says 2 again
    assert compose.ids() == ids
    pathlib.Path(compose.path).write_text(pathlib.Path(compose.path).read_text().replace("echo front", "echo front2"))
    changed = compose("up", "-d")
    assert "Container shop-front-1  Recreated" in changed.stderr and "Container shop-web-1  Running" in changed.stderr
    after = compose.ids()
    assert after["shop-web-1"] == ids["shop-web-1"] and after["shop-front-1"] != ids["shop-front-1"]
    assert _get(url) == b"front2\n"

    ours = [compose.state_root, *compose.ids().values(), _bridge(compose)]
    down = compose("down", "-v")
    assert down.stderr.splitlines()[-2:] == ["Network shop_default  Removed", "Volume shop_site  Removed"]
    assert compose.ps() == {} and not compose.ids()
    listed = run_cli("network", "ls", "-q", data_root=compose.data_root, state_root=compose.state_root).stdout.split()
    assert "shop_default" not in listed
    volumes = run_cli("volume", "ls", "-q", data_root=compose.data_root, state_root=compose.state_root).stdout.split()
    assert "shop_site" not in volumes
    assert not host_leftovers(before, host_snapshot(compose.state_root), *ours)


@root
def test_a_crashed_replica_is_restarted_by_its_policy_while_the_other_answers(compose: Compose) -> None:
    text = (
        pathlib.Path(compose.path)
        .read_text()
        .replace("deploy: {replicas: 2}", "deploy: {replicas: 2}\n    restart: always")
    )
    pathlib.Path(compose.path).write_text(text)
    compose("up", "-d", "web")
    assert compose.ps() == {"shop-web-1": "Up", "shop-web-2": "Up"}
    from minictr.engine.compose import replicas

    crashed = next(x for x in replicas("shop", compose.state_root) if x.number == 1)
    run_cli("kill", crashed.id, data_root=compose.data_root, state_root=compose.state_root)  # SIGKILL: a crash
    assert compose("exec", "--index", "2", "web", "wget", "-qO-", "http://127.0.0.1/").returncode == 0

    def restarted() -> bool:
        (again,) = (x for x in replicas("shop", compose.state_root) if x.number == 1)
        return (
            again.status == "running"
            and again.state.get("restart_count", 0) >= 1
            and again.state["pid"] != crashed.state["pid"]
        )

    wait_for(restarted, "the restart policy to bring shop-web-1 back", timeout=60)
    assert compose("exec", "web", "wget", "-qO-", "http://127.0.0.1/").stdout.strip() == crashed.id[:12]


@root
def test_stop_start_logs_and_a_fixed_host_port_with_replicas(compose: Compose) -> None:
    compose("up", "-d", "web")
    compose("stop", "web")
    assert set(compose.ps().values()) == {"Exited"}
    compose("start")
    assert set(compose.ps().values()) == {"Up"}
    compose("exec", "web", "sh", "-c", "echo from-exec > /proc/1/fd/1")
    logs = compose("logs", "web").stdout.splitlines()
    assert "shop-web-1  | from-exec" in logs
    refused = compose("up", "-d", "--scale", "front=2", check=False)
    assert refused.returncode == 125 and "services.front.ports[0]: host port" in refused.stderr


RMI = """\
    services:
      app:
        build: ./app
        command: [sleep, "60"]
        init: true
        stop_grace_period: 1s
      tagged:
        build: ./app
        image: rmi-tagged:1
        command: [sleep, "60"]
        init: true
        stop_grace_period: 1s
    """


@root
def test_down_rmi_local_removes_the_built_images_and_all_the_named_ones_too(
    tmp_path: pathlib.Path, data_root: str, state_root: str
) -> None:
    path = _file(tmp_path, RMI, name="rmi")
    (tmp_path / "rmi" / "app").mkdir()
    (tmp_path / "rmi" / "app" / "Dockerfile").write_text(f"FROM busybox\nLABEL test={os.getpid()}\n")
    project = Compose(path, data_root, state_root)

    def images() -> set[str]:
        listed = run_cli("images", data_root=data_root, state_root=state_root).stdout.splitlines()[1:]
        return {":".join(row.split()[:2]) for row in listed if row.startswith("rmi-")}

    try:
        project("up", "-d")
        assert images() == {"rmi-app:latest", "rmi-tagged:1"}
        # without the file (-p): the containers' labels say which images the project built under its name
        down = run_cli("compose", "-p", "rmi", "down", "--rmi", "local", data_root=data_root, state_root=state_root,
                       cwd=str(tmp_path))  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert down.stderr.splitlines()[-1] == "Image rmi-app  Removed" and images() == {"rmi-tagged:1"}
        assert "busybox" in run_cli("images", data_root=data_root, state_root=state_root).stdout  # FROM stays
        # an image another container uses is kept, as rmi without -f keeps it
        other = run_cli("run", "-d", "--network", "none", "rmi-tagged:1", "sleep", "60", data_root=data_root,
                        state_root=state_root).stdout.strip()  # fmt: skip
        kept = project("down", "--rmi", "all").stderr.splitlines()
        assert kept == [f"minictr: warning: image rmi-tagged:1 is kept: container {other[:12]} uses it"]
        remove_container(other, data_root=data_root, state_root=state_root)
        # with the file, and nothing running: every service's image (one already gone is passed over)
        assert project("down", "--rmi", "all").stderr.splitlines() == ["Image rmi-tagged:1  Removed"]
        assert images() == set()
        refused = project("down", "--rmi", "some", check=False)
        assert refused.returncode == 125 and "--rmi: invalid choice: 'some'" in refused.stderr
    finally:
        project("down", "--rmi", "all", check=False)
        remove_all(state_root)
