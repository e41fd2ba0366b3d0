"""The process model: containers come from fresh interpreters, failures come back as exceptions."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import threading

import pytest

from minictr.errors import ContainerError, ExecError
from minictr.runtime import chroot
from minictr.runtime.process.channel import Channel, Message, ProtocolError, to_json
from minictr.runtime.process.parent import call, spawn
from minictr.runtime.spec import default_spec

pytestmark = pytest.mark.root


def _busy_threads(count: int) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return stop, threads


def test_containers_start_from_a_parent_running_8_threads(rootfs: str) -> None:
    stop, _ = _busy_threads(8)
    try:
        assert threading.active_count() >= 9
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda i: chroot.run(rootfs, ["sh", "-c", f"echo {i}"]), range(8)))
        assert [r.stdout.strip() for r in results] == [str(i) for i in range(8)]
        assert all(r.exit_code == 0 for r in results)
    finally:
        stop.set()


def test_child_is_a_fresh_single_threaded_process(rootfs: str) -> None:
    stop, _ = _busy_threads(8)
    try:

        def inside() -> dict:
            return {"pid": os.getpid(), "threads": len(os.listdir("/proc/self/task"))}

        seen = chroot.call(rootfs, inside, mount_proc=True)
    finally:
        stop.set()
    assert seen["pid"] != os.getpid()
    assert seen["threads"] == 1


def test_setup_failure_carries_the_childs_message(tmp_path) -> None:
    missing = str(tmp_path / "no-such-root")
    with pytest.raises(ContainerError) as caught:
        spawn(default_spec(missing, ["true"]))
    assert caught.value.step == "chroot"
    assert str(caught.value) == f"chroot({missing!r}): No such file or directory"


def test_mount_failure_names_the_mount(rootfs: str) -> None:
    spec = default_spec(rootfs, ["true"], mounts=[{"destination": "/proc", "type": "nosuchfs", "source": "x"}])
    with pytest.raises(ContainerError) as caught:
        spawn(spec)
    assert caught.value.step == "mount"
    assert str(caught.value).startswith("mounting /proc: mount('x', ")
    assert "'nosuchfs'): No such device" in str(caught.value)


def test_exec_not_found_and_not_executable(rootfs: str) -> None:
    with pytest.raises(ExecError) as missing:
        chroot.run(rootfs, ["no-such-program"])
    assert str(missing.value) == 'exec: "no-such-program": executable file not found in $PATH'
    assert missing.value.exit_code == 127
    with pytest.raises(ExecError) as denied:
        chroot.run(rootfs, ["/etc/passwd"])
    assert denied.value.exit_code == 126
    assert "permission denied" in str(denied.value)


def test_exit_status_and_signals_are_reported_the_shell_way(rootfs: str) -> None:
    assert chroot.run(rootfs, ["sh", "-c", "exit 7"]).exit_code == 7
    assert chroot.run(rootfs, ["sh", "-c", "kill -TERM $$"]).exit_code == 128 + 15


def test_call_returns_value_and_reports_exceptions_with_line(rootfs: str) -> None:
    def listing(path: str) -> list:
        return sorted(os.listdir(path))

    assert chroot.call(rootfs, listing, "/etc") == ["group", "passwd"]

    def broken() -> None:
        x = 1
        raise ValueError(f"bad {x}")

    with pytest.raises(ContainerError) as caught:
        chroot.call(rootfs, broken)
    assert str(caught.value) == "broken() line 3 raised ValueError: bad 1"


def test_spec_environment_is_all_the_program_sees(rootfs: str) -> None:
    os.environ["MINICTR_TEST_SECRET"] = "leak"
    try:
        result = chroot.run(rootfs, ["env"], env=["PATH=/bin:/usr/bin", "ONLY=this"])
    finally:
        del os.environ["MINICTR_TEST_SECRET"]
    # and HOME, which the runtime adds when the spec lacks it (the user's, from the image's /etc/passwd), as runc does
    assert sorted(result.stdout.split()) == ["HOME=/root", "ONLY=this", "PATH=/bin:/usr/bin"]


def test_a_called_function_may_import_what_lessons_use(rootfs: str) -> None:
    def imports() -> list[str]:
        import json
        import signal
        import socket

        return [json.dumps([1]), signal.Signals(15).name, socket.AddressFamily(1).name]

    assert call(default_spec(rootfs, ["x"]), imports) == ["[1]", "SIGTERM", "AF_UNIX"]


def test_call_with_plain_spec(rootfs: str) -> None:
    def cwd() -> str:
        return os.getcwd()

    assert call(default_spec(rootfs, ["x"], cwd="/etc"), cwd) == "/etc"


def test_out_of_order_message_is_a_protocol_error() -> None:
    ours, theirs = Channel.pair()
    other = Channel(theirs, child=True)
    try:
        other.send(Message.START)
        with pytest.raises(ProtocolError) as caught:
            ours.expect(Message.READY, timeout=5)
        assert (caught.value.expected, caught.value.received) == ("ready", "start")
        with pytest.raises(ProtocolError, match=r"nothing within 0\.1 s"):
            ours.expect(Message.READY, timeout=0.1)
        other.close()
        with pytest.raises(ProtocolError, match="end of file"):
            ours.expect(Message.READY, timeout=5)
    finally:
        ours.close()
        if theirs.fileno() != -1:
            theirs.close()


def test_child_messages_are_json_the_parent_checks() -> None:
    ours, theirs = Channel.pair()
    other = Channel(theirs, child=True)
    try:
        note = 'a "quoted"\\path\n\x00 é \udcff'  # a control character, non-ASCII, an undecodable file name's byte
        other.send(Message.READY, pid=7, note=note, nested={"x": [1, 2.5, None, True]})
        message = ours.expect(Message.READY, timeout=5)
        assert message == {"type": "ready", "pid": 7, "note": note, "nested": {"x": [1, 2.5, None, True]}}
        theirs.send(b"\x80not json")  # what a child taken over might write: refused, never unmarshalled
        with pytest.raises(ProtocolError, match="a JSON message"):
            ours.receive(timeout=5)
        theirs.send(b"[1, 2]")
        with pytest.raises(ProtocolError, match="a message with a type"):
            ours.receive(timeout=5)
    finally:
        ours.close()
        theirs.close()


def test_the_child_receives_what_json_carries() -> None:
    ours, theirs = Channel.pair()
    child = Channel(theirs, child=True)
    try:
        ours.send(Message.CONFIG, spec={"args": ("sh", "-c"), "sysctl": {1: "x"}})
        assert child.receive(timeout=5) == {"type": "config", "spec": {"args": ["sh", "-c"], "sysctl": {"1": "x"}}}
        with pytest.raises(TypeError):
            ours.send(Message.CONFIG, spec={"bytes": b"not JSON"})
    finally:
        ours.close()
        theirs.close()


def test_to_json_writes_what_json_reads() -> None:
    values = [None, True, 0, -3, 10**30, 1.5, float("inf"), '\u2713\x1f"\\', [1, (2, 3)], {"k": {1: 2, None: 3}}]
    for value in values:
        assert json.loads(to_json(value).encode()) == json.loads(json.dumps(value))
    with pytest.raises(TypeError):
        to_json({"x": object()})


def test_socketpair_is_seqpacket() -> None:
    ours, theirs = Channel.pair()
    try:
        assert ours.sock.type == socket.SOCK_SEQPACKET
    finally:
        ours.close()
        theirs.close()
