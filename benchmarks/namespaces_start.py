"""Start-up cost of a container with its own mount, uts, ipc, pid and network namespaces, next to runc.

Every run starts /bin/true from the same unpacked busybox root, alternating:

- minictr (a): the CLI, ``minictr run --network none busybox true``, with a
  prepared data root (it also gets a cgroup namespace, its default, and an
  overlayfs root of its own, as every ``minictr run`` does);
- minictr (b): the Python API from a warm interpreter, ``spawn()`` of an
  ``isolated_spec`` with exactly the five namespaces on a prepared root
  (no overlay), then ``start()`` and ``wait()``. Like runc it makes a cgroup
  for the container (every v1 hierarchy and the cgroup2 tree, as runc does
  here; no limits), places the first process in it and removes it after the
  exit, and gives the process runc's capabilities (``runc spec``'s three:
  bounding, effective, permitted and ambient sets): all inside the timing;
- runc: ``runc run`` of a bundle made from ``runc spec`` (whose namespaces are
  the same five), edited to match what minictr does: the same root by
  absolute path and read-write, /bin/true without a terminal, no masked or
  read-only paths, no /sys/fs/cgroup, no rlimits, no device rules.

Until the cgroup and the capabilities were added to (b), runc did more than
the API did (a cgroup in every hierarchy, capability drops); now both do
the same work, and neither has seccomp, masked paths or limits. The CLI (a)
does more than either (an overlay root, seccomp, masked paths, a cgroup
namespace, state and ``--rm``): its ratio is the price of all that.

The script prints the median of each and the ratios to runc ((b): target <= 1.0).
The image is built and unpacked, and every command run once, before timing starts.

    sudo .venv/bin/python benchmarks/namespaces_start.py [--runs 30]

Measured on the 2-core development VM (load average 1.7, 20 runs): the CLI
127.0 ms (4.71x runc), the Python API 31.3 ms against ``runc run``'s
27.0 ms (1.16x; target <= 1.0); once the CLI started the container's first
process ahead (load 1.7 again): the CLI 115.7 ms (3.94x), the API 32.8 ms
against 29.4 ms (1.12x), the API then without a cgroup or capabilities.

Then the first process's imports were cut (no json, socket, enum, signal's
wrapper, array or runpy: ~39 ms -> ~23 ms to import, a bare interpreter
~11 ms). The API as it was measured before (no cgroup), four alternating
pairs of runs of the old and the new tree (load 2.8-3.2), medians of 20:
old 32.5-38.3 ms (0.92-1.12x runc), new 22.0-30.4 ms (0.67-0.88x).

With the cgroup and capabilities runc's run has (this script now; load
2.9-3.1, 20 runs, two runs): the API 40.0 and 41.2 ms against runc's 23.0
and 24.5 ms (1.74x, 1.68x); the CLI 126.1 and 123.5 ms. The difference is
the cgroup: making it takes ~1.5 ms and removing it ~0.9 ms, but placing
the first process in it takes ~11 ms, nearly all of it the first write to
a v1 ``cgroup.procs``, which waits for an RCU grace period (the kernel's
cgroup_threadgroup_rwsem; the nine writes after it take ~0.03 ms each).
runc waits as long, but writes the pid of its bootstrap process right after
starting it, so the wait overlaps that process's own start-up; minictr
places PID 1 after it forked, with the child waiting. Overlapping the wait
(placing the interpreter early, as runc does) would put the process that
waits for PID 1 in the container's cgroup, where it counts against
``--pids-limit`` and shows in ``ps``: a change to the process model, left
for its own review.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from common import busybox_rootfs, medians, minictr_command, report, timed, workspace

from minictr.engine.container_root import copy_tree
from minictr.kernel import cgroups
from minictr.runtime.process.parent import spawn
from minictr.runtime.spec import isolated_spec

NAMESPACES = ["mount", "uts", "ipc", "pid", "network"]


def timed_spawn(spec: dict, cgroup_path: str | None = None) -> float:
    """Seconds the Python API takes to create, start and wait for a container of ``spec``.

    With ``cgroup_path`` the container gets a cgroup there (made, joined, removed after), as runc's does.
    """
    started = time.perf_counter()
    manager = cgroups.new(cgroup_path) if cgroup_path else None
    if manager:
        manager.create({})
    try:
        process = spawn(spec, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cgroup=manager and manager.add)
        process.start()
        code = process.wait()
    finally:
        if manager:
            manager.destroy()
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
    runc = shutil.which("runc") or sys.exit("runc is not installed (apt-get install runc)")
    with workspace() as (work, data_root, state_root):
        bundle = os.path.join(work, "bundle")
        os.makedirs(bundle)
        rootfs = os.path.join(bundle, "rootfs")
        copy_tree(busybox_rootfs(data_root), rootfs)  # one root both runtimes share, outside minictr's cache
        runc_bundle(runc, bundle, rootfs)
        runc_root = os.path.join(work, "runc-state")
        cli = minictr_command(data_root, state_root, "run", "--rm", "--network", "none", "busybox", "true")
        spec = isolated_spec(rootfs, ["/bin/true"], namespaces=NAMESPACES, hostname="minictr")
        with open(os.path.join(bundle, "config.json")) as handle:
            spec["process"]["capabilities"] = json.load(handle)["process"]["capabilities"]  # runc's, for both
        runs = iter(range(1 << 30))
        api_runs = iter(range(1 << 30))

        def api_run() -> float:
            return timed_spawn(spec, cgroups.default_path(f"bench-{os.getpid()}-{next(api_runs)}"))

        def runc_run() -> float:
            return timed([runc, "--root", runc_root, "run", "--bundle", bundle, f"bench-{os.getpid()}-{next(runs)}"])

        results = medians({"cli": lambda: timed(cli), "api": api_run, "runc": runc_run}, args.runs)
        labels = {
            "cli": "minictr (a) CLI: minictr run --network none busybox true",
            "api": "minictr (b) Python API: cgroup + spawn(isolated_spec) + start + wait, warm, no overlay",
            "runc": "runc run (same rootfs, same five namespaces, a cgroup, the same capabilities)",
        }
        report(labels, results, args.runs)
        print(f"ratio minictr (a) CLI/runc: {results['cli'] / results['runc']:.2f}x")
        print(f"ratio minictr (b) API/runc: {results['api'] / results['runc']:.2f}x (target <= 1.0)")


if __name__ == "__main__":
    main()
