"""Attaching to a detached container through its monitor: ``minictr attach`` (``run -dit``, then detach and back).

The monitor's watch phase listens on ``<container dir>/attach.sock`` (a unix
stream socket, root's only). Every client gets the container's output as it
comes (raw bytes: with ``-t`` the pty's, else stdout and stderr as written),
and what a client sends goes to the container's input: its pty with ``-t``,
its stdin pipe with ``-i``, nowhere otherwise. A client that is too slow is
dropped rather than let it stall the container's log. When the container
exits the monitor moves on to its finish phase, which closes every
connection: the client sees end of file and reports the exit status.

The client side (:func:`attach`) puts the caller's terminal in raw mode and
watches the input for the detach keys (Docker's default ``ctrl-p,ctrl-q``):
they leave the container running.

Socket paths are limited to 108 bytes, state roots are not: both sides reach
the socket through ``/proc/self/fd/<directory fd>/attach.sock``.
"""

from __future__ import annotations

import os
import socket

TYPE_CHECKING = False  # typing is for checkers; the monitor's watch phase imports this module
if TYPE_CHECKING:
    from typing import Any

SOCKET = "attach.sock"
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def _path(directory: str) -> tuple[int, str]:
    """An O_PATH descriptor of ``directory`` and a short path to its socket through it."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{SOCKET}"


def listen(directory: str) -> int:
    """Make ``<directory>/attach.sock`` (root's only) and return the listening socket's descriptor.

    The monitor makes it before it reports the container started, so that
    ``start -a`` never finds it missing; the watch phase inherits it.
    """
    dir_fd, path = _path(directory)
    try:
        if os.path.lexists(os.path.join(directory, SOCKET)):
            os.unlink(os.path.join(directory, SOCKET))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(8)
    finally:
        os.close(dir_fd)
    return listener.detach()


class Server:
    """The monitor's side: the listening socket, its clients, and the container's input (-1: none)."""

    def __init__(self, listener: int, input_fd: int) -> None:
        self.input = input_fd
        if input_fd >= 0:
            os.set_blocking(input_fd, False)  # a container that does not read must not stall its monitor
        self.clients: dict[int, socket.socket] = {}
        self.listener = socket.socket(fileno=listener)

    def fds(self) -> list[int]:
        """What to select on."""
        return [self.listener.fileno(), *self.clients]

    def handle(self, fd: int) -> bool:
        """Serve a ready descriptor; False when it is not ours."""
        if fd == self.listener.fileno():
            accepted, _ = self.listener.accept()
            accepted.setblocking(False)
            self.clients[accepted.fileno()] = accepted
            return True
        client = self.clients.get(fd)
        if client is None:
            return False
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(fd)
        elif self.input >= 0:
            try:
                os.write(self.input, data)
            except OSError:
                pass  # full (the container is not reading) or closed: the input is lost, as on a full pipe
        return True

    def broadcast(self, data: bytes) -> None:
        """Send the container's output to every client."""
        for fd, client in list(self.clients.items()):
            try:
                client.sendall(data)
            except OSError:  # gone, or too slow to keep up
                self._drop(fd)

    def _drop(self, fd: int) -> None:
        self.clients.pop(fd).close()


def parse_keys(text: str) -> bytes:
    """``ctrl-p,ctrl-q`` (Docker's spelling: ``ctrl-A`` … ``ctrl-Z``, ``ctrl-@``, single characters) → bytes."""
    from minictr.errors import UsageError

    keys = b""
    for key in text.split(","):
        if len(key) == 1:
            keys += key.encode()
        elif key.lower().startswith("ctrl-") and len(key) == 6 and "@" <= key[5].upper() <= "_":
            keys += bytes([ord(key[5].upper()) - 64])
        else:
            raise UsageError(f"--detach-keys {text!r}: give keys as ctrl-X or single characters, comma-separated")
    return keys


def attach(directory: str, keys: bytes, stdin: bool = True) -> bool:
    """Copy between this terminal and the container until it exits (False) or the detach keys come (True)."""
    import select

    from minictr.engine.terminal import raw_terminal

    dir_fd, path = _path(directory)
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        connection.connect(path)
    finally:
        os.close(dir_fd)
    sources: list[Any] = [connection, *([0] if stdin else [])]
    typed = b""
    with connection, raw_terminal(0 if stdin else -1):
        while True:
            for source in select.select(sources, [], [], None)[0]:
                if source is connection:
                    data = connection.recv(65536)
                    if not data:
                        return False
                    os.write(1, data)
                    continue
                data = os.read(0, 4096)
                if not data:
                    sources.remove(0)
                    continue
                typed = (typed + data)[-len(keys) :] if keys else b""
                if keys and typed == keys:
                    before = data[: max(0, len(data) - len(keys))]
                    if before:
                        connection.sendall(before)
                    return True
                connection.sendall(data)
