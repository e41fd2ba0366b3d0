"""A small virtual machine beside a container: QEMU, the host's kernel, a busybox initramfs; and the two measured.

- ``initramfs``  a busybox root as a cpio archive (also for ``scripts/cgroup2-vm.sh``)
- ``lines``      a process spoken to line by line: a shell on a pipe or a serial port
- ``guest``      the VM: the kernel, KVM or TCG, QEMU's command line, its memory
- ``measure``    container vs VM: first line, memory, disk, CPU work, density
"""
