"""The parent <-> child protocol: one list of messages over a SEQPACKET socketpair.

A container is started by a fresh interpreter (running ``minictr.runtime.process.child``)
that does the kernel work; its parent (the CLI, a notebook kernel, a test)
never changes itself. They talk like this::

    parent (any process, may be multithreaded)     child (fresh, single-threaded)
      |                                                |
      |-- CONFIG {spec, overlay, options} ------------>|
      |                                                |  unshare(user)          (if asked)
      |<-------------------------- USERNS_READY {pid} -|
      |   writes /proc/<pid>/uid_map, gid_map          |
      |-- MAPPINGS_WRITTEN --------------------------->|  unshare(the others); fork, when
      |<------------------------------ INIT_PID {pid} -|  pid/time are new: PID 1 goes on
      |<--------------------------------- JOIN_CGROUP -|  (when the container has a cgroup)
      |   writes the pid to cgroup.procs               |
      |-- CGROUP_JOINED ------------------------------>|  unshare(cgroup): its root is that cgroup
      |                                                |  set-up: hostname, mounts, /dev,
      |<---------------------------- HOOKS {pid} ------|  (only with OCI hooks: before pivot_root)
      |   runs prestart/createRuntime hooks            |
      |-- HOOKS_DONE {state} ------------------------->|  runs createContainer hooks inside
      |                                                |  pivot_root (or chroot), user
      |<--------------------------------------- READY -|  ... or ERROR {step, message, errno}
      |   (the container now exists, waiting; with a   |  (+ a netlink socket of its new
      |   bridge network the parent wires it now)      |   network namespace, if asked)
      |-- START -------------------------------------->|
      |                                                |  execve(process.args)
      |<------------- end of file: the program runs ---|  ... or ERROR {step: "exec", ...}

``minictr-oci create`` leaves instead of sending START: the child closes
its end after READY and waits on the container's exec fifo until
``minictr-oci start`` opens it (see :mod:`minictr.runtime.process.handoff`).

For lessons and exercise checks the child can run a Python function inside the
container instead of exec-ing a program (the interpreter survives chroot; it
just cannot import anything new); it then answers START with RESULT {value}.

The child's end of the socket is close-on-exec, so a successful ``execve``
closes it: end of file after START means the user's program is running. Any
message out of order is a :class:`ProtocolError` naming what was expected,
never a hang: every wait has a timeout.

SOCK_SEQPACKET keeps message boundaries (one ``send`` is one ``recv``) and
reports end of file when the other side is gone, which is all we need.

Each direction has its own encoding, chosen for the child's start-up (its
imports are most of a container's start) and for whom to trust:

- parent -> child: :mod:`marshal`, the interpreter's own format, built in
  and free to import; both ends run the same interpreter (the child is a
  copy of the parent's), and the child trusts its parent with everything.
  What it carries went through JSON in the parent first, so the child gets
  what JSON gave it before (lists, string keys).
- child -> parent: JSON, which the parent decodes with :mod:`json`. The
  parent — a CLI or a notebook kernel on the host — never unmarshals what a
  process about to enter a container sends. The child writes its few flat
  messages with :func:`to_json` and spares itself ``json`` (and ``re``,
  which ``json`` imports and compiles patterns with).

The sockets are :mod:`_socket`'s, the type :mod:`socket` itself wraps: the
``socket`` module's import (``selectors``, ``collections``, four enums) is
milliseconds the child has better use for.
"""

from __future__ import annotations

import _socket
import marshal
import select
import struct  # not array: array's import registers it with collections.abc, which loads collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import ContainerError, ExecError, MinictrError

#: Large enough for any config.json we send in one datagram.
MAX_MESSAGE = 1 << 20


class Message:
    """Every message either side may send: the protocol's one list of names.

    Plain strings, not an :class:`enum.Enum`: ``enum`` (with ``functools`` and
    ``collections`` under it) is milliseconds of every container's start.
    """

    CONFIG = "config"  # parent -> child: {"spec": OCI config, "overlay": plan or None, "options", "call"}
    USERNS_READY = "userns-ready"  # child -> parent: {"pid"}: I am in a new user namespace, map me
    MAPPINGS_WRITTEN = "mappings-written"  # parent -> child: uid_map and gid_map are written
    INIT_PID = "init-pid"  # child -> parent: {"pid"}: the container's PID 1, as the host numbers it
    JOIN_CGROUP = "join-cgroup"  # child -> parent: put me (PID 1 or the only process) in my cgroup
    CGROUP_JOINED = "cgroup-joined"  # parent -> child: done; unshare the cgroup namespace now
    READY = "ready"  # child -> parent: set-up done, waiting for START {"pid", "root", "note"}
    START = "start"  # parent -> child: exec the program now
    ERROR = "error"  # child -> parent: {"step", "message", "errno"}
    RESULT = "result"  # child -> parent: {"value"}, when it ran a Python function instead of exec
    HOOKS = "hooks"  # child -> parent: {"pid"}: namespaces made, root not entered: run the runtime's hooks
    HOOKS_DONE = "hooks-done"  # parent -> child: {"state"}: done; the OCI state for the container's own hooks


class ProtocolError(MinictrError):
    """A message arrived out of order, or none arrived in time."""

    def __init__(self, expected: str, received: str) -> None:
        super().__init__(f"container protocol: expected {expected}, received {received}")
        self.expected = expected
        self.received = received


class Channel:
    """One end of the socketpair, with methods named for what they wait for.

    ``child`` says which end: the child sends JSON and receives marshal, the parent the other way round.
    """

    def __init__(self, sock: _socket.socket, *, child: bool = False) -> None:
        self.sock = sock
        self.child = child

    @classmethod
    def pair(cls) -> tuple[Channel, _socket.socket]:
        """Return (the parent's channel, the child's raw socket to pass on)."""
        parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        return cls(parent), child

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        """Wrap an inherited descriptor (in the child)."""
        return cls(_socket.socket(fileno=fd), child=True)

    def send(self, kind: str, fds: list[int] | None = None, **payload: Any) -> None:
        """Send one message, with open file descriptors attached if ``fds`` (SCM_RIGHTS)."""
        message = {"type": kind, **payload}
        data = to_json(message).encode() if self.child else _to_marshal(message)
        send_fds(self.sock, data, fds or [])

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Receive one message; ``None`` means the other side closed its end.

        Descriptors sent with it arrive open in this process, listed under ``"fds"``.
        """
        if timeout is not None:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                raise ProtocolError("a message", f"nothing within {timeout:g} s")
        try:
            raw, fds = receive_fds(self.sock, MAX_MESSAGE, 4)
        except ConnectionResetError:
            return None
        if not raw:
            return None
        message: dict[str, Any] = marshal.loads(raw) if self.child else _from_json(raw)
        if fds:
            message["fds"] = fds
        return message

    def expect(self, kind: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for ``kind``; an ERROR from the child is raised as :class:`ContainerError`."""
        message = self.receive(timeout)
        if message is None:
            raise ProtocolError(kind, "end of file (the child exited)")
        raise_if_error(message)
        if message["type"] != kind:
            raise ProtocolError(kind, message["type"])
        return message

    def wait_for_exec(self, timeout: float | None = None) -> None:
        """After START: return once the child's ``execve`` succeeded (end of file)."""
        message = self.receive(timeout)
        if message is not None:
            raise_if_error(message)
            raise ProtocolError("end of file after exec", message["type"])

    def close(self) -> None:
        """Close this end."""
        self.sock.close()


def raise_if_error(message: dict[str, Any]) -> None:
    """Re-raise a child's ERROR message in the parent, with the child's text."""
    if message.get("type") != Message.ERROR:
        return
    step = message.get("step", "")
    cls = ExecError if step == "exec" else ContainerError
    raise cls(message.get("message", "unknown error"), step=step, errno=message.get("errno"))


def send_fds(sock: _socket.socket, data: bytes, fds: list[int]) -> None:
    """Send ``data`` as one message, with ``fds`` attached (SCM_RIGHTS) when there are any."""
    if fds:
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
    else:
        sock.send(data)


def receive_fds(sock: _socket.socket, size: int, most: int) -> tuple[bytes, list[int]]:
    """One message of up to ``size`` bytes and the descriptors (up to ``most``) that came with it."""
    width = struct.calcsize("i")
    data, ancillary, _, _ = sock.recvmsg(size, _socket.CMSG_SPACE(most * width))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"{len(payload) // width}i", payload[: len(payload) - len(payload) % width]))
    return data, fds


def _to_marshal(message: dict[str, Any]) -> bytes:
    """(The parent.) ``message`` as marshal, holding exactly what JSON would carry: tuples arrive as lists,
    number keys as strings, and a value JSON cannot carry is refused here, as it always was."""
    import json  # the parent's side only

    return marshal.dumps(json.loads(json.dumps(message)))


def _from_json(raw: bytes) -> dict[str, Any]:
    """(The parent.) A child's message; anything but a JSON object is a protocol error."""
    import json  # the parent's side only: the child never decodes JSON

    try:
        message = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError("a JSON message", f"{raw[:40]!r}: {exc}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message with a type", repr(message)[:80])
    return message


#: What JSON needs escaped in a string: the quote, the backslash and every control character.
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)} | {ord('"'): '\\"', ord("\\"): "\\\\"}


def to_json(value: Any) -> str:
    """JSON text of ``value`` (dicts with string keys, lists, strings, numbers, booleans, None).

    What ``json.dumps`` writes for these (non-ASCII left as it is), without
    importing ``json``. Anything else is a TypeError, as ``json.dumps`` says.
    """
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + _string_json(value) + '"'
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float_json(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key_json(key)}: {to_json(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _float_json(value: float) -> str:
    """A float as ``json.dumps`` writes it (NaN and the infinities as JavaScript names them)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _key_json(key: Any) -> str:
    """A dict key as JSON: a string, or a number, boolean or None written as one (as ``json.dumps`` does)."""
    if isinstance(key, str):
        return to_json(key)
    if key is None or isinstance(key, (int, float)):
        return '"' + to_json(key) + '"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _string_json(text: str) -> str:
    """The inside of a JSON string; lone surrogates (undecodable file names) escaped too, to stay UTF-8."""
    text = text.translate(_ESCAPES)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text
