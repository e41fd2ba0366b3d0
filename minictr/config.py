"""The host's minictr settings: ``/etc/minictr/minictr.conf``, a TOML file, and environment variables.

The file is optional; every setting has a default, and an environment
variable, where one exists, wins over the file (so a test, a notebook or a
one-off command can change it without touching ``/etc``)::

    # /etc/minictr/minictr.conf
    [network]
    # Where automatic subnets come from, in order: each pool is carved into
    # subnets of `size` bits; the first that overlaps nothing on the host wins.
    default-address-pools = [
      { base = "10.88.0.0/16", size = 24 },
      { base = "172.17.0.0/12", size = 24 },
    ]

``$MINICTR_CONFIG`` names another file instead of ``/etc/minictr/minictr.conf``.
TOML because Python reads it without a dependency (:mod:`tomllib`), it has
comments, and podman's ``containers.conf`` speaks it too.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError

DEFAULT_PATH = "/etc/minictr/minictr.conf"

_loaded: dict[tuple[str, float], dict[str, Any]] = {}


def path() -> str:
    """The configuration file in force (it need not exist)."""
    return os.environ.get("MINICTR_CONFIG") or DEFAULT_PATH


def load() -> dict[str, Any]:
    """The file's settings (``{}`` without a file); a file that is not valid TOML is a UsageError."""
    file = path()
    try:
        stamp = os.stat(file).st_mtime
    except OSError:
        return {}
    if (file, stamp) not in _loaded:
        import tomllib

        try:
            with open(file, "rb") as handle:
                _loaded[(file, stamp)] = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{file}: {exc}") from exc
    return _loaded[(file, stamp)]


def setting(section: str, key: str, env: str | None = None) -> tuple[Any, str] | None:
    """A setting and where it came from (the variable's or the file's name); None when neither sets it.

    The environment variable's value is returned as a string, for the caller to parse.
    """
    if env and os.environ.get(env):
        return os.environ[env], f"${env}"
    table = load().get(section, {})
    if not isinstance(table, dict):
        raise UsageError(f"{path()}: [{section}] must be a table")
    if key in table:
        return table[key], f"{path()} [{section}] {key}"
    return None
