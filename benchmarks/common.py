"""What every benchmark here shares: a prepared busybox data root, the minictr
command line, timing commands alternately and printing medians side by side.

Benchmarks are run as root from the repository, e.g.
``sudo .venv/bin/python benchmarks/namespaces_start.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minictr.engine.container_root import get_image, image_store, unpacked_rootfs


@contextlib.contextmanager
def workspace() -> Iterator[tuple[str, str, str]]:
    """(work dir, data root, state root) with the busybox image built and unpacked; removed afterwards."""
    if os.geteuid() != 0:
        sys.exit("benchmarks need root: run this as root")
    compile_package()
    work = tempfile.mkdtemp(prefix="minictr-bench-")
    try:
        data_root, state_root = os.path.join(work, "data"), os.path.join(work, "run")
        store = image_store(data_root)
        unpacked_rootfs(store, get_image(store, "busybox"))
        yield work, data_root, state_root
    finally:
        if os.path.isdir(os.path.join(state_root, "networks")):  # the default bridge outlives its containers
            subprocess.run(minictr_command(data_root, state_root, "network", "prune"), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def compile_package() -> None:
    """Byte-compile minictr, as installing it does: a run with ``PYTHONDONTWRITEBYTECODE`` set (or a source
    tree never imported as root) would otherwise compile every module on every start and time that instead."""
    import compileall

    package = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "minictr")
    compileall.compile_dir(package, quiet=1)


def busybox_rootfs(data_root: str) -> str:
    """The unpacked busybox root in ``data_root``."""
    store = image_store(data_root)
    return unpacked_rootfs(store, get_image(store, "busybox"))


def minictr_command(data_root: str, state_root: str, *args: str) -> list[str]:
    """The installed ``minictr`` script (as a user runs it) with these roots and arguments."""
    script = os.path.join(os.path.dirname(sys.executable), "minictr")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "minictr.cli"]
    return [*command, "--data-root", data_root, "--root", state_root, *args]


def timed(command: list[str]) -> float:
    """Seconds one run of ``command`` takes; it must succeed."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def medians(contenders: dict[str, Callable[[], float]], runs: int) -> dict[str, float]:
    """Run each contender once to warm caches, then ``runs`` rounds alternating; median seconds of each."""
    for measure in contenders.values():
        measure()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(runs):
        for name, measure in contenders.items():
            samples[name].append(measure())
    return {name: statistics.median(values) for name, values in samples.items()}


def report(labels: dict[str, str], results: dict[str, float], runs: int) -> None:
    """Print one line per contender: its label and median in milliseconds."""
    width = max(len(label) for label in labels.values())
    for name, label in labels.items():
        print(f"{label:{width}}  median {results[name] * 1000:8.2f} ms over {runs} runs")
