"""What a bridge network adds to ``minictr run``: bridge against ``--network none``, side by side.

Every round runs ``busybox true`` four ways, alternating:

- CLI, none:    ``minictr run --network none busybox true``
- CLI, bridge:  ``minictr run busybox true`` (the default network): the
  pyroute2 import (in a thread, while the child sets up), a lease, the bridge
  and its nftables elements (it is the only member, so they come and go with
  it), the veth pair, eth0's address and route — and all of it taken down again;
- API, none / API, bridge: ``container.run()`` from a warm interpreter, where
  pyroute2 is imported once (as in a notebook kernel);
- CLI and API, bridge already up: the same while another container keeps the
  network up, so only the container's own veth, lease and address come and go.

It prints the medians, the difference bridge - none (target: at most 30 ms
added) and the ratio. Nothing is sent anywhere: the containers only start.

    sudo .venv/bin/python benchmarks/network_start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minictr.container import RunOptions, get_image, image_store, run, unpacked_rootfs  # noqa: E402


def timed(command: list[str]) -> float:
    """Seconds one run of ``command`` takes; it must succeed."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_api(network: str, data_root: str, state_root: str) -> float:
    """Seconds ``container.run()`` takes in this (warm) interpreter."""
    started = time.perf_counter()
    done = run("busybox", ["true"], RunOptions(network=network), data_root=data_root, state_root=state_root, capture=True)
    elapsed = time.perf_counter() - started
    if done.exit_code != 0:
        raise RuntimeError(f"true exited {done.exit_code}: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bridge networks need root: run this as root")
    work = tempfile.mkdtemp(prefix="minictr-bench-net-")
    try:
        data_root, state_root = os.path.join(work, "data"), os.path.join(work, "run")
        store = image_store(data_root)
        unpacked_rootfs(store, get_image(store, "busybox"))
        script = os.path.join(os.path.dirname(sys.executable), "minictr")
        base = [script] if os.path.exists(script) else [sys.executable, "-m", "minictr.cli"]
        base += ["--data-root", data_root, "--root", state_root, "run"]
        commands = {"cli-none": base + ["--network", "none", "busybox", "true"], "cli-bridge": base + ["busybox", "true"]}
        for command in commands.values():
            timed(command)  # warm the page cache, the .pyc files and the network's definition
        timed_api("none", data_root, state_root), timed_api("bridge", data_root, state_root)
        samples: dict[str, list[float]] = {name: [] for name in ("cli-none", "cli-bridge", "api-none", "api-bridge", "cli-up", "api-up")}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(timed(command))
            samples["api-none"].append(timed_api("none", data_root, state_root))
            samples["api-bridge"].append(timed_api("bridge", data_root, state_root))
        keeper = run("busybox", ["sleep", "3600"], RunOptions(detach=True), data_root=data_root, state_root=state_root)
        try:
            for _ in range(args.runs):
                samples["cli-up"].append(timed(commands["cli-bridge"]))
                samples["api-up"].append(timed_api("bridge", data_root, state_root))
        finally:
            subprocess.run([*base[:-1], "kill", keeper.id], capture_output=True)
        medians = {name: statistics.median(values) * 1000 for name, values in samples.items()}
        labels = {
            "cli-none": "CLI: minictr run --network none busybox true",
            "cli-bridge": "CLI: minictr run busybox true (bridge)",
            "api-none": "API, warm: container.run(network='none')",
            "api-bridge": "API, warm: container.run(network='bridge')",
            "cli-up": "CLI: minictr run busybox true, bridge already up",
            "api-up": "API, warm: bridge, bridge already up",
        }
        for name, label in labels.items():
            print(f"{label:48} median {medians[name]:8.2f} ms over {args.runs} runs")
        for kind in ("cli", "api"):
            for bridge, what in (("bridge", "bridge"), ("up", "bridge already up")):
                added = medians[f"{kind}-{bridge}"] - medians[f"{kind}-none"]
                ratio = medians[f"{kind}-{bridge}"] / medians[f"{kind}-none"]
                print(f"{kind.upper()}: {what} - none = {added:+.2f} ms (target <= +30 ms), ratio {ratio:.2f}x")
    finally:
        subprocess.run([*base[:-1], "network", "prune"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
