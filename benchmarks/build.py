"""Building a Dockerfile: `minictr build` next to `podman build`, cold and fully cached, in one run.

Both build the same Dockerfile (three RUN steps, a COPY of a few hundred
files, config instructions) from the same base: minictr's offline busybox
image, given to podman with ``podman import`` (its root as a tar). podman
runs with its own storage in a temporary directory, and with what this
machine needs (``--runtime runc``; ulimits the bounding set allows). Both
RUN steps use ``--network none``, so neither pays for network set-up.

- cold: ``--no-cache`` (every RUN in a container, every layer written);
- cached: the same build again with nothing changed (no container at all).

It prints the medians and the ratios minictr/podman (targets: <= 1.0 cold, <= 0.5 cached).

    sudo .venv/bin/python benchmarks/build.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from common import medians, minictr_command, report, timed, workspace

from minictr.engine.container_root import image_store

DOCKERFILE = """\
FROM {base}
ENV APP=/app
WORKDIR /app
RUN echo one > /one && mkdir -p /var/cache/x
COPY files/ /app/files/
RUN cat /app/files/* | wc -c > /app/count
LABEL purpose=benchmark
RUN rm -r /var/cache/x && echo done > /done
CMD ["cat", "/app/count"]
"""


def context(work: str, base: str) -> str:
    """A build context: the Dockerfile and 300 small files."""
    directory = os.path.join(work, f"context-{base.replace('/', '-').replace(':', '-')}")
    os.makedirs(os.path.join(directory, "files"))
    for number in range(300):
        with open(os.path.join(directory, "files", f"f{number:03}"), "w") as handle:
            handle.write(f"file {number}\n" * 20)
    with open(os.path.join(directory, "Dockerfile"), "w") as handle:
        handle.write(DOCKERFILE.format(base=base))
    return directory


def podman_base(podman: list[str], data_root: str, work: str) -> str:
    """busybox, from minictr's store, imported into podman's storage."""
    store = image_store(data_root)
    layer = store.blob_path(store.get("busybox").layers[0]["digest"])
    root = os.path.join(work, "busybox-root.tar.gz")
    shutil.copy(layer, root)
    change = ["--change", "ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin"]
    subprocess.run([*podman, "import", *change, root, "localhost/bench-busybox"],
                   check=True, capture_output=True)  # fmt: skip
    return "localhost/bench-busybox"


def unmount_below(path: str) -> None:
    """Unmount whatever podman's storage driver left mounted under ``path`` (deepest first)."""
    with open("/proc/self/mountinfo") as handle:
        targets = [line.split()[4] for line in handle if line.split()[4].startswith(path + "/")]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("podman"):
        sys.exit("podman is not installed (apt-get install podman)")
    with workspace() as (work, data_root, state_root):
        storage = os.path.join(work, "podman")
        podman = ["podman", "--root", os.path.join(storage, "root"), "--runroot", os.path.join(storage, "runroot"),
                  "--runtime", "runc", "--storage-driver", "overlay"]  # fmt: skip
        try:
            base = podman_base(podman, data_root, work)
            ours, theirs = context(work, "busybox"), context(work, base)
            build = ["build", "--network", "none"]
            limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
            contenders = {
                "minictr-cold": lambda: timed(
                    minictr_command(data_root, state_root, *build, "--no-cache", "-t", "bench:1", ours)
                ),
                "podman-cold": lambda: timed([*podman, *build, *limits, "--no-cache", "-t", "bench:1", theirs]),
                "minictr-cached": lambda: timed(minictr_command(data_root, state_root, *build, "-t", "bench:1", ours)),
                "podman-cached": lambda: timed([*podman, *build, *limits, "-t", "bench:1", theirs]),
            }
            results = medians(contenders, args.runs)
        finally:  # (not "system reset": it would also remove the host's podman networks)
            subprocess.run([*podman, "rmi", "--all", "--force"], capture_output=True)
            unmount_below(storage)
    report({name: f"{name.replace('-', ' build, ')}" for name in contenders}, results, args.runs)
    for kind, target in (("cold", 1.0), ("cached", 0.5)):
        ratio = results[f"minictr-{kind}"] / results[f"podman-{kind}"]
        print(f"{kind:6}: minictr/podman = {ratio:.2f} (target <= {target})")


if __name__ == "__main__":
    main()
