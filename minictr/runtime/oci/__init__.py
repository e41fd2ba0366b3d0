"""``minictr-oci``: an OCI runtime with runc's command line, for engines that know nothing of minictr.

podman (through conmon) and containerd's shim drive a runtime by running it:
``create --bundle B ID`` sets a container up and leaves it waiting,
``start ID`` lets its program run, ``state``/``kill``/``delete`` follow.
This package is that command, on the runtime layer only (the process
model, the spec validator, the state machine, cgroups, security) — never
the engine of images and networks:

- :mod:`.store`: one directory per container under ``--root``, its state;
- :mod:`.lifecycle`: create, start, kill, delete, exec, pause... as functions;
- :mod:`.hooks`: the runtime-spec's hooks, run with the state on stdin;
- :mod:`.console`: the ``--console-socket`` side of ``process.terminal``;
- :mod:`.features`: the ``spec`` and ``features`` documents;
- :mod:`.cli`: runc's flags and verbs, one function per verb.
"""
