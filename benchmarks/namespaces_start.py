"""Start-up cost of a container with its own mount, uts, ipc, pid and network namespaces, next to runc.

Every run starts /bin/true from the same unpacked busybox root, alternating:

- minictr (a): the CLI, ``minictr run --network none busybox true``, with a
  prepared data root (it also gets a cgroup namespace, its default, and an
  overlayfs root of its own, as every ``minictr run`` does);
- minictr (b): the Python API from a warm interpreter, ``spawn()`` of an
  ``isolated_spec`` with exactly the five namespaces on a prepared root
  (no overlay), then ``start()`` and ``wait()``;
- runc: ``runc run`` of a bundle made from ``runc spec`` (whose namespaces are
  the same five), edited to match what minictr does: the same root by
  absolute path and read-write, /bin/true without a terminal, no masked or
  read-only paths, no /sys/fs/cgroup, no rlimits, no device rules. runc still
  makes a cgroup for each container: that is part of its cost.

The script prints the median of each and the ratio minictr (a)/runc (target <= 1.0).
The image is built and unpacked, and every command run once, before timing starts.

    sudo .venv/bin/python benchmarks/namespaces_start.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minictr.container import copy_tree, get_image, image_store, unpacked_rootfs  # noqa: E402
from minictr.process.parent import spawn  # noqa: E402
from minictr.spec import isolated_spec  # noqa: E402

NAMESPACES = ["mount", "uts", "ipc", "pid", "network"]


def timed(command: list[str]) -> float:
    """Seconds one run of ``command`` takes; it must succeed."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_spawn(spec: dict) -> float:
    """Seconds the Python API takes to create, start and wait for a container of ``spec``."""
    started = time.perf_counter()
    process = spawn(spec, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    process.start()
    code = process.wait()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"/bin/true exited {code}")
    return elapsed


def runc_bundle(runc: str, bundle: str, rootfs: str) -> None:
    """Write ``<bundle>/config.json``: ``runc spec``, edited to do what minictr does."""
    subprocess.run([runc, "spec", "--bundle", bundle], check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as handle:
        config = json.load(handle)
    config["root"] = {"path": rootfs, "readonly": False}
    config["process"].update(terminal=False, args=["/bin/true"], noNewPrivileges=False)
    config["process"].pop("rlimits", None)
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    for key in ("maskedPaths", "readonlyPaths", "resources", "seccomp"):
        config["linux"].pop(key, None)
    kinds = {ns["type"] for ns in config["linux"]["namespaces"]}
    if kinds != {"mount", "uts", "ipc", "pid", "network"}:
        raise RuntimeError(f"runc spec made namespaces {sorted(kinds)}: expected the five of this benchmark")
    with open(path, "w") as handle:
        json.dump(config, handle, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("namespaces need root here: run this as root")
    runc = shutil.which("runc") or next((p for p in ("/usr/sbin/runc", "/usr/bin/runc") if os.path.exists(p)), None)
    if runc is None:
        sys.exit("runc is not installed (apt-get install runc)")
    work = tempfile.mkdtemp(prefix="minictr-bench-")
    try:
        data_root, state_root = os.path.join(work, "data"), os.path.join(work, "run")
        store = image_store(data_root)
        image_rootfs = unpacked_rootfs(store, get_image(store, "busybox"))
        rootfs = os.path.join(work, "rootfs")  # one copy, shared by runc and minictr (b)
        copy_tree(image_rootfs, rootfs)
        bundle = os.path.join(work, "bundle")
        os.mkdir(bundle)
        runc_bundle(runc, bundle, rootfs)
        runc_root = os.path.join(work, "runc-state")

        script = os.path.join(os.path.dirname(sys.executable), "minictr")
        cli = [script] if os.path.exists(script) else [sys.executable, "-m", "minictr.cli"]
        cli += ["--data-root", data_root, "--root", state_root, "run", "--network", "none", "busybox", "true"]
        spec = isolated_spec(rootfs, ["/bin/true"], namespaces=NAMESPACES, hostname="minictr")
        runs = iter(range(1 << 30))
        runc_run = lambda: [runc, "--root", runc_root, "run", "--bundle", bundle, f"bench-{os.getpid()}-{next(runs)}"]  # noqa: E731

        timed(cli), timed_spawn(spec), timed(runc_run())  # warm the page cache and the .pyc files
        samples: dict[str, list[float]] = {"cli": [], "api": [], "runc": []}
        for _ in range(args.runs):
            samples["cli"].append(timed(cli))
            samples["api"].append(timed_spawn(spec))
            samples["runc"].append(timed(runc_run()))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        labels = {
            "cli": "minictr (a) CLI: minictr run --network none busybox true",
            "api": "minictr (b) Python API: spawn(isolated_spec) + start + wait, warm, no overlay",
            "runc": "runc run (same rootfs, same five namespaces)",
        }
        for name, label in labels.items():
            print(f"{label:80} median {medians[name] * 1000:8.2f} ms over {args.runs} runs")
        print(f"ratio minictr (a) CLI/runc: {medians['cli'] / medians['runc']:.2f}x (target <= 1.0)")
        print(f"ratio minictr (b) API/runc: {medians['api'] / medians['runc']:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
