"""The network namespace: ``--network none`` has only an up loopback, ``--network host`` shares the host's."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from helpers import Roots, interfaces, read

pytestmark = pytest.mark.root


class HostListener:
    """A TCP server on the host's 127.0.0.1 that counts connections and closes each at once."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def host_listener() -> Iterator[HostListener]:
    listener = HostListener()
    yield listener
    listener.close()


def test_network_none_has_only_loopback_and_it_is_up(roots: Roots, host_listener: HostListener) -> None:
    port = host_listener.port
    result = roots.cli(
        "run",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        f"cat /proc/net/dev; echo ==; ip -o link; timeout 5 nc 127.0.0.1 {port} </dev/null; echo nc=$?",
    )
    net_dev, _, rest = result.stdout.partition("==\n")
    assert interfaces(net_dev) == ["lo"]
    links = [line for line in rest.splitlines() if ": <" in line]
    assert len(links) == 1 and links[0].split()[1] == "lo:" and ",UP," in links[0]
    assert "nc=1" in result.stdout and "Connection refused" in result.stderr  # its 127.0.0.1 is not the host's
    assert host_listener.accepted == 0
    assert len(interfaces(read("/proc/net/dev"))) >= 1


def test_network_host_shares_the_hosts_interfaces(roots: Roots, host_listener: HostListener) -> None:
    port = host_listener.port
    result = roots.cli(
        "run",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        f"cat /proc/net/dev; timeout 5 nc 127.0.0.1 {port} </dev/null; echo nc=$?",
    )
    assert interfaces(result.stdout) == interfaces(read("/proc/net/dev"))
    assert "nc=0" in result.stdout
    assert host_listener.accepted == 1
