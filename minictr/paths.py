"""Where minictr keeps things on the host.

- the *state root* (``/run/minictr``, or ``$MINICTR_ROOT``, or ``--root``):
  one directory per container, gone at reboot like the containers themselves;
- the *data root* (``/var/lib/minictr``, or ``$MINICTR_DATA_ROOT``, or
  ``--data-root``): the image store and unpacked layers, kept across reboots.

Without root (rootless) they default, as podman's do, to
``$XDG_RUNTIME_DIR/minictr`` and ``$XDG_DATA_HOME/minictr`` (``~/.local/share``).
"""

from __future__ import annotations

import os

DEFAULT_STATE_ROOT = "/run/minictr"
DEFAULT_DATA_ROOT = "/var/lib/minictr"


def state_root() -> str:
    """The runtime state directory in force."""
    if os.environ.get("MINICTR_ROOT"):
        return os.environ["MINICTR_ROOT"]
    if os.geteuid() == 0:
        return DEFAULT_STATE_ROOT
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/minictr-{os.geteuid()}"
    return os.path.join(runtime, "minictr")


def data_root() -> str:
    """The image and layer directory in force."""
    if os.environ.get("MINICTR_DATA_ROOT"):
        return os.environ["MINICTR_DATA_ROOT"]
    if os.geteuid() == 0:
        return DEFAULT_DATA_ROOT
    home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(home, "minictr")
