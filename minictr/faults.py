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
                                    dns     a user network's DNS server runs (its first member)
                                    pivot   the container's PID 1 has pivoted into its root: it
                                            kills *itself*. From inside its pid namespace it
                                            cannot reach minictr (no pid of the host is
                                            visible there, nor signalled through a pidfd);
                                            minictr dying while the container is half set up
                                            is proven by spawn, lease and nft, which happen
                                            while the child sets up. Here minictr lives on and
                                            must clean up after a container that died half set
                                            up (an OOM kill, a bug), then exit 125.
                                    agent   the bridge's netlink agent has the request (and the
                                            netlink socket of the container's namespace); the
                                            command dies before its reply
                                    veth    the veth pair exists, one end in the container, eth0 set
                                    exec    the program runs (a foreground one not yet recorded
                                            as running; a detached one recorded just before)
    pull                            blob    a blob is half-written (its ``.partial-*`` file)
                                    unpack  a layer is half-unpacked (its ``.unpacking-*`` directory)
    network create                  network the network's directory exists, its definition not yet

The container's first process inherits the variable (see
:func:`minictr.runtime.process.parent._child_environment`); its program does not.
"""

from __future__ import annotations

import os

SIGKILL = 9  # not signal.SIGKILL: the signal module's import costs the container's first process ms

VARIABLE = "MINICTR_FAULT"


def point(step: str) -> None:
    """Die here by SIGKILL when ``MINICTR_FAULT`` names ``step``."""
    if os.environ.get(VARIABLE) == step:
        os.kill(os.getpid(), SIGKILL)
        os._exit(137)  # PID 1 of a pid namespace ignores even its own SIGKILL: leave as abruptly
