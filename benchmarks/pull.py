"""Pulling a multi-layer image from a registry on loopback: `minictr pull` next to `skopeo copy`.

A ~100 MB image of five or more layers of random data (made here, never
downloaded) is pushed to Debian's docker-registry on 127.0.0.1; then each
contender pulls it into an empty store, alternately, in one run:

- ``minictr pull --no-unpack``: download, verify, store (what skopeo does);
- ``skopeo copy docker://… oci:…``: the same into an OCI layout;
- ``minictr pull``: the same plus unpacking and verifying every layer (what ``run`` needs).

It prints the medians, the ratio minictr/skopeo, and minictr's peak memory
(max RSS) for the big image and for one with layers a tenth the size: it must
not grow with the layer size, because blobs are streamed.

    sudo .venv/bin/python benchmarks/pull.py [--runs 5] [--layers 5] [--mb 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import medians, minictr_command, workspace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import registry_server as rs  # the test suite's loopback registry


def random_image(layout: rs.Layout, name: str, layers: int, total_mb: int) -> None:
    """An image of ``layers`` layers of incompressible data, ``total_mb`` MB in all."""
    size = total_mb * 1_000_000 // layers
    tars = [(rs.tar_layer([(f"layer{i}/data", "file", os.urandom(size))]), "gzip") for i in range(layers)]
    layout.image(name, tars)


def run_measured(command: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS in kB) of one run of ``command``; it must succeed.

    The peak is the program's own high-water mark (VmHWM of its memory map
    after exec), read while it runs: rusage's maxrss would also count this
    benchmark's memory, which the child shared until its exec.
    """
    started = time.perf_counter()
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        try:
            with open(f"/proc/{child.pid}/status") as handle:
                peak = max([peak, *(int(line.split()[1]) for line in handle if line.startswith("VmHWM:"))])
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"{command[0]} failed with status {child.returncode}")
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--mb", type=int, default=100, help="total size of the image's layers")
    args = parser.parse_args()
    missing = rs.have_peers()
    if missing:
        sys.exit(f"benchmark needs {missing}")
    with workspace() as (work, _data_root, state_root):
        registry = rs.start_registry(os.path.join(work, "registry"))
        try:
            layout = rs.Layout(os.path.join(work, "layout"))
            random_image(layout, "big", args.layers, args.mb)
            random_image(layout, "small", args.layers, max(args.mb // 10, 1))
            for name in ("big", "small"):
                rs.skopeo_copy(f"oci:{layout.root}:{name}", f"docker://{registry.host}/bench/{name}:1")
            big = f"{registry.host}/bench/big:1"
            peaks: dict[str, int] = {}

            def fresh() -> str:
                return tempfile.mkdtemp(dir=work, prefix="pull-")

            def minictr(unpack: bool, reference: str = big, key: str = "") -> float:
                place = fresh()
                flags = [] if unpack else ["--no-unpack"]
                seconds, peak = run_measured(minictr_command(place, state_root, "pull", "-q", *flags, reference))
                if key:
                    peaks[key] = max(peaks.get(key, 0), peak)
                shutil.rmtree(place)
                return seconds

            def skopeo() -> float:
                place = fresh()
                seconds, _ = run_measured(
                    ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{big}", f"oci:{place}/layout:big"]
                )
                shutil.rmtree(place)
                return seconds

            contenders = {
                "minictr": lambda: minictr(False, key="big"),
                "skopeo": skopeo,
                "unpack": lambda: minictr(True),
            }
            results = medians(contenders, args.runs)
            minictr(False, f"{registry.host}/bench/small:1", key="small")
        finally:
            registry.stop()
    labels = {
        "minictr": "minictr pull --no-unpack (download + verify)",
        "skopeo": "skopeo copy docker://… oci:…",
        "unpack": "minictr pull (download + verify + unpack)",
    }
    width = max(len(label) for label in labels.values())
    print(f"image: {args.layers} layers, {args.mb} MB of random data, from docker-registry on loopback")
    for name, label in labels.items():
        print(f"{label:{width}}  median {results[name]:7.3f} s over {args.runs} runs")
    print(f"ratio minictr/skopeo: {results['minictr'] / results['skopeo']:.2f}x (target <= 1.2x)")
    print(
        f"minictr peak memory: {peaks['big'] / 1024:.1f} MB pulling {args.mb} MB; "
        f"{peaks['small'] / 1024:.1f} MB pulling {max(args.mb // 10, 1)} MB "
        "(streamed: it must not grow with layer size)"
    )


if __name__ == "__main__":
    main()
