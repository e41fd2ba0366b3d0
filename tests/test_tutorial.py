"""The notebooks' helper package: its public surface, its layout, and every reference solution passing its check."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from minictr import tutorial

PACKAGE = pathlib.Path(tutorial.__file__).parent
NOTEBOOKS = sorted((PACKAGE.parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def test_every_name_the_notebooks_use_is_exported() -> None:
    used = set()
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            used |= set(re.findall(r"\btutorial\.([A-Za-z_]\w*)", "".join(cell["source"])))
    assert used, "the notebooks use the tutorial package"
    assert sorted(used - set(tutorial.__all__)) == []
    assert all(hasattr(tutorial, name) for name in tutorial.__all__)


def test_modules_stay_small() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 400} == {}


def test_importing_it_stays_light() -> None:
    code = "import sys, minictr.tutorial; print(sorted(m for m in ('IPython', 'ipywidgets') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_exercise_has_a_solution(capsys: pytest.CaptureFixture[str]) -> None:
    for name in (
        "my_namespaces",
        "enter_root",
        "pivot_into",
        "new_uts",
        "init",
        "new_user",
        "drop_bounding",
        "next_address",
        "container_diff",
    ):
        tutorial.solution(name)
        assert capsys.readouterr().out.startswith(f"def {name}(")
    with pytest.raises(ValueError, match="no exercise named"):
        tutorial.solution("nothing")


def test_reference_solutions_pass_their_checks() -> None:
    assert tutorial.judge_my_namespaces(tutorial.reference("my_namespaces")).ok
    assert tutorial.judge_next_address(tutorial.reference("next_address")).ok


@pytest.fixture
def small_root(tmp_path: pathlib.Path) -> str:
    """A tiny root filesystem: enough to chroot or pivot into (the child needs nothing from it)."""
    root = tmp_path / "rootfs"
    for name in ("etc", "proc", "tmp"):
        (root / name).mkdir(parents=True)
    (root / "etc" / "hostname").write_text("small\n")
    return str(root)


@pytest.mark.root
def test_root_reference_solutions_pass_their_checks(small_root: str) -> None:
    assert tutorial.judge_enter_root(tutorial.reference("enter_root"), small_root).ok
    assert tutorial.judge_pivot_into(tutorial.reference("pivot_into"), small_root).ok
    assert tutorial.judge_new_uts(tutorial.reference("new_uts")).ok
    assert tutorial.judge_container_diff(tutorial.reference("container_diff"), small_root).ok


@pytest.mark.root
def test_a_diff_that_lists_whiteouts_as_changes_is_explained(small_root: str) -> None:
    def container_diff(upper: str) -> tuple[list[str], list[str]]:
        found = ["/" + os.path.relpath(os.path.join(d, f), upper) for d, _, files in os.walk(upper) for f in files]
        return sorted(found), []

    verdict = tutorial.judge_container_diff(container_diff, small_root)
    assert not verdict.ok and "are whiteouts (character devices 0/0)" in verdict.message


@pytest.mark.root
def test_chroot_without_chdir_is_caught(small_root: str) -> None:
    def enter_root(new_root: str) -> None:
        os.chroot(new_root)  # and no chdir: the classic mistake

    verdict = tutorial.judge_enter_root(enter_root, small_root)
    assert not verdict.ok
    assert "the working directory is still outside it" in verdict.message


@pytest.mark.root
def test_the_network_lab_leaves_no_mount_of_run_netns_on_a_host_that_had_none() -> None:
    """Notebook 06's lab names namespaces, which mounts /run/netns; it must take that away again.

    Run where /run is a fresh tmpfs (a private mount namespace, as on a fresh
    machine with no /run/netns), so the host's own /run/netns is never touched.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    count = "grep -c ' /run/netns ' /proc/self/mountinfo"  # the host's own, hidden under the tmpfs, counts too
    script = (
        f"mount -t tmpfs lab-run /run && {count}; "
        f"{sys.executable} -m minictr.tutorial.netlab > /run/report.json && {count}; ls -a /run; cat /run/report.json"
    )
    done = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    before, after, *listing = done.stdout.splitlines()
    assert before == after and "netns" not in listing, done.stdout + done.stderr
    report = json.loads(listing[-1])
    assert report["left"] == [] and report["publish"]["probe"] == {
        "nb06-world → 198.51.100.1:8080, before the rule": "no answer (Connection refused)",
        "nb06-world → 198.51.100.1:8080, after it": "answered, saw the client as 198.51.100.2",
    }
    assert report["address"]["probe"]["nb06-a → 10.200.0.3:80 (nb06-b)"].startswith("no answer")  # no bridge yet
    assert report["nat"]["probe"]["nb06-a → 198.51.100.2:80 (nb06-world)"] == "answered, saw the client as 198.51.100.1"
    # the picture joins the ends the kernel reported as peers: three veth cables, the bridge's two ports
    svg = tutorial.svg_network_lab(report["state"])
    assert svg.count('stroke="#c0392b"') == 3 and svg.count('stroke="#4a6fa5" stroke-width="3"') == 2
    assert "nb06-br UP (bridge) 10.200.0.1/24" in tutorial.describe_lab(report["state"])


def test_show_source_slices_what_carries_the_idea() -> None:
    from minictr.tutorial.common import source_slice

    lines = [
        "def f(a: int) -> int:",
        '    """Add.',
        "",
        '    More."""',
        "    b = a + 1",
        "    c = b * 2",
        "    if c:",
        "        return c",
        "    return 0",
    ]
    assert source_slice(lines) == lines
    assert source_slice(lines, docstring=False) == [lines[0], *lines[4:]]
    assert source_slice(lines, docstring=False, start="c = b", stop="return c") == [
        lines[0],
        "    ...",
        "    c = b * 2",
        "    if c:",
        "        return c",
        "    ...",
    ]
    with pytest.raises(ValueError, match="no line containing 'nowhere'"):
        source_slice(lines, stop="nowhere")
    shown = tutorial.show_source(tutorial.show_source, docstring=False, stop="import inspect").data
    assert shown.startswith("```python\ndef show_source(") and '"""' not in shown and shown.endswith("    ...\n```")
