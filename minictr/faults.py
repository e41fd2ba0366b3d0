"""Fault injection: tests make minictr die by SIGKILL at a named step, to prove the clean-up.

``MINICTR_FAULT=<step>`` in minictr's environment names the step; when the
running code reaches :func:`point` with that name, the process kills itself
with SIGKILL — no ``finally`` runs, nothing is flushed, exactly as when
``kill -9`` arrives at that moment. Only tests set the variable; unset, a
point costs one dictionary lookup. The steps::

    container start (minictr run)   cgroup  the container's cgroup is made, with its limits
                                    spawn   the child exists, before it gets its config
                                    lease   an address is leased (and the bridge is up)
                                    nft     the published ports' elements are in the nftables table
                                    pivot   (in the container's PID 1) its root is pivoted: it
                                            kills *minictr*, not itself — the case worth
                                            proving is minictr dying while the container is
                                            half set up; a child dying on its own is an
                                            error minictr reports
                                    veth    the veth pair exists, one end in the container
                                    exec    the program runs, before state.json says so
    pull                            blob    a blob is half-written (its ``.partial-*`` file)
                                    unpack  a layer is half-unpacked (its ``.unpacking-*`` directory)
    network create                  network the network's directory exists, its definition not yet

The container's first process inherits the variable (see
:func:`minictr.process.parent._child_environment`); its program does not.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "MINICTR_FAULT"


def point(step: str, pid: int = 0) -> None:
    """Die here by SIGKILL (or SIGKILL ``pid``) when ``MINICTR_FAULT`` names ``step``."""
    if os.environ.get(VARIABLE) == step:
        os.kill(pid or os.getpid(), signal.SIGKILL)
