"""The default seccomp profile, with the semantics of Docker's, and Docker's profile format.

Docker's profiles (``--security-opt seccomp=PROFILE.json``) are OCI
``linux.seccomp`` sections with three additions, resolved when a container
is made: ``archMap`` (this machine's architecture and its sub-architectures:
x86_64 also runs x86 and x32 code), and per rule ``includes``/``excludes``
(``caps``: only when the container has these capabilities; ``arches``: only
on these architectures; ``minKernel``). :func:`to_oci` does that resolution.

The default is an allowlist: about 350 ordinary calls, plus the calls that
a capability makes meaningful (``mount`` with CAP_SYS_ADMIN, ``reboot`` with
CAP_SYS_BOOT...) only when the container holds it; everything else fails
with EPERM. A few are allowed only with safe arguments: ``clone`` without
namespace flags, ``personality`` with the harmless personas, ``socket`` with
any family but AF_VSOCK; ``clone3`` (whose flags live in memory a filter
cannot read) fails with ENOSYS so that libc falls back to ``clone``.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ALLOWED = """
  accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom recvmmsg
  recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown socketcall socketpair
  access chdir chmod chown chown32 close close_range copy_file_range creat dup dup2 dup3 faccessat
  faccessat2 fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
  fcntl64 fdatasync fgetxattr flistxattr flock fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs
  fstatfs64 fsync ftruncate ftruncate64 futimesat getcwd getdents getdents64 getxattr lchown lchown32
  lgetxattr link linkat listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 mkdir
  mkdirat mknod mknodat name_to_handle_at newfstatat open openat openat2 pread64 preadv preadv2
  pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv removexattr rename renameat
  renameat2 rmdir sendfile sendfile64 setxattr splice stat stat64 statfs statfs64 statx symlink
  symlinkat sync sync_file_range syncfs tee truncate truncate64 umask unlink unlinkat utime utimensat
  utimensat_time64 utimes vmsplice write writev fanotify_mark inotify_add_watch inotify_init
  inotify_init1 inotify_rm_watch
  epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
  epoll_wait_old eventfd eventfd2 _newselect poll ppoll ppoll_time64 pselect6 pselect6_time64 select
  signalfd signalfd4 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
  timerfd_settime64 io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup
  io_submit io_uring_enter io_uring_register io_uring_setup ioctl pipe pipe2
  brk madvise membarrier memfd_create memfd_secret mincore mlock mlock2 mlockall mmap mmap2 mprotect
  mremap msync munlock munlockall munmap pkey_alloc pkey_free pkey_mprotect remap_file_pages
  execve execveat exit exit_group fork vfork wait4 waitid waitpid getpid getppid gettid getpgid
  getpgrp getsid setpgid setsid kill tkill tgkill pidfd_open pidfd_send_signal process_mrelease
  rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
  rt_sigtimedwait_time64 rt_tgsigqueueinfo sigaltstack sigprocmask sigreturn pause restart_syscall
  futex futex_time64 futex_waitv get_robust_list set_robust_list get_thread_area set_thread_area
  set_tid_address rseq prctl capget capset seccomp landlock_add_rule landlock_create_ruleset
  landlock_restrict_self
  getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32 getresgid
  getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32 setregid
  setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
  setgroups setgroups32
  getrlimit setrlimit prlimit64 ugetrlimit getrusage getpriority setpriority ioprio_get ioprio_set
  sched_getaffinity sched_setaffinity sched_getattr sched_setattr sched_getparam sched_setparam
  sched_getscheduler sched_setscheduler sched_get_priority_max sched_get_priority_min
  sched_rr_get_interval sched_rr_get_interval_time64 sched_yield getcpu getrandom sysinfo uname times
  adjtimex alarm clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
  clock_gettime64 clock_nanosleep clock_nanosleep_time64 getitimer setitimer gettimeofday nanosleep
  time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
  timer_settime64
  ipc msgctl msgget msgrcv msgsnd semctl semget semop semtimedop semtimedop_time64 shmat shmctl shmdt
  shmget mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
  mq_timedsend_time64 mq_unlink
"""

#: Calls a capability makes meaningful: allowed only when the container holds it.
_WITH_CAPABILITY = {
    "CAP_SYS_ADMIN": "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
                     "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
                     "sethostname setns syslog umount umount2 unshare",
    "CAP_SYS_BOOT": "reboot",
    "CAP_SYS_CHROOT": "chroot",
    "CAP_SYS_MODULE": "delete_module init_module finit_module",
    "CAP_SYS_PACCT": "acct",
    "CAP_SYS_PTRACE": "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace",
    "CAP_SYS_RAWIO": "iopl ioperm",
    "CAP_SYS_TIME": "settimeofday stime clock_settime clock_settime64",
    "CAP_SYS_TTY_CONFIG": "vhangup",
    "CAP_SYS_NICE": "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    "CAP_SYSLOG": "syslog",
    "CAP_BPF": "bpf",
    "CAP_PERFMON": "perf_event_open",
    "CAP_DAC_READ_SEARCH": "open_by_handle_at",
}  # fmt: skip

#: Calls of one architecture family only (Docker's arch names).
_ARCH_ONLY = {
    ("amd64", "x32"): "arch_prctl",
    ("amd64", "x32", "x86"): "modify_ldt",
    ("arm", "arm64"): "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ("ppc64le",): "sync_file_range2 swapcontext",
    ("s390", "s390x"): "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ("riscv64",): "riscv_flush_icache",
}

#: Namespace flags of clone(2): without CAP_SYS_ADMIN a container may not make new namespaces.
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000

#: personality(2) values that change nothing dangerous: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|LINUX32, query.
_PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

AF_VSOCK = 40

#: uname machine -> (Docker arch name, OCI architectures: native first, then the ones it also runs)
ARCHES = {
    "x86_64": ("amd64", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    "aarch64": ("arm64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
    "s390x": ("s390x", ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]),
    "riscv64": ("riscv64", ["SCMP_ARCH_RISCV64"]),
    "ppc64le": ("ppc64le", ["SCMP_ARCH_PPC64LE"]),
}


def default_profile() -> dict[str, Any]:
    """The default profile in Docker's format (``includes``/``excludes``, ``archMap``)."""
    rules: list[dict[str, Any]] = [{"names": _ALLOWED.split(), "action": "SCMP_ACT_ALLOW"}]
    # since 4.8 seccomp runs after ptrace's changes, so a tracer can no longer smuggle calls past it
    rules.append(
        {
            "names": ["process_vm_readv", "process_vm_writev", "ptrace"],
            "action": "SCMP_ACT_ALLOW",
            "includes": {"minKernel": "4.8"},
        }
    )
    rules.append(
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
        }
    )
    rules += [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
        for v in _PERSONAS
    ]
    for arches, names in _ARCH_ONLY.items():
        rules.append({"names": names.split(), "action": "SCMP_ACT_ALLOW", "includes": {"arches": list(arches)}})
    for cap, names in _WITH_CAPABILITY.items():
        rules.append({"names": names.split(), "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}})
    no_namespaces = {"value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    rules.append(
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, **no_namespaces}],
            "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]},
        }
    )
    rules.append(
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 1, **no_namespaces}],
            "includes": {"arches": ["s390", "s390x"]},
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    rules.append(
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.ENOSYS,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    arch_map = [{"architecture": oci[0], "subArchitectures": oci[1:]} for _, oci in ARCHES.values()]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM, "archMap": arch_map, "syscalls": rules}


def _kernel() -> tuple[int, int]:
    release = os.uname().release.split("-")[0].split(".")
    return int(release[0]), int(release[1]) if len(release) > 1 else 0


def _applies(rule: dict[str, Any], caps: set[str], arch: str) -> bool:
    """Docker's includes/excludes: every ``includes`` condition must hold, no ``excludes`` one may."""
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("minKernel") and _kernel() < tuple(int(p) for p in str(inc["minKernel"]).split(".")[:2]):
        return False
    if exc.get("caps") and set(exc["caps"]) & caps:
        return False
    return not (exc.get("arches") and arch in exc["arches"])


def to_oci(profile: dict[str, Any], capabilities: list[str], machine: str | None = None) -> dict[str, Any]:
    """A Docker-format profile -> an OCI ``linux.seccomp`` section for a container with ``capabilities``."""
    machine = machine or os.uname().machine
    arch, native = ARCHES.get(machine, (machine, []))
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if native and entry["architecture"] == native[0]:
            architectures = [entry["architecture"], *entry.get("subArchitectures", [])]
    caps = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if _applies(rule, caps, arch):
            names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
            oci = {"names": names, "action": rule["action"]}
            oci.update({k: rule[k] for k in ("args", "errnoRet") if rule.get(k) is not None})
            syscalls.append(oci)
    section = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"), "architectures": architectures,
               "syscalls": syscalls}  # fmt: skip
    for key in ("defaultErrnoRet", "flags", "listenerPath"):
        if profile.get(key) is not None:
            section[key] = profile[key]
    return section
