"""minictr.kernel.linux: the syscall wrappers keep the kernel's semantics and explain failures."""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from minictr.errors import MinictrError, SyscallError
from minictr.kernel import linux


def test_mount_error_names_call_arguments_and_reason(tmp_path) -> None:
    target = str(tmp_path / "missing" / "proc")
    with pytest.raises(SyscallError) as caught:
        linux.mount("proc", target, "proc")
    error = caught.value
    assert isinstance(error, OSError) and isinstance(error, MinictrError)
    assert error.errno == errno.ENOENT
    assert error.errno_name == "ENOENT"
    assert str(error) == f"mount('proc', '{target}', 'proc'): No such file or directory"


def test_umount2_of_something_not_mounted(tmp_path) -> None:
    with pytest.raises(SyscallError) as caught:
        linux.umount2(str(tmp_path))
    assert caught.value.errno in (errno.EINVAL, errno.EPERM)
    assert str(caught.value).startswith(f"umount2('{tmp_path}')")


@pytest.mark.root
def test_pivot_root_explains_einval() -> None:
    # In a child with a private mount namespace. The directory is on /dev/shm (another mount
    # than /, else the kernel answers EBUSY first) but is not a mount point itself (rule 4).
    tmp_path = pathlib.Path(tempfile.mkdtemp(dir="/dev/shm"))
    (tmp_path / "old").mkdir()
    code = (
        "from minictr.kernel import linux\n"
        "linux.unshare(linux.CLONE_NEWNS)\n"
        "linux.mount(None, '/', None, linux.MS_REC | linux.MS_PRIVATE)\n"
        f"linux.pivot_root({str(tmp_path)!r}, {str(tmp_path / 'old')!r})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    shutil.rmtree(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"minictr.errors.SyscallError: pivot_root('{tmp_path}', '{tmp_path / 'old'}'): Invalid argument "
        "(is new_root a mount point, and is the mount tree private rather than shared?)"
    )


def test_unshare_user_fails_in_a_multithreaded_process() -> None:
    # In a child interpreter, so the test process itself never unshares.
    code = (
        "import threading, time\n"
        "from minictr.kernel import linux\n"
        "from minictr.errors import SyscallError\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "try:\n"
        "    linux.unshare(linux.CLONE_NEWUSER)\n"
        "except SyscallError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout
    assert "unshare('0x10000000'): Invalid argument (a multithreaded process cannot create a user namespace)" in out


def test_capget_of_this_process_matches_proc_status() -> None:
    effective, permitted, _ = linux.capget()
    with open("/proc/self/status") as handle:
        fields = dict(line.split(":\t", 1) for line in handle if ":\t" in line)
    assert effective == int(fields["CapEff"], 16)
    assert permitted == int(fields["CapPrm"], 16)


def test_prctl_reads_what_it_wrote_in_a_child() -> None:
    code = (
        "from minictr.kernel import linux\n"
        "linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)\n"
        "print(linux.prctl(linux.PR_GET_NO_NEW_PRIVS))\n"
        "linux.set_process_name('renamed-child')\n"
        "print(open('/proc/self/comm').read().strip())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30).stdout.split()
    assert out == ["1", "renamed-child"]


def test_namespace_id_is_shared_with_parent() -> None:
    for kind in ("mnt", "uts", "pid", "net"):
        assert linux.namespace_id("self", kind) == linux.namespace_id(os.getppid(), kind) or os.getppid() == 0
        assert linux.namespace_id("self", kind).startswith(f"{kind}:[")
