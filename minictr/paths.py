"""Where minictr keeps things on the host.

- the *state root* (``/run/minictr``, or ``$MINICTR_ROOT``, or ``--root``):
  one directory per container, gone at reboot like the containers themselves;
- the *data root* (``/var/lib/minictr``, or ``$MINICTR_DATA_ROOT``, or
  ``--data-root``): the image store and unpacked layers, kept across reboots.
"""

from __future__ import annotations

import os

DEFAULT_STATE_ROOT = "/run/minictr"
DEFAULT_DATA_ROOT = "/var/lib/minictr"


def state_root() -> str:
    """The runtime state directory in force."""
    return os.environ.get("MINICTR_ROOT") or DEFAULT_STATE_ROOT


def data_root() -> str:
    """The image and layer directory in force."""
    return os.environ.get("MINICTR_DATA_ROOT") or DEFAULT_DATA_ROOT
