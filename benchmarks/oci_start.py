"""``create`` + ``start`` of /bin/true from a busybox bundle: minictr-oci against runc, in one run.

Both runtimes get the same bundle (``runc spec``'s config, a copy of the
busybox image as ``rootfs``, ``/bin/true`` as the program). Each round
times ``create`` and ``start`` for each runtime, alternately; ``delete
--force`` follows untimed. It prints the medians, the ratio minictr-oci /
runc, and where minictr-oci's time goes: create and start apart, and a bare
interpreter start for scale.

    sudo .venv/bin/python benchmarks/oci_start.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from common import busybox_rootfs, workspace


def bundle(work: str, data_root: str) -> str:
    """A bundle running /bin/true, made with ``runc spec``."""
    path = os.path.join(work, "bundle")
    os.mkdir(path)
    shutil.copytree(busybox_rootfs(data_root), os.path.join(path, "rootfs"), symlinks=True)
    subprocess.run(["runc", "spec"], cwd=path, check=True)
    config = os.path.join(path, "config.json")
    with open(config) as handle:
        spec = json.load(handle)
    spec["process"].update(terminal=False, args=["/bin/true"])
    with open(config, "w") as handle:
        json.dump(spec, handle)
    return path


def one_round(command: list[str], root: str, path: str, number: int) -> tuple[float, float]:
    """Seconds of create and of start for one container; deleted afterwards."""
    name = f"bench{number}"
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "check": True}
    began = time.perf_counter()
    subprocess.run([*command, "--root", root, "create", "--bundle", path, name], **quiet)  # type: ignore[call-overload]
    created = time.perf_counter()
    subprocess.run([*command, "--root", root, "start", name], **quiet)  # type: ignore[call-overload]
    started = time.perf_counter()
    subprocess.run([*command, "--root", root, "delete", "--force", name], **quiet)  # type: ignore[call-overload]
    return created - began, started - created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("runc") is None:
        sys.exit("runc is not installed: nothing to compare with")
    ours = os.path.join(os.path.dirname(sys.executable), "minictr-oci")
    contenders = {"minictr-oci": [ours], "runc": ["runc"]}
    with workspace() as (work, data_root, _state_root):
        path = bundle(work, data_root)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
        for number in range(args.runs + 1):  # the first round warms caches and is dropped
            for name, command in contenders.items():
                measured = one_round(command, os.path.join(work, name), path, number)
                if number:
                    samples[name].append(measured)
        bare = statistics.median(_interpreter() for _ in range(args.runs))
    total = {name: statistics.median(c + s for c, s in values) for name, values in samples.items()}
    for name, values in samples.items():
        create = statistics.median(c for c, _ in values) * 1000
        start = statistics.median(s for _, s in values) * 1000
        print(
            f"{name:12} create+start median {total[name] * 1000:7.1f} ms"
            f"  (create {create:6.1f} ms, start {start:6.1f} ms) over {args.runs} runs"
        )
    print(
        f"a bare `python -S -c pass` takes {bare * 1000:.1f} ms"
        " (minictr-oci starts two: the CLI and the container's first process)"
    )
    print(f"ratio minictr-oci / runc: {total['minictr-oci'] / total['runc']:.2f}x")


def _interpreter() -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
