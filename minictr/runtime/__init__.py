"""The runtime: an OCI spec in, an isolated process out, as runc does.

:mod:`~minictr.runtime.spec` builds runtime-spec configs,
:mod:`~minictr.runtime.validate` checks one before anything acts on it,
:mod:`~minictr.runtime.process` spawns the container's first process and runs
the recipe of kernel steps, :mod:`~minictr.runtime.state` is the container
state machine, :mod:`~minictr.runtime.chroot` is the smallest runtime of all
(notebook 01) and :mod:`~minictr.runtime.oci` is ``minictr-oci``, runc's command
line for engines such as podman and containerd.
"""
