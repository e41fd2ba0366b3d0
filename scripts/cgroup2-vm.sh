#!/usr/bin/env bash
# Run minictr's cgroup v2 tests for real: in a throw-away QEMU guest whose
# /sys/fs/cgroup is a pure cgroup2 hierarchy with every controller delegated.
#
#   bash scripts/cgroup2-vm.sh                 # the cgroup tests (marked cgroups or cgroup2)
#   bash scripts/cgroup2-vm.sh CMD [ARG...]    # anything else, run in the guest
#
# The guest boots the host's Debian kernel with a tiny initramfs (static
# busybox and the modules for 9p and overlayfs, written by minictr.vm.initramfs).
# Its root is the host's root, shared read-only over 9p with a tmpfs on top, so it sees this checkout and
# its Python as they are and every write is thrown away. Output streams back
# over a second serial port; the exit status of CMD is ours (124: timed out,
# 125: the guest itself failed).
#
# Needs qemu-system-x86 linux-image-amd64 busybox-static (scripts/test-packages.txt).
# Knobs: MINICTR_VM_MEMORY (512M), MINICTR_VM_CPUS (2), MINICTR_VM_TIMEOUT (1200 s),
#        MINICTR_VM_ACCEL (tcg: software emulation, which works everywhere; kvm where
#        nested virtualisation really works), PYTHON (default: the checkout's .venv/bin/python).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ $# -gt 0 ] || set -- "$python" -m pytest -q -m "cgroups or cgroup2" -p no:cacheprovider \
    "$repo/tests/test_cgroups.py" "$repo/tests/test_cgroups_v2.py"

fail() { echo "cgroup2-vm: $*" >&2; exit 125; }
for tool in qemu-system-x86_64 busybox modprobe; do
    command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install qemu-system-x86 linux-image-amd64 busybox-static)"
done
release=$(ls /lib/modules 2>/dev/null | sort -V | tail -n 1)
kernel=/boot/vmlinuz-$release
[ -n "$release" ] && [ -r "$kernel" ] || fail "no kernel with modules in /boot and /lib/modules (apt-get install linux-image-amd64)"

scratch=$(mktemp -d /tmp/minictr-cgroup2-vm.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/exchange"

# --- the initramfs: busybox, the modules (with their dependencies, in load order), /init ---------
# (written by minictr.vm.initramfs, which notebook 12's VM uses too; /modules.list gives the load order)
cat > "$scratch/init" <<EOF
#!/bin/busybox sh
# PID 1 of the guest: build a writable copy of the host's root, give it a pure cgroup2 tree, run the job.
bb=/bin/busybox
\$bb mount -t proc proc /proc
\$bb mount -t devtmpfs dev /dev
for ko in \$(\$bb cat /modules.list); do \$bb insmod /\$ko; done
\$bb mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /host
\$bb mount -t tmpfs -o size=75% scratch /upper
\$bb mkdir -p /upper/data /upper/work
\$bb mount -t overlay -o lowerdir=/host,upperdir=/upper/data,workdir=/upper/work overlay /root
r=/root
\$bb mount -t proc proc \$r/proc
\$bb mount -t sysfs sysfs \$r/sys
\$bb mount -t devtmpfs dev \$r/dev
\$bb mkdir -p \$r/dev/pts \$r/dev/shm
\$bb mount -t devpts devpts \$r/dev/pts
for dir in /dev/shm /run /tmp /var/lib/minictr; do \$bb mkdir -p \$r\$dir; \$bb mount -t tmpfs tmpfs \$r\$dir; done
\$bb mkdir -p \$r$scratch/exchange
\$bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 exchange \$r$scratch/exchange
# the checkout itself, wherever it is: the tmpfs above may hide it (a clone under /tmp)
\$bb mkdir -p \$r$repo
\$bb mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose checkout \$r$repo
\$bb mount -t cgroup2 -o nsdelegate cgroup2 \$r/sys/fs/cgroup
for controller in \$(\$bb cat \$r/sys/fs/cgroup/cgroup.controllers); do
    echo "+\$controller" > \$r/sys/fs/cgroup/cgroup.subtree_control
done
\$bb chroot \$r /bin/sh $scratch/exchange/job.sh
\$bb sync
\$bb poweroff -f
EOF
PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH} "$python" -m minictr.vm.initramfs "$scratch/initrd.gz" \
    --init "$scratch/init" --release "$release" --dir host --dir upper --dir root \
    --module virtio_pci --module 9pnet_virtio --module 9p --module overlay --module loop \
    || fail "cannot build the initramfs"

# --- the job: the caller's working directory and Python settings, output to the second serial port ---
{
    echo "export PATH=$(printf %q "$(dirname "$python"):$PATH") HOME=/root LC_ALL=C.UTF-8 TERM=dumb"
    echo "export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONDONTWRITEBYTECODE=1"
    # the guest's disks are small throw-away tmpfs: keep minictr's free-space reserve in proportion
    echo "export MINICTR_DISK_RESERVE=${MINICTR_DISK_RESERVE:-32m}"
    [ -n "${PYTHONPATH:-}" ] && echo "export PYTHONPATH=$(printf %q "$PYTHONPATH")"
    echo "stty -F /dev/ttyS1 raw -echo 2>/dev/null"
    printf 'cd %q || exit 125\n' "$PWD"
    printf '%s </dev/null >/dev/ttyS1 2>&1\n' "$(printf '%q ' "$@")"
    printf 'echo $? > %q\n' "$scratch/exchange/status"
} > "$scratch/exchange/job.sh"

# --- boot ---------------------------------------------------------------------------------------
echo "cgroup2-vm: booting Linux $release with a pure cgroup2 hierarchy to run: $*" >&2
set +e
timeout "${MINICTR_VM_TIMEOUT:-1200}" qemu-system-x86_64 -name minictr-cgroup2,process=minictr-cg2-vm -accel "${MINICTR_VM_ACCEL:-tcg}" -cpu max \
    -m "${MINICTR_VM_MEMORY:-512M}" -smp "${MINICTR_VM_CPUS:-2}" \
    -nodefaults -no-user-config -no-reboot -display none \
    -serial "file:$scratch/console.log" -serial stdio \
    -kernel "$kernel" -initrd "$scratch/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" \
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$repo,mount_tag=checkout,security_model=none,readonly=on,multidevs=remap" \
    -virtfs "local,path=$scratch/exchange,mount_tag=exchange,security_model=none" </dev/null
qemu=$?
set -e
if [ -s "$scratch/exchange/status" ]; then
    exit "$(cat "$scratch/exchange/status")"
fi
echo "cgroup2-vm: the guest gave no exit status (qemu exited $qemu); the end of its console:" >&2
tail -n 25 "$scratch/console.log" >&2
[ "$qemu" = 124 ] && exit 124
exit 125
