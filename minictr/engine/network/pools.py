"""Address pools: where automatic subnets come from, so that minictr coexists with Docker and podman.

As Docker's ``default-address-pools``, an ordered list of (base network,
subnet size) pairs. A network created without ``--subnet`` gets the first
subnet, pool by pool, that overlaps none of the host's routes and addresses
and no other network — so with podman's ``cni-podman0`` holding
10.88.0.0/16, or Docker's ``docker0`` on 172.17.0.0/16, minictr moves on::

    10.88.0.0/16 in /24s        podman's range first (empty on most hosts)
    172.17.0.0/16 ... 172.31.0.0/16 in /24s
    192.168.0.0/16 in /24s

Configurable as ``default-address-pools`` under ``[network]`` in
``/etc/minictr/minictr.conf`` (see :mod:`minictr.config`), or with
``$MINICTR_ADDRESS_POOLS``: comma-separated ``BASE/PREFIX[:SIZE]`` entries
(``SIZE`` defaults to 24), e.g. ``10.200.0.0/16:24,10.201.0.0/16:26``.
"""

from __future__ import annotations

import ipaddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from minictr.errors import UsageError

ENV = "MINICTR_ADDRESS_POOLS"
SETTING = "default-address-pools"

#: (base, size) pairs, in the order they are tried.
DEFAULT_POOLS = [
    ("10.88.0.0/16", 24),
    *((f"172.{second}.0.0/16", 24) for second in range(17, 32)),
    ("192.168.0.0/16", 24),
]

Pool = tuple[ipaddress.IPv4Network, int]


def address_pools() -> tuple[list[Pool], str]:
    """The pools in force and where they come from (``$MINICTR_ADDRESS_POOLS``, the config file, or built in)."""
    from minictr import config

    found = config.setting("network", SETTING, env=ENV)
    if found is None:
        return [_pool(base, size, "built in") for base, size in DEFAULT_POOLS], "built in"
    value, source = found
    if isinstance(value, str):
        return parse_pools(value, source), source
    if not isinstance(value, list) or not value:
        raise UsageError(f'{source}: a list of {{ base = "CIDR", size = N }} tables is needed')
    pools = []
    for entry in value:
        if not isinstance(entry, dict) or "base" not in entry:
            raise UsageError(f'{source}: {entry!r} is not a {{ base = "CIDR", size = N }} table')
        pools.append(_pool(entry["base"], entry.get("size", 24), source))
    return pools, source


def parse_pools(text: str, source: str = f"${ENV}") -> list[Pool]:
    """``BASE/PREFIX[:SIZE],...`` -> pools (the environment variable's syntax)."""
    pools = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        base, _, size = item.partition(":")
        pools.append(_pool(base, size or 24, source))
    if not pools:
        raise UsageError(f"{source}: no address pool given (e.g. 10.88.0.0/16:24)")
    return pools


def _pool(base: Any, size: Any, source: str) -> Pool:
    try:
        network = ipaddress.IPv4Network(str(base), strict=True)
        bits = int(size)
    except ValueError as exc:
        raise UsageError(f"{source}: address pool {base!r} (size {size!r}): {exc}") from exc
    if not network.prefixlen <= bits <= 30:
        raise UsageError(f"{source}: address pool {network}: size {bits} must be between /{network.prefixlen} and /30")
    return network, bits


def free_subnet(taken: list[tuple[Any, str]], pools: list[Pool] | None = None) -> ipaddress.IPv4Network:
    """The first subnet of the pools that overlaps nothing ``taken`` ((network, owner) pairs)."""
    if pools is None:
        pools = address_pools()[0]
    for base, size in pools:
        if overlapping(base, taken) is None:  # the common case: the whole pool is free
            return next(base.subnets(new_prefix=size))
        for candidate in base.subnets(new_prefix=size):
            if overlapping(candidate, taken) is None:
                return candidate
    from minictr import config

    listed = ", ".join(f"{base} in /{size}s" for base, size in pools)
    raise UsageError(f"no free subnet left in the address pools ({listed}): give one with --subnet, "
                     f"or other pools (${ENV}, or {SETTING} in {config.path()})")  # fmt: skip


def overlapping(net: ipaddress.IPv4Network, others: list[tuple[Any, str]]) -> str | None:
    """What ``net`` overlaps among ``others`` ((network, owner) pairs), or None."""
    for other, owner in others:
        if other.version == 4 and net.overlaps(other):
            return f"{other} ({owner})"
    return None
