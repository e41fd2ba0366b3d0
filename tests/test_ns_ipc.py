"""The IPC namespace: System V shared memory and POSIX message queues are per container."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from helpers import Roots, detached, wait_until

pytestmark = pytest.mark.root


#: Creates/removes a SysV shared memory segment with a key and lists the keys there are,
#: in the IPC namespace of the given pid (0: the host's) — run as a separate process.
_SHM_HELPER = r"""
import ctypes, sys
from minictr.kernel.namespaces import join_all
pid, action, key = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if pid:
    join_all(pid, ["ipc"])
libc = ctypes.CDLL("libc.so.6", use_errno=True)
IPC_CREAT, IPC_EXCL, IPC_RMID = 0o1000, 0o2000, 0
if action == "create" and libc.shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0o600) < 0:
    sys.exit(f"shmget: errno {ctypes.get_errno()}")
if action == "remove" and libc.shmctl(libc.shmget(key, 0, 0), IPC_RMID, None) < 0:
    sys.exit(f"shmctl: errno {ctypes.get_errno()}")
with open("/proc/sysvipc/shm") as handle:
    print(" ".join(line.split()[0] for line in handle.readlines()[1:]))
"""


def shm(pid: int, action: str, key: int = 0) -> set[int]:
    """Do ``action`` in ``pid``'s IPC namespace (0: the host's); return the segment keys seen there."""
    result = subprocess.run(
        [sys.executable, "-c", _SHM_HELPER, str(pid), action, str(key)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return {int(k) for k in result.stdout.split()}


def test_ipc_sysv_shared_memory_is_per_container(roots: Roots) -> None:
    host_key, inside_key = random.sample(range(1 << 20, 1 << 30), 2)
    shm(0, "create", host_key)
    try:
        with (
            detached(roots, "busybox", command=["sleep", "30"]) as (_, first),
            detached(roots, "busybox", command=["sleep", "30"]) as (_, second),
        ):
            assert inside_key in shm(first, "create", inside_key)
            first_sees, second_sees, host_sees = shm(first, "list"), shm(second, "list"), shm(0, "list")
    finally:
        shm(0, "remove", host_key)
    assert inside_key in first_sees and host_key not in first_sees
    assert host_key in host_sees and inside_key not in host_sees
    assert second_sees == set()


def test_ipc_message_queues_are_per_container(roots: Roots) -> None:
    make_queue = ["sh", "-c", "touch /dev/mqueue/minictr-queue && exec sleep 30"]
    with (
        detached(roots, "busybox", command=make_queue) as (_, first),
        detached(roots, "busybox", command=["sleep", "30"]) as (_, second),
    ):
        assert wait_until(lambda: os.path.exists(f"/proc/{first}/root/dev/mqueue/minictr-queue"))
        second_queues = os.listdir(f"/proc/{second}/root/dev/mqueue")
    assert second_queues == []
    assert not os.path.exists("/dev/mqueue/minictr-queue")  # the host's (where mounted) has none either
