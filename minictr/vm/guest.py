"""A small virtual machine beside a container: the host's own Debian kernel under QEMU, a busybox initramfs.

The guest has no disk: its whole root is the initramfs, unpacked into RAM.
Its PID 1 (``/init`` below) mounts ``/proc`` and ``/dev``, makes busybox's
commands, and runs the payload — a shell command, exactly what a busybox
container would run — with its input and output on the second serial port,
which QEMU connects to its own stdin and stdout. The first serial port is the
kernel's console, kept in a file for when something goes wrong.

KVM runs the guest's instructions on the real CPU; without it QEMU translates
every guest instruction into host code (TCG, the "tiny code generator"):
correct, but a boot takes seconds instead of a fraction of one, and
CPU-bound work runs many times slower. :func:`accelerator` picks KVM only
where a guest really boots under it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import tempfile
from dataclasses import dataclass

from minictr.errors import HostError
from minictr.vm import initramfs
from minictr.vm.lines import READY, LineError, LineProcess

QEMU = "qemu-system-x86_64"
#: The name QEMU gives its process (``ps``, ``/proc/<pid>/comm``): the tests' leak check looks for it.
PROCESS_NAME = "minictr-vm"
#: Debian's kernel does not boot in less: with 64 MiB it panics ("System is deadlocked on memory").
DEFAULT_MEMORY_MIB = 128
INSTALL_HINT = "apt-get install qemu-system-x86 linux-image-amd64 busybox-static"

INIT = """#!/bin/busybox sh
# PID 1 of the guest: /proc, /dev, busybox's commands, then the payload on the second serial port.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
export PATH=/bin HOME=/
stty -F /dev/ttyS1 raw -echo
sh -c "$(cat /payload)" </dev/ttyS1 >/dev/ttyS1 2>&1
poweroff -f
"""


@dataclass(frozen=True)
class Kernel:
    """A kernel this host can boot a guest with: its release and its compressed image."""

    release: str
    path: str


def host_kernel() -> Kernel:
    """The running kernel's image in /boot if it is there (the same kernel inside and out), else the newest one."""
    running = os.uname().release
    releases = [running, *sorted((name for name in _listdir("/lib/modules") if name != running), reverse=True)]
    for release in releases:
        path = f"/boot/vmlinuz-{release}"
        if os.access(path, os.R_OK):
            return Kernel(release, path)
    raise HostError(f"no readable kernel image in /boot ({INSTALL_HINT})")


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def qemu_path() -> str:
    """Where QEMU is, or :class:`HostError` saying what to install."""
    found = shutil.which(QEMU)
    if not found:
        raise HostError(f"{QEMU} is missing ({INSTALL_HINT})")
    return found


def kvm_device() -> str:
    """Why /dev/kvm can or cannot be used, in a few words ("" when it can be opened)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return (
            "no /dev/kvm (no hardware virtualisation offered to this machine)"
            if exc.errno == errno.ENOENT
            else f"/dev/kvm cannot be opened: {exc.strerror}"
        )
    try:
        version = fcntl.ioctl(fd, 0xAE00)  # KVM_GET_API_VERSION: 12 on every kernel since 2.6.22
    except OSError as exc:
        return f"/dev/kvm does not answer: {exc.strerror}"
    finally:
        os.close(fd)
    return "" if version == 12 else f"/dev/kvm speaks API version {version}, not 12"


_ACCEL: tuple[str, str] | None = None


def accelerator() -> tuple[str, str]:
    """("kvm" or "tcg", why): KVM where a test guest boots under it, software emulation otherwise.

    ``MINICTR_VM_ACCEL`` (kvm or tcg) decides instead. The answer is kept for
    the life of this process: the test boot costs up to a few seconds.
    """
    global _ACCEL
    forced = os.environ.get("MINICTR_VM_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced, "MINICTR_VM_ACCEL chose it"
    if _ACCEL is None:
        _ACCEL = _probe_kvm()
    return _ACCEL


def _probe_kvm() -> tuple[str, str]:
    lacking = kvm_device()
    if lacking:
        return "tcg", lacking
    with Guest(f"echo {READY}", accel="kvm") as guest:
        try:
            guest.wait_for(READY, 30)
        except LineError:  # e.g. nested virtualisation that opens /dev/kvm but cannot run a guest
            return "tcg", f"/dev/kvm is there, but a guest does not boot under it ({guest.complaint()})"
    return "kvm", "/dev/kvm works: the guest's instructions run on the CPU itself"


def running_guests() -> list[int]:
    """Pids of the QEMU processes minictr started that still run (named :data:`PROCESS_NAME`)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as handle:
                if handle.read().strip() == PROCESS_NAME:
                    found.append(int(pid))
        except OSError:
            pass
    return found


class Guest(LineProcess):
    """A running VM: QEMU booting the host's kernel with a busybox initramfs that runs ``payload``.

    ``payload`` is a shell command (``sh -c``), as for a container; it should
    print :data:`READY` first. Read its lines with :meth:`readline`, send it
    lines with :meth:`send`, and :meth:`stop` it (or use ``with``).
    """

    what = "the VM"
    grace = 0.0  # closing its serial input does not end QEMU: it is told to stop

    def __init__(
        self,
        payload: str,
        *,
        memory_mib: int = DEFAULT_MEMORY_MIB,
        cpus: int = 1,
        accel: str | None = None,
        kernel: Kernel | None = None,
    ) -> None:
        self.kernel = kernel or host_kernel()
        self.accel = accel or accelerator()[0]
        self.memory_mib = memory_mib
        self.scratch = tempfile.mkdtemp(prefix="minictr-vm-")
        try:
            self.initramfs = os.path.join(self.scratch, "initramfs.gz")
            from minictr.engine.images.busybox import find_static_busybox

            root = initramfs.busybox_root(INIT, find_static_busybox(), files={"payload": payload.encode()})
            initramfs.write(self.initramfs, root)
            self.console = os.path.join(self.scratch, "console.log")
            with open(os.path.join(self.scratch, "qemu.err"), "wb") as errors:  # QEMU keeps its own copy
                super().__init__(self.qemu_command(cpus), stderr=errors)
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise

    def qemu_command(self, cpus: int) -> list[str]:
        """The QEMU command line: no disk, no network, no display; console to a file, payload on stdio."""
        return [qemu_path(), "-name", f"minictr,process={PROCESS_NAME}", "-accel", self.accel, "-cpu", "max",
                "-m", f"{self.memory_mib}M", "-smp", str(cpus), "-nodefaults", "-no-user-config", "-no-reboot",
                "-display", "none", "-serial", f"file:{self.console}", "-serial", "stdio",
                "-kernel", self.kernel.path, "-initrd", self.initramfs,
                "-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"]  # fmt: skip

    def why_not(self) -> str:
        """The exit status, QEMU's last complaint and the end of the guest's console."""
        said = []
        for name in ("qemu.err", "console.log"):
            try:
                with open(os.path.join(self.scratch, name), errors="replace") as handle:
                    tail = [line.strip() for line in handle.read().splitlines() if line.strip()][-2:]
            except OSError:
                continue
            said += [f"{name}: {line}" for line in tail]
        return "; ".join([super().why_not(), *said])

    def complaint(self) -> str:
        """QEMU's first error message, else the last line of the guest's console, else its exit status."""
        for name, marker in (("qemu.err", "error: "), ("qemu.err", ": "), ("console.log", "")):
            try:
                with open(os.path.join(self.scratch, name), errors="replace") as handle:
                    lines = [line.strip() for line in handle if marker in line and line.strip()]
            except OSError:
                continue
            if lines:
                line = lines[0] if name == "qemu.err" else lines[-1]
                return f"QEMU said: {line.split(marker, 1)[-1]}" if marker else f"its console said: {line}"
        return LineProcess.why_not(self)

    def rss(self) -> int:
        """Bytes of host memory QEMU holds now (its resident set: guest RAM it touched, plus QEMU itself)."""
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise LineError(f"{self.what} has no resident set: {self.why_not()}")

    def disk_bytes(self) -> int:
        """Bytes on disk a guest needs: the kernel image and this initramfs."""
        return os.path.getsize(self.kernel.path) + os.path.getsize(self.initramfs)

    def stop(self, timeout: float = 10) -> None:
        """Stop QEMU and remove its scratch directory (the initramfs, the console log)."""
        try:
            super().stop(timeout)
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
