"""The UTS namespace: the host name and domain name are the container's own."""

from __future__ import annotations

import socket

import pytest
from helpers import Roots, read

pytestmark = pytest.mark.root


def test_uts_hostname_and_domainname_are_the_containers_own(roots: Roots) -> None:
    """Changing the name inside needs CAP_SYS_ADMIN, which a default container lacks (as with Docker)."""
    host_name, host_domain = socket.gethostname(), read("/proc/sys/kernel/domainname")
    refused = roots.cli("run", "busybox", "hostname", "changed-inside")
    assert refused.returncode != 0 and "not permitted" in refused.stderr
    names = ["-h", "inside-name", "--domainname", "inside.example"]
    script = "hostname; cat /proc/sys/kernel/domainname; hostname changed-inside && hostname"
    result = roots.cli("run", *names, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", script)
    assert result.stdout.split() == ["inside-name", "inside.example", "changed-inside"]
    assert socket.gethostname() == host_name != "changed-inside"
    assert read("/proc/sys/kernel/domainname") == host_domain
