"""A network namespace for the test browser, joined to the host by two TCP relays on loopback.

Chromium aborts its requests (``net::ERR_NETWORK_CHANGED``) whenever the host's interfaces change, and
the notebooks create veth pairs and bridges while the browser test runs them (so may other tests on the
machine). So chromedriver and chromium live in a network namespace of their own, where nothing changes,
and this small process carries two kinds of connection across:

    chromium (in the namespace) ── 127.0.0.1:LAB ──▶ relay ──▶ JupyterLab on the host's 127.0.0.1:LAB
    Selenium (on the host) ── 127.0.0.1:DRIVER ──▶ relay ──▶ chromedriver in the namespace, 127.0.0.1:DRIVER

A socket belongs to the network namespace its creator was in when it was made, so the relay — one
thread, a fresh interpreter (``python tests/browser_netns.py LAB DRIVER``) — makes each socket after
``setns`` into the right namespace. It prints "ready" once both listeners are up; chromedriver joins the
namespace through ``/proc/<relay pid>/ns/net``. It runs until it is killed, and the namespace goes with it.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys

from minictr.kernel import linux, namespaces


class Relay:
    """Accept on two listeners, each in its own namespace; pipe every connection to its target."""

    def __init__(self, lab_port: int, driver_port: int) -> None:
        self.host = os.open("/proc/self/ns/net", os.O_RDONLY)
        linux.unshare(linux.CLONE_NEWNET)
        namespaces.loopback_up()
        self.private = os.open("/proc/self/ns/net", os.O_RDONLY)  # where the relay rests: /proc/<pid>/ns/net
        self.selector = selectors.DefaultSelector()
        # chromium's side: in the private namespace, towards the lab on the host
        self._listen(self.private, lab_port, (self.host, lab_port))
        # Selenium's side: on the host, towards chromedriver in the private namespace
        self._listen(self.host, driver_port, (self.private, driver_port))

    def _socket_in(self, namespace: int) -> socket.socket:
        """A socket of ``namespace``; the relay then goes back to the private one, which chromedriver joins."""
        linux.setns(namespace, linux.CLONE_NEWNET)
        try:
            return socket.socket()
        finally:
            linux.setns(self.private, linux.CLONE_NEWNET)

    def _listen(self, namespace: int, port: int, target: tuple[int, int]) -> None:
        listener = self._socket_in(namespace)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        self.selector.register(listener, selectors.EVENT_READ, ("accept", target))

    def _accept(self, listener: socket.socket, target: tuple[int, int]) -> None:
        client, _ = listener.accept()
        upstream = self._socket_in(target[0])
        try:
            upstream.connect(("127.0.0.1", target[1]))
        except OSError:
            client.close()
            upstream.close()
            return
        self.selector.register(client, selectors.EVENT_READ, ("pipe", upstream))
        self.selector.register(upstream, selectors.EVENT_READ, ("pipe", client))

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            data = source.recv(65536)
            if data:
                sink.sendall(data)
                return
        except OSError:
            pass
        for end in (source, sink):  # one side closed: close both
            try:
                self.selector.unregister(end)
            except (KeyError, ValueError):
                pass
            end.close()

    def serve(self) -> None:
        """Relay forever (the test kills this process when it is done)."""
        while True:
            for key, _ in self.selector.select():
                kind, other = key.data
                if kind == "accept":
                    self._accept(key.fileobj, other)  # type: ignore[arg-type]
                elif key.fileobj.fileno() != -1:  # type: ignore[union-attr]
                    self._pipe(key.fileobj, other)  # type: ignore[arg-type]


if __name__ == "__main__":
    relay = Relay(int(sys.argv[1]), int(sys.argv[2]))
    print("ready", flush=True)
    relay.serve()
