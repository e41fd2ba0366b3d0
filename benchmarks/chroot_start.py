"""Start-up cost of `minictr run --isolation chroot busybox true` next to `chroot ROOTFS /bin/true`.

Both run the same program from the same unpacked busybox root, alternating, in
one run; the script prints the median of each and the ratio minictr/runtime/chroot.
The image is built and unpacked before timing starts.

    sudo .venv/bin/python benchmarks/chroot_start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil

from common import busybox_rootfs, medians, minictr_command, report, timed, workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with workspace() as (_, data_root, state_root):
        minictr = minictr_command(data_root, state_root, "run", "--rm", "--isolation", "chroot", "busybox", "true")
        chroot = [shutil.which("chroot") or "/usr/sbin/chroot", busybox_rootfs(data_root), "/bin/true"]
        results = medians({"minictr": lambda: timed(minictr), "chroot": lambda: timed(chroot)}, args.runs)
        report(
            {"minictr": "minictr run --isolation chroot busybox true", "chroot": "chroot ROOTFS /bin/true"},
            results,
            args.runs,
        )
        print(f"ratio minictr/runtime/chroot: {results['minictr'] / results['chroot']:.1f}x (target < 3x)")


if __name__ == "__main__":
    main()
