"""The time namespace (``--timens``): the container's clocks start near zero, the host's do not move."""

from __future__ import annotations

import os

import pytest
from helpers import Roots, container_log, detached, read, wait_until

pytestmark = pytest.mark.root


def test_timens_clocks_start_near_zero(roots: Roots) -> None:
    host_uptime = float(read("/proc/uptime").split()[0])
    with detached(roots, "--timens", "busybox", command=["sh", "-c", "cat /proc/uptime; exec sleep 30"]) as (
        container_id,
        pid,
    ):
        assert wait_until(lambda: container_log(roots, container_id).endswith("\n"))
        offsets = {line.split()[0]: int(line.split()[1]) for line in read(f"/proc/{pid}/timens_offsets").splitlines()}
        time_ns = os.readlink(f"/proc/{pid}/ns/time")
        inside_uptime = float(container_log(roots, container_id).split()[0])
    assert inside_uptime < 60
    assert offsets["monotonic"] < 0 and offsets["boottime"] < 0
    assert abs(offsets["boottime"]) == pytest.approx(host_uptime, abs=60)
    if host_uptime >= 120:
        assert float(read("/proc/uptime").split()[0]) > inside_uptime + 60  # the host's clock was not moved
    assert time_ns != os.readlink("/proc/self/ns/time")
    assert all(int(line.split()[1]) == 0 for line in read("/proc/self/timens_offsets").splitlines())
