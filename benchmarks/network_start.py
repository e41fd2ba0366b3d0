"""What a bridge network adds to ``minictr run``: bridge against ``--network none``, side by side.

Every round runs ``busybox true`` four ways, alternating:

- CLI, none:    ``minictr run --network none busybox true``
- CLI, bridge:  ``minictr run busybox true`` (the default network) after an
  untimed ``network prune`` took its bridge down: the pyroute2 import (in a
  thread, while the child sets up), a lease, the bridge and its nftables
  elements, the veth pair, eth0's address and route;
- API, none / API, bridge: ``container.run()`` from a warm interpreter, where
  pyroute2 is imported once (as in a notebook kernel), the bridge pruned first too;
- CLI and API, bridge already up: the default network's bridge stays up
  between containers (as docker0), so only the container's own veth, lease
  and address come and go — what every run but a host's first pays.

It prints the medians, the difference bridge - none (target: at most 30 ms
added) and the ratio. Nothing is sent anywhere: the containers only start.

    sudo .venv/bin/python benchmarks/network_start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import subprocess
import time

from common import medians, minictr_command, report, timed, workspace

from minictr.engine.container import run
from minictr.engine.run_options import RunOptions


def timed_api(network: str, data_root: str, state_root: str) -> float:
    """Seconds ``container.run()`` takes in this (warm) interpreter."""
    started = time.perf_counter()
    done = run(
        "busybox", ["true"], RunOptions(network=network), data_root=data_root, state_root=state_root, capture=True
    )
    elapsed = time.perf_counter() - started
    if done.exit_code != 0:
        raise RuntimeError(f"true exited {done.exit_code}: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with workspace() as (_work, data_root, state_root):
        minictr = minictr_command(data_root, state_root)
        try:
            cli_none = [*minictr, "run", "--rm", "--network", "none", "busybox", "true"]
            cli_bridge = [*minictr, "run", "--rm", "busybox", "true"]
            prune = [*minictr, "network", "prune"]
            results = medians({
                "cli-none": lambda: timed(cli_none),
                "cli-bridge": lambda: (subprocess.run(prune, check=True, capture_output=True), timed(cli_bridge))[1],
                "api-none": lambda: timed_api("none", data_root, state_root),
                "api-bridge": lambda: (subprocess.run(prune, check=True, capture_output=True),
                                       timed_api("bridge", data_root, state_root))[1],
            }, args.runs)  # fmt: skip
            keeper = run(
                "busybox", ["sleep", "3600"], RunOptions(detach=True), data_root=data_root, state_root=state_root
            )
            try:
                results.update(medians({
                    "cli-up": lambda: timed(cli_bridge),
                    "api-up": lambda: timed_api("bridge", data_root, state_root),
                }, args.runs))  # fmt: skip
            finally:
                subprocess.run([*minictr, "kill", keeper.id], capture_output=True)
        finally:
            subprocess.run([*minictr, "network", "prune"], capture_output=True)
    labels = {
        "cli-none": "CLI: minictr run --network none busybox true",
        "cli-bridge": "CLI: minictr run busybox true (bridge brought up)",
        "api-none": "API, warm: container.run(network='none')",
        "api-bridge": "API, warm: container.run(network='bridge'), bridge brought up",
        "cli-up": "CLI: minictr run busybox true, bridge already up",
        "api-up": "API, warm: bridge, bridge already up",
    }
    report(labels, results, args.runs)
    for kind in ("cli", "api"):
        for bridge, what in (("bridge", "bridge"), ("up", "bridge already up")):
            added = (results[f"{kind}-{bridge}"] - results[f"{kind}-none"]) * 1000
            ratio = results[f"{kind}-{bridge}"] / results[f"{kind}-none"]
            print(f"{kind.upper()}: {what} - none = {added:+.2f} ms (target <= +30 ms), ratio {ratio:.2f}x")


if __name__ == "__main__":
    main()
