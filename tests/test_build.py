"""minictr build: Dockerfiles into OCI images, by behaviour.

Every instruction reaches the image config or its files; RUN runs in real
containers; COPY/ADD honour --chown, --chmod, globs and .dockerignore; ADD
unpacks a local archive; multi-stage builds copy between stages; the layer
cache skips what did not change (a RUN writes a fresh uuid: the same uuid
after a rebuild means it did not run again); errors name the Dockerfile's
line; the image goes through the loopback registry and skopeo.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid

import pytest
import registry_server as rs
from helpers import cli_command

from conftest import run_cli
from minictr.engine.build.context import Ignore
from minictr.engine.build.dockerfile import Lexer, parse
from minictr.engine.container_root import image_store, unpacked_rootfs
from minictr.engine.images.busybox import build_busybox_image
from minictr.errors import BuildError

root = pytest.mark.root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data root of this module's own, with busybox: what the tests here make stays out of the others' way."""
    root = tmp_path_factory.mktemp("module-data")
    build_busybox_image(image_store(str(root)))
    return str(root)


def _context(tmp_path, dockerfile: str, files: dict[str, bytes | str] | None = None) -> str:
    context = tmp_path / "ctx"
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(context)


def _build(context: str, *args: str, data_root: str, state_root: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "build", "--network", "none", *args, context, data_root=data_root, state_root=state_root, timeout=180
    )


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _run(image: str, *command: str, data_root: str, state_root: str) -> str:
    result = run_cli("run", "--network", "none", image, *command, data_root=data_root, state_root=state_root)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _unique(dockerfile: str) -> str:
    """``dockerfile`` with a label after its first FROM: a cache chain of the test's own (the data root is shared)."""
    lines = dockerfile.splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith("FROM")) + 1
    return "".join([*lines[:at], f"LABEL test.run={uuid.uuid4().hex}\n", *lines[at:]])


# --- reading Dockerfiles (no root needed) ----------------------------------------------------------


def test_words_expand_variables_as_docker_does() -> None:
    lexer = Lexer({"A": "one", "EMPTY": "", "S": "a b"})
    assert lexer.words("$A ${A} ${MISSING:-dflt} ${EMPTY:-e} ${EMPTY-e} ${A:+set} ${MISSING+x}") == [
        "one",
        "one",
        "dflt",
        "e",
        "set",
    ]
    assert lexer.words('\'$A\' "$A" \\$A x="$S c"') == ["$A", "one", "$A", "x=a b c"]


def test_dockerignore_patterns() -> None:
    ignore = Ignore(["# comment", "*.log", "secret*", "!secret-ok", "build/", "**/cache"])
    assert ignore.ignored("x.log") and ignore.ignored("secret.key") and not ignore.ignored("secret-ok")
    assert ignore.ignored("build/out/a") and ignore.ignored("deep/er/cache/file")
    assert not ignore.ignored("sub/x.log") and not ignore.ignored("keep.txt")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("FROM busybox\nFROB x\n", 2, "unknown instruction: FROB"),
        ("FROM busybox\nRUN echo \\\n", 2, "continued line"),
        ("RUN true\n", 1, "first instruction must be FROM"),
        ("FROM busybox\nONBUILD RUN true\n", 2, "ONBUILD"),
        ("FROM busybox\nRUN <<EOF\necho hi\nEOF\n", 2, "heredocs"),
        ("FROM busybox\nENV\n", 2, "needs at least one argument"),
    ],
)
def test_malformed_dockerfiles_are_refused_naming_the_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(BuildError, match=rf"^Dockerfile:{line}: .*{fragment}"):
        parse(text)


# --- building ---------------------------------------------------------------------------------------


@root
def test_every_config_instruction_reaches_the_image(data_root: str, state_root: str, tmp_path) -> None:
    dockerfile = """\
ARG BASE=busybox
FROM ${BASE}
ARG VERSION=1.0
LABEL org.example.version=$VERSION "description"="two words"
MAINTAINER someone@example.org
ENV APP=/srv/app
ENV PLAIN value with spaces
ENV GREETING="hello $VERSION"
WORKDIR $APP
WORKDIR sub
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data"]
VOLUME /cache /logs
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-c"]
USER daemon
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $GREETING from $(pwd) as $(id -u) with PLAIN=$PLAIN"]
"""
    _ok(_build(_context(tmp_path, _unique(dockerfile)), "-t", "every:1", data_root=data_root, state_root=state_root))
    config = image_store(data_root).get("every:1").config
    settings = config["config"]
    assert settings["Labels"]["org.example.version"] == "1.0" and settings["Labels"]["description"] == "two words"
    assert config["author"] == "someone@example.org"
    assert (
        "APP=/srv/app" in settings["Env"]
        and "PLAIN=value with spaces" in settings["Env"]
        and "GREETING=hello 1.0" in settings["Env"]
    )
    assert settings["WorkingDir"] == "/srv/app/sub"
    assert settings["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert settings["Volumes"] == {"/data": {}, "/cache": {}, "/logs": {}}
    assert settings["StopSignal"] == "SIGUSR1"
    assert settings["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 30_000_000_000,
        "Timeout": 90_000_000_000,
        "Retries": 3,
    }
    assert settings["Shell"] == ["/bin/sh", "-c"] and settings["User"] == "daemon"
    assert settings["Entrypoint"] == ["/bin/sh", "-c"] and settings["Cmd"][0].startswith("echo $GREETING")
    created_by = [h["created_by"] for h in config["history"]]
    assert "ARG VERSION=1.0" in created_by and "WORKDIR /srv/app" in created_by
    assert all(h.get("empty_layer") for h in config["history"] if h["created_by"].startswith(("ENV", "LABEL", "CMD")))
    assert len(config["rootfs"]["diff_ids"]) == len([h for h in config["history"] if not h.get("empty_layer")])
    out = _run("every:1", data_root=data_root, state_root=state_root)
    assert out.strip() == "hello 1.0 from /srv/app/sub as 1 with PLAIN=value with spaces"


@root
def test_run_shell_and_exec_forms_see_build_args_and_remove_files(data_root: str, state_root: str, tmp_path) -> None:
    dockerfile = _unique("""\
FROM busybox
ARG WHO
ENV FIXED=env-wins
ARG FIXED=arg-loses
RUN echo "shell form: $WHO $FIXED" | tee /shell && mkdir -p /gone/sub && touch /gone/sub/f
RUN ["/bin/sh", "-c", "echo exec form: $WHO > /exec; rm /etc/group; rm -r /gone"]
SHELL ["/bin/sh", "-ec"]
RUN test "$(cat /shell)" = "shell form: tester env-wins"
WORKDIR /tmp
USER daemon
RUN echo "$(id -un) in $(pwd)" > who
""")
    result = _ok(
        _build(
            _context(tmp_path, dockerfile),
            "--build-arg",
            "WHO=tester",
            "-t",
            "runs:1",
            data_root=data_root,
            state_root=state_root,
        )
    )
    assert "shell form: tester env-wins" in result.stdout  # RUN's output streamed with the steps
    assert "STEP 6/12: RUN" in result.stdout
    out = _run(
        "runs:1",
        "sh",
        "-c",
        "cat /shell /exec /tmp/who; ls /etc/group /gone 2>&1; env | grep -c WHO; true",
        data_root=data_root,
        state_root=state_root,
    )
    assert out.splitlines()[:3] == ["shell form: tester env-wins", "exec form: tester", "daemon in /tmp"]
    assert "No such file" in out and out.splitlines()[-1] == "0"  # build args are not kept in the image
    store = image_store(data_root)
    image = store.get("runs:1")
    layers = []
    for descriptor in image.layers:
        with tarfile.open(store.blob_path(descriptor["digest"])) as layer:
            layers.append(layer.getnames())
    assert sorted(["exec", "etc", "etc/.wh.group", ".wh.gone"]) in [
        sorted(names) for names in layers
    ]  # the exec-form RUN's
    assert len(layers) == 4  # busybox, the three RUNs that changed something (the test changed nothing: no layer)


@root
def test_copy_and_add_from_the_context(data_root: str, state_root: str, tmp_path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        data = b"from the archive\n"
        info = tarfile.TarInfo("pkg/inside.txt")
        info.size, info.uid, info.gid, info.mode = len(data), 7, 7, 0o640
        tar.addfile(info, io.BytesIO(data))
    files = {
        "a.txt": "a\n",
        "b.txt": "b\n",
        "c.md": "c\n",
        "secret.key": "no\n",
        "secret-ok": "yes\n",
        "dir/x": "x\n",
        "dir/sub/y": "y\n",
        "dir/skip.log": "skip\n",
        "pkg.tar.gz": archive.getvalue(),
        "plain.gz": "not an archive\n",
        ".dockerignore": "secret*\n!secret-ok\n**/*.log\n",
    }
    dockerfile = _unique("""\
FROM busybox
WORKDIR /w
COPY *.txt ./
COPY --chown=daemon:bin --chmod=640 c.md /owned/
COPY secret-ok dir /all/
COPY dir /tree
COPY a.txt /renamed.txt
ADD pkg.tar.gz /unpacked
ADD plain.gz /plain/
""")
    _ok(_build(_context(tmp_path, dockerfile, files), "-t", "copies:1", data_root=data_root, state_root=state_root))
    out = _run(
        "copies:1",
        "sh",
        "-c",
        "ls /w; echo --; stat -c '%n %u %g %a' /owned/c.md /unpacked/pkg/inside.txt; echo --;"
        "find /all /tree | sort; cat /renamed.txt /plain/plain.gz; ls /all/secret.key 2>&1; true",
        data_root=data_root,
        state_root=state_root,
    )
    listing, owners, tree = out.split("--\n")
    assert listing.split() == ["a.txt", "b.txt"]
    assert owners.splitlines() == ["/owned/c.md 1 2 640", "/unpacked/pkg/inside.txt 7 7 640"]
    found = tree.split()
    assert "/all/secret-ok" in found and "/all/x" in found and "/all/sub/y" in found and "/tree/sub/y" in found
    assert "/tree/skip.log" not in found and "/all/skip.log" not in found  # .dockerignore
    assert (
        "a" in found and "not" in found and "No" in found
    )  # renamed.txt, plain.gz copied as it is; secret.key ignored


@root
def test_multi_stage_builds_copy_between_stages_and_skip_unneeded_ones(
    data_root: str, state_root: str, tmp_path
) -> None:
    dockerfile = _unique("""\
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact && echo second > /out/other
FROM busybox AS unused
RUN exit 1
FROM builder AS extended
RUN echo extended >> /out/artifact
FROM scratch
COPY --from=busybox /bin/busybox /bin/sh
COPY --from=extended /out/artifact /artifact
COPY --from=0 /out/other /other
CMD ["/bin/sh", "-c", "cat /artifact /other"]
""")
    context = _context(tmp_path, dockerfile)
    result = _ok(_build(context, "-t", "stages:1", data_root=data_root, state_root=state_root))
    assert "RUN exit 1" not in result.stdout  # a stage the target does not need is not built
    assert _run("stages:1", data_root=data_root, state_root=state_root).splitlines() == ["built", "extended", "second"]
    config = image_store(data_root).get("stages:1").config
    assert len(config["rootfs"]["diff_ids"]) == 3  # scratch: only the three COPY layers
    _ok(_build(context, "--target", "builder", "-t", "stages:builder", data_root=data_root, state_root=state_root))
    assert _run("stages:builder", "cat", "/out/artifact", data_root=data_root, state_root=state_root) == "built\n"
    failed = _build(context, "--target", "unused", data_root=data_root, state_root=state_root)
    assert (
        failed.returncode == 125
        and failed.stderr.strip() == "minictr: error: Dockerfile:5: RUN: the command returned a non-zero code: 1"
    )  # the label is line 2


@root
def test_the_cache_skips_unchanged_steps_and_reruns_from_a_changed_file(
    data_root: str, state_root: str, tmp_path
) -> None:
    dockerfile = _unique("""\
FROM busybox
COPY a.txt /
RUN cat /proc/sys/kernel/random/uuid > /first
COPY b.txt /
ARG MODE=one
RUN cat /proc/sys/kernel/random/uuid > /second
""")
    context = _context(tmp_path, dockerfile, {"a.txt": "a\n", "b.txt": "b\n"})

    def build(*args: str) -> tuple[list[str], str]:
        result = _ok(_build(context, "-t", "cached:1", *args, data_root=data_root, state_root=state_root))
        marks = _run("cached:1", "cat", "/first", "/second", data_root=data_root, state_root=state_root).split()
        return marks, result.stdout

    first, _ = build()
    again, output = build()
    assert again == first and output.count(" CACHED") == 4  # every layer step, no RUN ran
    (tmp_path / "ctx" / "b.txt").write_text("b changed\n")
    changed, output = build()
    assert changed[0] == first[0] and changed[1] != first[1]  # from the changed COPY on
    assert "COPY a.txt / CACHED" in output and "COPY b.txt / CACHED" not in output
    with_arg, _ = build("--build-arg", "MODE=two")
    assert with_arg[0] == first[0] and with_arg[1] != changed[1]  # a build argument in effect is part of the key
    uncached, output = build("--no-cache")
    assert " CACHED" not in output and uncached[0] != first[0]


@root
def test_a_fully_cached_rebuild_gives_the_same_image(data_root: str, state_root: str, tmp_path) -> None:
    context = _context(tmp_path, _unique('FROM busybox\nRUN echo x > /x\nENV A=1\nCMD ["cat", "/x"]\n'))
    first = _ok(_build(context, "-q", data_root=data_root, state_root=state_root)).stdout.strip()
    second = _ok(_build(context, "-q", data_root=data_root, state_root=state_root)).stdout.strip()
    assert first == second and first.startswith("sha256:")


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM busybox\nCOPY ../outside /\n", "Dockerfile:2: COPY: ../outside is outside the build context"),
        ("FROM busybox\nCOPY link /\n", "Dockerfile:2: COPY: link is outside the build context (through a symlink)"),
        (
            "FROM busybox\n\nCOPY missing.txt /\n",
            "Dockerfile:3: COPY: missing.txt: no such file or directory in the build context",
        ),
        ("FROM busybox\nRUN exit 3\n", "Dockerfile:2: RUN: the command returned a non-zero code: 3"),
        ('FROM busybox\nRUN ["no-such-program"]\n', "Dockerfile:2: RUN: "),
        (
            "FROM busybox\nCOPY a b c\n",
            "Dockerfile:2: COPY: with more than one source the destination must be a directory and end with /",
        ),
        (
            "FROM busybox\nCOPY --from=127.0.0.1:1/nowhere:1 /x /\n",
            "Dockerfile:2: COPY: --from=127.0.0.1:1/nowhere:1: ",
        ),
        (
            "FROM busybox\nRUN --mount=type=cache,target=/x true\n",
            "Dockerfile:2: RUN: --mount: RUN options other than --network are not supported",
        ),
        ("FROM busybox\nBOGUS\n", "Dockerfile:2: unknown instruction: BOGUS"),
    ],
)
@root
def test_build_errors_are_one_line_naming_the_dockerfile_line(
    data_root: str, state_root: str, tmp_path, dockerfile: str, message: str
) -> None:
    context = _context(tmp_path, dockerfile, {"a": "", "b": ""})
    os.symlink("/etc/passwd", os.path.join(context, "link"))
    (tmp_path / "outside").write_text("no\n")
    result = _build(context, data_root=data_root, state_root=state_root)
    assert result.returncode == 125
    lines = result.stderr.strip().splitlines()  # (a pull says first that the image is not in the store)
    assert [line for line in lines if "error" in line] == lines[-1:], result.stderr
    assert lines[-1].startswith(f"minictr: error: {message}"), result.stderr
    builds = os.path.join(state_root, "builds")
    assert not os.path.isdir(builds) or os.listdir(builds) == []  # the work directory went with the build


@root
def test_run_steps_use_the_default_bridge_network(data_root: str, state_root: str, tmp_path) -> None:
    dockerfile = (
        "FROM busybox\nRUN ip -o -4 addr show eth0 > /addr\nRUN --network=none ip -o link | grep -c . > /links\n"
    )
    context = _context(tmp_path, _unique(dockerfile))
    result = run_cli("build", "-t", "bridged:1", context, data_root=data_root, state_root=state_root, timeout=180)
    _ok(result)
    address = _run("bridged:1", "cat", "/addr", data_root=data_root, state_root=state_root)
    assert " inet " in address and " inet 127." not in address  # a leased address (which pool depends on the host)
    assert _run("bridged:1", "cat", "/links", data_root=data_root, state_root=state_root) == "1\n"  # lo alone


@root
@pytest.mark.skipif(bool(rs.have_peers()), reason=rs.have_peers() or "ok")
def test_the_image_goes_through_the_registry_and_skopeo(
    registry: rs.LocalRegistry, data_root: str, state_root: str, tmp_path
) -> None:
    context = _context(tmp_path, _unique('FROM busybox\nRUN echo shipped > /shipped\nCMD ["cat", "/shipped"]\n'))
    target = f"{registry.host}/built/app:1"
    _ok(_build(context, "-t", target, "-t", "shipped", data_root=data_root, state_root=state_root))
    local = subprocess.run(
        ["skopeo", "inspect", f"oci:{data_root}/images:{target}"], capture_output=True, text=True, check=True
    )
    assert len(json.loads(local.stdout)["Layers"]) == 2
    stat = subprocess.run(
        ["umoci", "stat", "--image", f"{data_root}/images:shipped"], capture_output=True, text=True, check=True
    )
    assert "RUN /bin/sh -c echo shipped > /shipped" in stat.stdout
    _ok(run_cli("push", target, data_root=data_root, state_root=state_root))
    remote = subprocess.run(
        ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{target}"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(remote.stdout)
    assert (
        config["config"]["Cmd"] == ["cat", "/shipped"]
        and config["history"][-1]["created_by"] == 'CMD ["cat", "/shipped"]'
    )
    elsewhere = str(tmp_path / "elsewhere")
    _ok(run_cli("pull", target, data_root=elsewhere, state_root=state_root))
    assert _run(target, data_root=elsewhere, state_root=state_root) == "shipped\n"


@root
def test_add_fetches_a_url_and_checks_its_checksum(data_root: str, state_root: str, tmp_path) -> None:
    import functools
    import hashlib
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_bytes(b"from the server\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.txt"
        good = "sha256:" + hashlib.sha256(b"from the server\n").hexdigest()
        context = _context(tmp_path, _unique(f"FROM busybox\nADD --checksum={good} {url} /fetched/\n"))
        _ok(_build(context, "-t", "fetched:1", data_root=data_root, state_root=state_root))
        out = _run(
            "fetched:1", "stat", "-c", "%a %n", "/fetched/remote.txt", data_root=data_root, state_root=state_root
        )
        assert out == "600 /fetched/remote.txt\n"
        assert (
            _run("fetched:1", "cat", "/fetched/remote.txt", data_root=data_root, state_root=state_root)
            == "from the server\n"
        )
        bad = _context(tmp_path / "bad", f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url} /x\n")
        result = _build(bad, data_root=data_root, state_root=state_root)
        assert (
            result.returncode == 125 and "Dockerfile:2: ADD: " in result.stderr and "checksum mismatch" in result.stderr
        )
    finally:
        server.shutdown()


@root
def test_the_python_api_passes_steps_and_run_output_to_progress(data_root: str, state_root: str, tmp_path) -> None:
    from minictr.engine.build import BuildOptions, build

    lines: list[str] = []
    context = _context(tmp_path, _unique("FROM busybox\nRUN echo from the step; echo to stderr >&2\n"))
    image = build(
        context,
        BuildOptions(tags=["api:1"], network="none"),
        data_root=data_root,
        state_root=state_root,
        progress=lines.append,
    )
    assert lines[:3] == ["STEP 1/3: FROM busybox", lines[1], "STEP 3/3: RUN echo from the step; echo to stderr >&2"]
    assert lines[3:5] == ["from the step", "to stderr"] and lines[-1] == "Successfully tagged api:1"
    assert image_store(data_root).get("api:1").id == image.id


@root
def test_import_makes_an_image_of_a_directory_or_a_tarball(data_root: str, state_root: str, tmp_path) -> None:
    store = image_store(data_root)
    rootfs = unpacked_rootfs(store, store.get("busybox"))
    tree = tmp_path / "tree"
    subprocess.run(["cp", "-a", rootfs, str(tree)], check=True)
    (tree / "marker").write_text("imported\n")
    archive = tmp_path / "tree.tar.gz"
    subprocess.run(["tar", "-C", str(tree), "-czf", str(archive), "."], check=True)
    for source, name in ((str(tree), "imported:dir"), (str(archive), "imported:tar")):
        _ok(
            run_cli(
                "import",
                "-c",
                "WORKDIR /tmp",
                "-c",
                'CMD ["sh", "-c", "pwd; cat /marker"]',
                source,
                name,
                data_root=data_root,
                state_root=state_root,
            )
        )
        assert _run(name, data_root=data_root, state_root=state_root) == "/tmp\nimported\n"
    refused = run_cli("import", "-c", "RUN true", str(tree), "imported:bad", data_root=data_root, state_root=state_root)
    assert refused.returncode == 125 and "only config instructions" in refused.stderr


DEFAULT_DATA_ROOT = "/var/lib/minictr"


@root
@pytest.mark.skipif(not os.path.isdir(os.path.join(DEFAULT_DATA_ROOT, "images")), reason="no default data root")
def test_a_dockerfile_from_the_debian_image(data_root: str, state_root: str, tmp_path) -> None:
    listed = run_cli("image", "inspect", "minictr/debian:bookworm", data_root=DEFAULT_DATA_ROOT, state_root=state_root)
    if listed.returncode != 0:
        pytest.skip("no minictr/debian:bookworm (scripts/setup.sh makes it where debootstrap is installed)")
    archive = str(tmp_path / "debian.tar")
    _ok(run_cli("save", "-o", archive, "minictr/debian:bookworm", data_root=DEFAULT_DATA_ROOT, state_root=state_root))
    _ok(run_cli("load", "-i", archive, data_root=data_root, state_root=state_root))
    context = _context(
        tmp_path,
        _unique(
            "FROM minictr/debian:bookworm\nRUN useradd -m app && echo made > /home/app/f\n"
            'USER app\nWORKDIR /home/app\nCMD ["bash", "-c", "id -un; cat f; dpkg -s bash | head -2"]\n'
        ),
    )
    _ok(_build(context, "-t", "on-debian:1", data_root=data_root, state_root=state_root))
    out = _run("on-debian:1", data_root=data_root, state_root=state_root).splitlines()
    assert out[:3] == ["app", "made", "Package: bash"]


@root
def test_errors_name_the_dockerfile_given_with_f(data_root: str, state_root: str, tmp_path) -> None:
    context = _context(tmp_path, "")
    (tmp_path / "app.dockerfile").write_text("FROM busybox\nCOPY nothing-here /\n")
    result = _build(context, "-f", str(tmp_path / "app.dockerfile"), data_root=data_root, state_root=state_root)
    assert result.returncode == 125
    assert (
        result.stderr
        == "minictr: error: app.dockerfile:2: COPY: nothing-here: no such file or directory in the build context\n"
    )


@root
def test_a_build_killed_mid_run_is_cleaned_up_by_the_next(data_root: str, state_root: str, tmp_path) -> None:
    import signal
    import time

    context = _context(tmp_path, _unique("FROM busybox\nRUN echo started; sleep 60\n"))
    command = cli_command("build", "--network", "none", context, data_root=data_root, state_root=state_root)
    build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in build.stdout:  # type: ignore[union-attr]
            if line.strip() == "started":
                break
        left = os.listdir(os.path.join(state_root, "builds"))
        assert left == [f"{build.pid}-{_start_time(build.pid)}"]
    finally:
        build.send_signal(signal.SIGKILL)
        build.wait()
    containers = os.path.join(state_root, "containers")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the RUN's container dies with its parent
        from minictr.engine.container_dir import remove_stale

        if not remove_stale(containers) and not os.listdir(containers):
            break
        time.sleep(0.1)
    assert os.listdir(containers) == []
    _ok(_build(_context(tmp_path / "next", "FROM busybox\nENV A=1\n"), data_root=data_root, state_root=state_root))
    assert os.listdir(os.path.join(state_root, "builds")) == []


def _start_time(pid: int) -> str:
    from minictr.engine.container_dir import start_time

    return start_time(pid)
