"""The parent <-> child protocol: one Enum of messages over a SEQPACKET socketpair.

A container is started by a fresh interpreter (``python -m minictr.runtime.process.child``)
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
"""

from __future__ import annotations

import enum
import json
import select
import socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import ContainerError, ExecError, MinictrError

#: Large enough for any config.json we send in one datagram.
MAX_MESSAGE = 1 << 20


class Message(enum.StrEnum):
    """Every message either side may send."""

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
    """One end of the socketpair, with methods named for what they wait for."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def pair(cls) -> tuple[Channel, socket.socket]:
        """Return (the parent's channel, the child's raw socket to pass on)."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return cls(parent), child

    @classmethod
    def from_fd(cls, fd: int) -> Channel:
        """Wrap an inherited descriptor (in the child)."""
        return cls(socket.socket(fileno=fd))

    def send(self, kind: Message, fds: list[int] | None = None, **payload: Any) -> None:
        """Send one message, with open file descriptors attached if ``fds`` (SCM_RIGHTS)."""
        data = json.dumps({"type": kind.value, **payload}).encode()
        if fds:
            socket.send_fds(self.sock, [data], fds)
        else:
            self.sock.send(data)

    def receive(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Receive one message; ``None`` means the other side closed its end.

        Descriptors sent with it arrive open in this process, listed under ``"fds"``.
        """
        if timeout is not None:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                raise ProtocolError("a message", f"nothing within {timeout:g} s")
        try:
            raw, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        except ConnectionResetError:
            return None
        if not raw:
            return None
        message: dict[str, Any] = json.loads(raw)
        if fds:
            message["fds"] = fds
        return message

    def expect(self, kind: Message, timeout: float | None = None) -> dict[str, Any]:
        """Wait for ``kind``; an ERROR from the child is raised as :class:`ContainerError`."""
        message = self.receive(timeout)
        if message is None:
            raise ProtocolError(kind.value, "end of file (the child exited)")
        raise_if_error(message)
        if message["type"] != kind.value:
            raise ProtocolError(kind.value, message["type"])
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
    if message.get("type") != Message.ERROR.value:
        return
    step = message.get("step", "")
    cls = ExecError if step == "exec" else ContainerError
    raise cls(message.get("message", "unknown error"), step=step, errno=message.get("errno"))
