"""What passes between the command that holds a container and the container: its pty, and the signals sent to us.

**The pty** (``-t``) comes from the container's own devpts, its master back over a console socket.

The engine asks for a terminal the way engines ask ``minictr-oci`` (and runc)
with ``--console-socket``: it gives the container's first process one end of a
unix socket (``spawn(console=...)``); that process, inside the container and
after its mounts, opens a pty from the container's ``/dev/ptmx`` (its devpts is
a new instance, ``newinstance,ptmxmode=0666``), makes the slave its controlling
terminal and stdio, and sends the master back with SCM_RIGHTS
(:func:`minictr.runtime.process.handoff.open_terminal`: one path for both).
So ``tty`` inside prints ``/dev/pts/0``, and the host's ``/dev/pts`` gains no
entry. The master is sent before the child reports READY, so it is here once
``spawn`` returns, before the program starts::

    engine (CLI, monitor)                         container's first process
      Console(): socketpair ─── fd ──── spawn ──▶  ... mounts, enter_root
                                                   openpty() from its /dev/ptmx
      receive() ◀───────── master (SCM_RIGHTS) ──  setsid, TIOCSCTTY, slave → 0 1 2
                                                   READY … START … exec

**Signals** (``--sig-proxy``, :func:`forward_signals`): SIGINT, SIGTERM and
SIGHUP sent to a foreground ``run``, to ``start -a`` or to ``attach`` are passed
on to the container, as Docker does (not with ``-t``: its keys go through the pty).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket

TYPE_CHECKING = False  # typing is for checkers; the monitor's start phase imports this module
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


class Console:
    """A console socket made here: the child's end (:attr:`fd`) goes to ``spawn(console=...)``, the master comes back.

    ``on_master`` is called with the master as soon as :meth:`receive` has it,
    before the container's program starts (to copy the window size, start a pump).
    """

    def __init__(self, on_master: Callable[[int], None] | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self._ours: socket.socket | None = ours
        self.fd = theirs.detach()  #: the child's end: spawn passes it on, inherited
        self.master = -1  #: the pty's master, once received
        self.on_master = on_master

    def receive(self) -> int:
        """After ``spawn`` returned: take the master the child sent, and let go of the socket."""
        from minictr.errors import ContainerError

        self._close_theirs()
        fds: list[int] = []
        if self._ours is not None:
            self._ours.setblocking(False)  # it was sent before READY: it is here, or it never comes
            try:
                _, fds, _, _ = socket.recv_fds(self._ours, 1024, 1)
            except BlockingIOError:
                pass
            self._ours.close()
            self._ours = None
        if not fds:
            raise ContainerError("the container sent no terminal over its console socket", step="open_terminal")
        self.master = fds[0]
        os.set_inheritable(self.master, False)
        if self.on_master is not None:
            self.on_master(self.master)
        return self.master

    def _close_theirs(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        """Let go of all of it, the master too (each step tolerates a repeat)."""
        self._close_theirs()
        if self._ours is not None:
            self._ours.close()
            self._ours = None
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def spawn_streams(stdio: dict[str, Any]) -> tuple[dict[str, Any], Console | None]:
    """``stdio`` as ``spawn`` takes it (a :class:`Console` under ``console`` becomes its socket), and the Console."""
    streams = dict(stdio)
    console = streams.pop("console", None)
    if console is not None:
        streams["console"] = console.fd
    return streams, console


FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def forward_signals(send: Callable[[int], object], proxy: bool = True) -> Iterator[None]:
    """Pass SIGINT, SIGTERM and SIGHUP sent to this process on through ``send(signal)``, as Docker's --sig-proxy.

    ``run``, ``start -a`` and ``attach`` all come through here. The callers
    pass ``proxy`` false with ``-t``, as Docker does: the container's terminal
    carries ^C and the rest, and a signal sent to minictr is minictr's.
    """
    if not proxy:
        yield
        return
    try:
        previous = {sig: signal.signal(sig, lambda sig, _frame: send(sig)) for sig in FORWARDED}
    except ValueError:  # not the main thread (a notebook's worker): nothing to forward
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
