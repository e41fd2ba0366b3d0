"""State files: one atomic writer, and readers that take a torn file for the crash it is."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from minictr.files import PARTIAL_PREFIX, locked, read_json, remove_partials, write_atomic, write_json


def test_a_reader_sees_the_old_or_the_new_content_and_no_partial_file_stays(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "state.json"
    write_json(str(target), {"n": 1})
    write_atomic(str(target), b'{"n": 2}', mode=0o600)
    assert read_json(str(target)) == {"n": 2} and target.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path) == ["state.json"]


def test_torn_empty_or_foreign_files_read_as_nothing(tmp_path: pathlib.Path) -> None:
    for name, text in (("empty", ""), ("torn", '{"container": "ab'), ("list", "[1]"), ("binary", "\udcff")):
        (tmp_path / name).write_bytes(text.encode(errors="surrogateescape"))
        assert read_json(str(tmp_path / name)) == {}, name
    assert read_json(str(tmp_path / "missing")) == {}


def test_partial_files_of_dead_writers_are_swept_and_a_live_writers_kept(tmp_path: pathlib.Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"{PARTIAL_PREFIX}{dead.pid}-0a0b0c0d").write_text('{"half')
    (tmp_path / f"{PARTIAL_PREFIX}{os.getpid()}-01020304").write_text('{"being written')
    (tmp_path / "10.88.0.2.json").write_text("{}")
    assert remove_partials(str(tmp_path)) == [str(tmp_path / f"{PARTIAL_PREFIX}{dead.pid}-0a0b0c0d")]
    assert sorted(os.listdir(tmp_path)) == [f"{PARTIAL_PREFIX}{os.getpid()}-01020304", "10.88.0.2.json"]


@pytest.mark.parametrize("this_process", [True, False], ids=["lockf", "flock"])
def test_a_child_forked_while_the_lock_is_held_keeps_it_only_with_flock(tmp_path: pathlib.Path,
                                                                        this_process: bool) -> None:  # fmt: skip
    """What update_state relies on: a child forked under a ``this_process`` lock (a container's first process,
    waiting for ``start``) does not hold it once the block ends; under a flock it does.
    """
    path = str(tmp_path / "state.lock")
    hold, release = os.pipe()
    with locked(path, this_process=this_process):
        child = os.fork()
        if child == 0:  # keeps every inherited descriptor until told to go
            os.close(release)
            os.read(hold, 1)
            os._exit(0)
    os.close(hold)
    try:
        probe = f"from minictr.files import locked\nwith locked({path!r}, timeout=1, this_process={this_process}): pass"
        other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert (other.returncode == 0) is this_process, other.stderr
        assert this_process or "is held by another process" in other.stderr
    finally:
        os.close(release)
        os.waitpid(child, 0)
