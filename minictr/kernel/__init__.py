"""The kernel features the notebooks teach, one module each.

:mod:`~minictr.kernel.linux` (the system calls, through ctypes),
:mod:`~minictr.kernel.namespaces`, :mod:`~minictr.kernel.rootfs` (mounts and
pivot_root), :mod:`~minictr.kernel.cgroups` (v1 and v2),
:mod:`~minictr.kernel.security` (capabilities, seccomp, masked paths),
:mod:`~minictr.kernel.mountinfo` and :mod:`~minictr.kernel.privilege` (what
this session may do). Nothing here knows about images, networks or containers:
the runtime above turns a spec into calls to these modules.
"""
