"""The engine: what Docker or podman adds above a runtime.

:mod:`~minictr.engine.images` (an OCI image store, pull and push),
:mod:`~minictr.engine.network` (bridge networks, addresses, NAT, ports),
:mod:`~minictr.engine.volumes`, :mod:`~minictr.engine.build` (Dockerfiles),
and the containers themselves: :mod:`~minictr.engine.container` runs one,
:mod:`~minictr.engine.monitor` keeps a detached one, :mod:`~minictr.engine.lifecycle`
stops, starts and removes them.
"""
