"""Security: what a container's processes may do once they are inside.

Three kernel features, one module each, applied by the child's recipe after
the root is in place (:mod:`minictr.runtime.process.child`):

- :mod:`.capabilities` — root's powers split into ~40 named capabilities;
  a container keeps Docker's 14 (``--cap-add``/``--cap-drop``);
- :mod:`.paths` — /proc and /sys files masked (a tmpfs or /dev/null on top)
  or made read-only, so that the kernel's knobs stay the host's;
- :mod:`.seccomp` — a filter of system calls (libseccomp through ctypes),
  Docker's default allowlist in :mod:`.profile`.

:mod:`.options` turns ``--privileged``, ``--cap-add``, ``--security-opt``
into the OCI spec's ``process.capabilities``, ``process.noNewPrivileges``,
``linux.seccomp``, ``linux.maskedPaths`` and ``linux.readonlyPaths``.
"""
