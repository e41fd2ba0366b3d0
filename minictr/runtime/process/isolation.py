"""The steps that give a container its own view: namespaces, hostname, loopback, mounts, root.

Before the fork: the user namespace (and becoming root inside it), joined and
new namespaces, the time namespace's offsets. After it: the cgroup, the
hostname, lo, the private mount tree, the overlay or bind root, the spec's
mounts, /dev, and pivot_root (or chroot) into the root. Notebooks
01 to 05 and 07 read these.
"""

from __future__ import annotations

import _socket  # not socket: see minictr.runtime.process.channel
import os

from minictr import faults
from minictr.errors import SyscallError
from minictr.kernel import linux, namespaces, rootfs
from minictr.runtime.process.channel import Message
from minictr.runtime.process.setup import Setup, StepFailed, run_own


def enter_user_namespace(setup: Setup) -> None:
    """Create the user namespace first: it owns the others, and grants us root inside.

    The maps must come from outside (a process cannot freely map itself), so
    we ask the parent to write them, wait, and then become uid/gid 0 inside.
    """
    if "user" in setup.joined:
        namespaces.join(setup.joined["user"], "user")
    elif "user" in setup.new and "new_user" in setup.own:
        run_own(setup, "new_user", lambda: _have_maps_written(setup))  # a learner's: unshare, maps, root inside
        linux.prctl(linux.PR_SET_DUMPABLE, 1)  # see become_root_inside
        return
    elif "user" in setup.new:
        namespaces.unshare(["user"])
        _have_maps_written(setup)
    else:
        return
    become_root_inside()


def _have_maps_written(setup: Setup) -> None:
    """Ask the parent to write our uid and gid maps, and wait until it has."""
    setup.channel.send(Message.USERNS_READY, pid=os.getpid())
    setup.channel.expect(Message.MAPPINGS_WRITTEN)


def become_root_inside() -> None:
    """Take uid and gid 0 of the user namespace we are in, and stay dumpable.

    Changing credentials clears the "dumpable" flag, which hands our own
    /proc/self files to the host's root: /proc/self/timens_offsets would then
    be out of reach. Setting it again is safe: we are about to exec anyway.
    """
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    linux.prctl(linux.PR_SET_DUMPABLE, 1)


def join_namespaces(setup: Setup) -> None:
    """Join the namespaces the spec gives a ``path`` for (``--network container:…``, exec)."""
    for kind in namespaces.JOIN_ORDER:
        if kind in setup.joined and kind != "user":
            namespaces.join(setup.joined[kind], kind)


def unshare_namespaces(setup: Setup) -> None:
    """Create the new namespaces (user is done already, cgroup comes after joining the cgroup): one unshare(2)."""
    namespaces.unshare(setup.new - {"user", "cgroup"})


def set_time_offsets(setup: Setup) -> None:
    """Shift the clocks of the new time namespace, before any process is in it."""
    if "time" in setup.new and setup.linux.get("timeOffsets"):
        namespaces.set_time_offsets(setup.linux["timeOffsets"])


def join_cgroup(setup: Setup) -> None:
    """Have the parent put us in the container's cgroup, then make that cgroup our namespace's root.

    Only PID 1 joins (the waiting process before the fork stays out: it is
    minictr's, not the container's), and it joins before the cgroup
    namespace is made, so the container sees its own cgroup as ``/``.
    """
    if setup.options.get("cgroup") and "join_cgroup" in setup.own:
        run_own(setup, "join_cgroup", list(setup.options.get("cgroup_dirs", [])))  # a learner's, writing itself in
    elif setup.options.get("cgroup"):
        setup.channel.send(Message.JOIN_CGROUP)
        setup.channel.expect(Message.CGROUP_JOINED)
    if "cgroup" in setup.new:
        namespaces.unshare(["cgroup"])


def set_hostname(setup: Setup) -> None:
    """Name the new UTS namespace (the hostname a container shows in its prompt)."""
    if "uts" in setup.new and "new_uts" in setup.own:
        # A learner's new_uts unshares again: the namespace made above stays between it and the host's,
        # so a new_uts that forgets to unshare renames the container, never the host.
        with open("/proc/sys/kernel/domainname") as current:  # a new namespace starts with the old name
            domain = setup.spec.get("domainname") or current.read().strip()
        run_own(setup, "new_uts", setup.spec.get("hostname") or os.uname().nodename, domain)
    elif "uts" in setup.new:
        namespaces.set_hostname(setup.spec.get("hostname"), setup.spec.get("domainname"))


def loopback_up(setup: Setup) -> None:
    """A new network namespace has only ``lo``, and it is down: bring it up.

    For a bridge network the parent configures ``eth0`` from outside; it needs
    a netlink socket *in* this namespace, which it gets with READY. A socket
    belongs to the namespace it was made in, wherever it travels.
    """
    if "network" in setup.new:
        namespaces.loopback_up()
        if setup.options.get("netlink"):
            setup.netlink = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM, 0)  # 0: NETLINK_ROUTE


def private_mounts(setup: Setup) -> None:
    """Make mount propagation private (or as the spec says) before anything is mounted.

    On a shared ``/`` (systemd's default) a mount would otherwise propagate
    back to the host. Without a mount namespace in the spec (chroot
    isolation) a private one is made only when there is something to mount,
    so that the overlay and /proc vanish with the container.
    """
    if not setup.own_mounts:
        if not setup.overlay and not setup.spec.get("mounts"):
            return
        namespaces.unshare(["mount"])
    rootfs.make_private("/", setup.linux.get("rootfsPropagation") or "rprivate")


def mount_overlay(setup: Setup) -> None:
    """Mount the copy-on-write root: the image's layers read-only below, the container's changes above."""
    if not setup.overlay:
        return
    lower = ":".join(setup.overlay["lowerdirs"])
    data = f"lowerdir={lower},upperdir={setup.overlay['upperdir']},workdir={setup.overlay['workdir']}"
    if "user" in setup.new:
        data += ",userxattr"  # in a user namespace overlayfs may not use trusted.* xattrs for copy-up
    linux.mount("overlay", setup.rootfs, "overlay", 0, data)


def bind_root(setup: Setup) -> None:
    """pivot_root needs the new root to be a mount point: bind it onto itself."""
    if setup.own_mounts and not setup.overlay:
        rootfs.bind_onto_itself(setup.rootfs)


def mount_spec_mounts(setup: Setup) -> None:
    """Mount the spec's ``mounts`` (/proc, /dev, /sys, volumes...) below the new root."""
    for entry in setup.spec.get("mounts", []):
        try:
            rootfs.mount_entry(setup.rootfs, entry)
        except SyscallError as exc:
            raise StepFailed("mount", f"mounting {entry['destination']}: {exc}", exc.errno) from exc


def create_devices(setup: Setup) -> None:
    """Fill a fresh /dev tmpfs with the standard nodes and links."""
    if any(m["destination"] == "/dev" and m.get("type") == "tmpfs" for m in setup.spec.get("mounts", [])):
        rootfs.create_devices(setup.rootfs, bind_from_host="user" in setup.new or "user" in setup.joined)
    if setup.linux.get("devices"):
        rootfs.create_spec_devices(setup.rootfs, setup.linux["devices"], bind_from_host="user" in setup.new)


def enter_root(setup: Setup) -> None:
    """Make the rootfs our root: pivot_root with a mount namespace, chroot without one.

    ``chdir`` into the root matters: a process whose working directory is
    outside its root can walk back up to the host's root with ``..``.
    """
    try:
        if setup.own_mounts and "pivot_into" in setup.own:
            run_own(setup, "pivot_into", setup.rootfs)
            setup.root_method = "pivot_root"
        elif setup.own_mounts:
            # a mapped root may not write to an image the host's root owns: no .oldroot there
            writable = os.access(setup.rootfs, os.W_OK)
            setup.root_method = (rootfs.pivot_into if writable else rootfs.pivot_in_place)(setup.rootfs)
            faults.point("pivot")  # a test's SIGKILL of the container, half set up (see minictr.faults)
            if setup.root_method == "chroot":
                setup.root_note = "pivot_root is impossible on this host (its root is a ramfs); used chroot instead"
        elif "enter_root" in setup.own:
            run_own(setup, "enter_root", setup.rootfs)
        else:
            os.chroot(setup.rootfs)
    except OSError as exc:
        call = "pivot_root" if setup.own_mounts else "chroot"
        message = str(exc) if isinstance(exc, SyscallError) else f"{call}({setup.rootfs!r}): {exc.strerror}"
        raise StepFailed(call, message, exc.errno) from exc
    os.chdir("/")
    cwd = setup.spec.get("process", {}).get("cwd", "/")
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise StepFailed("cwd", f"chdir to working directory {cwd!r}: {exc.strerror}", exc.errno) from exc


def readonly_root(setup: Setup) -> None:
    """``root.readonly``: the container cannot change its root filesystem at all."""
    if setup.spec.get("root", {}).get("readonly") and setup.own_mounts:
        rootfs.remount_readonly("/")
