"""``create`` + ``start`` of /bin/true from a busybox bundle: minictr-oci against runc, in one run.

Both runtimes get the same bundle (``runc spec``'s config, a copy of the
busybox image as ``rootfs``, ``/bin/true`` as the program). Each round
times ``create`` and ``start`` for each runtime, alternately; ``delete
--force`` follows untimed. It prints the medians, the ratio minictr-oci /
runc, and where minictr-oci's time goes: create and start apart, and a bare
interpreter start for scale.

    sudo .venv/bin/python benchmarks/oci_start.py [--runs 20]

Measured on the 2-core development VM while other sessions ran root tests
(load average 1.5-2.5), alternating rounds, medians in ms:

                                           create+start  create  start   runc   ratio
    before, as last reported (every
      module compiled at each start*)          169.9      113.8   54.1   38.2   4.45x
    before, byte-compiled                      150.6      104.5   43.7   36.8   4.10x
    after the import cuts                      123.6       92.4   30.9   34.9   3.54x
    and the early first process, two runs      127.6       93.1   33.2   36.9   3.46x
      (the host slower then: a bare            153.9      109.8   44.7   41.9   3.67x
      ``python -S`` took 12 ms, not 7-8)

    * the environment set PYTHONDONTWRITEBYTECODE and the source tree had
      no bytecode; the benchmarks now byte-compile the package first, as
      installing it does.

What each change gave: each commit's tree in turn, 12 alternating rounds
of create + start (``python -c`` calling the command's ``main``: without
the console script's own ``re``), median wall / user CPU ms:

    before                                                         160.7 / 109.5
    state.json a plain class (dataclasses imports inspect, ast,
      dis: 5-6 ms); shutil, cgroup Stats, datetime only where
      used; only the verb's own parser built                       129.4 /  78.2
    sha256 without OpenSSL, no ipaddress (the engine's path)       128.2 /  87.0
    argparse without shutil (its help width loads zlib, bz2, lzma) 119.7 /  72.5
    one sha256 helper (the seccomp cache too), shutil off the run  122.4 /  80.2
    the first process's interpreter started before ``create``
      makes the cgroup: its start and imports overlap that work    116.8 /  75.7

User CPU moves by +-8 ms between such rounds on this shared host; the last
change, measured alone (30 rounds against the tree before it), took create
+ start from 119.6 to 112.2 ms of wall time for the same CPU (75.6 and
77.2 ms): the work is the same, overlapped.

``python -X importtime`` (minimum of 5): the imports of ``start`` went from
27.7 to 17.9 ms, those of ``create``'s command from 35.8 to 24.8 ms.
Looked at and left: checking and validating the spec takes 0.3 ms and
``start`` only parses state.json again (0.03 ms), so neither deferring the
validation nor sharing work between ``create`` and ``start`` would pay;
dropping ``socket.py`` from the first process (for ``_socket``) would save
~2.5 ms of its imports.

The floor. A create + start runs three interpreters: ``create``'s and
``start``'s commands (a console script with ``site``: ~12 ms each to start
here) and the container's first process (``-S -s -E``: ~8 ms), which runs
from a sealed memfd copy of the interpreter so that a container cannot
overwrite the host's Python through ``/proc/self/exe`` (CVE-2019-5736) —
about 32 ms before the first import, against runc's whole ~35 ms. Then
imports: the console script's own ``re`` and with it ``enum`` (~5 ms;
pip's wrapper imports ``re``), argparse, json and the runtime's modules,
~18 ms in ``start`` and ~25 ms in ``create``'s command; in the first
process ~12 ms (``ctypes`` for the system calls and the package's own
modules), down from ~17 (see below). And the
kernel's work, which runc pays inside its 35 ms too: writing the first
process into the ten cgroup v1 hierarchies (10-18 ms of ``cgroup.procs``
writes here), the namespaces, mounts and pivot_root. ``-I`` for the first
process is no help: it would drop the working directory the child imports
minictr from, and ``-S -s -E`` already skip the rest (``-I -S`` starts no
faster than ``-S``). So 1.0x runc is out of reach for a runtime that starts
three interpreters; what is left is more overlap.

The first process's imports cut (no ``json``, ``socket``, ``enum``,
``signal``'s wrapper, ``array`` or ``runpy``: it is started with ``-c``, not
``-m``; messages to it are marshal, from it a small JSON writer; ``python
-S -c 'import minictr.runtime.process.child'`` ~39 -> ~23 ms, medians of 60
alternating runs), two runs of this script (load 2.1-2.7, 15 and 20 rounds):
create + start 137.5 and 107.2 ms against runc's 42.6 and 32.9 ms (3.23x,
3.26x; 3.5-3.7x before), ``create`` 95.0 and 77.7 ms, ``start`` 41.0 and
30.6 ms (``start`` runs no first process: unchanged).
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
        bare = statistics.median(_interpreter("-S") for _ in range(args.runs))
        with_site = statistics.median(_interpreter() for _ in range(args.runs))
    total = {name: statistics.median(c + s for c, s in values) for name, values in samples.items()}
    for name, values in samples.items():
        create = statistics.median(c for c, _ in values) * 1000
        start = statistics.median(s for _, s in values) * 1000
        print(
            f"{name:12} create+start median {total[name] * 1000:7.1f} ms"
            f"  (create {create:6.1f} ms, start {start:6.1f} ms) over {args.runs} runs"
        )
    print(
        f"a bare `python -S -c pass` takes {bare * 1000:.1f} ms, `python -c pass` (with site, as a console script"
        f" starts) {with_site * 1000:.1f} ms: create starts the command and the container's first process"
        " (-S), start the command"
    )
    print(f"ratio minictr-oci / runc: {total['minictr-oci'] / total['runc']:.2f}x")


def _interpreter(*flags: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, *flags, "-c", "pass"], check=True)
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
