"""Start-up cost of `minictr run --isolation chroot busybox true` next to `chroot ROOTFS /bin/true`.

Both run the same program from the same unpacked busybox root, alternating, in
one run; the script prints the median of each and the ratio minictr/chroot.
The image is built and unpacked before timing starts.

    sudo .venv/bin/python benchmarks/chroot_start.py [--runs 30]
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

from minictr.container import get_image, image_store, unpacked_rootfs  # noqa: E402


def timed(command: list[str]) -> float:
    """Seconds one run of ``command`` takes; it must succeed."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("chroot needs root: run this as root")
    work = tempfile.mkdtemp(prefix="minictr-bench-")
    try:
        data_root, state_root = os.path.join(work, "data"), os.path.join(work, "run")
        store = image_store(data_root)
        rootfs = unpacked_rootfs(store, get_image(store, "busybox"))
        script = os.path.join(os.path.dirname(sys.executable), "minictr")
        minictr = [script] if os.path.exists(script) else [sys.executable, "-m", "minictr.cli"]
        minictr += ["--data-root", data_root, "--root", state_root, "run", "--isolation", "chroot", "busybox", "true"]
        chroot = [shutil.which("chroot") or "/usr/sbin/chroot", rootfs, "/bin/true"]
        timed(minictr), timed(chroot)  # warm the page cache and the .pyc files
        samples: dict[str, list[float]] = {"minictr": [], "chroot": []}
        for _ in range(args.runs):
            samples["minictr"].append(timed(minictr))
            samples["chroot"].append(timed(chroot))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        for name, value in medians.items():
            print(f"{name:8} median {value * 1000:8.2f} ms over {args.runs} runs")
        print(f"ratio minictr/chroot: {medians['minictr'] / medians['chroot']:.1f}x (target < 3x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
