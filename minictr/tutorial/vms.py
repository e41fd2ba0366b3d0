"""12 · containers vs virtual machines: this host drawn, the measurements as bars, and the density exercise.

The measurements themselves live in :mod:`minictr.vm.measure` (the benchmark
``benchmarks/vm_vs_container.py`` uses them too); here they are only drawn.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from minictr.tutorial.checking import Verdict, printed_by, raised, returned_none, run_in_child
from minictr.tutorial.pictures import APP, HARDWARE, HYPER, KERNEL, LIB, _arrowhead, _box, _svg, _text

if TYPE_CHECKING:
    from minictr.vm.measure import Comparison, Figure

CONTAINER_BAR, VM_BAR, HOST_BAR = "#2a9d8f", "#e76f51", "#8d99ae"


def svg_this_host(comparison: Comparison) -> str:
    """What ran on this host: the VM's stack (payload, guest kernel, QEMU) beside the container's (payload only)."""
    host = os.uname().release
    accel = "KVM: guest code on the CPU" if comparison.accel == "kvm" else "TCG: guest code translated"
    body = [_text(180, 20, "the VM", size=15, bold=True), _text(540, 20, "the container", size=15, bold=True)]
    body.append(_box(30, 34, 300, 30, APP, "sh (busybox): the payload"))
    body.append(_box(30, 70, 300, 30, LIB, "initramfs: /init, busybox"))
    body.append(_box(30, 106, 300, 30, KERNEL, f"guest kernel {comparison.kernel}", bold=True))
    body.append(_box(30, 142, 300, 30, HYPER, f"QEMU process ({accel})", size=11))
    body.append(_box(390, 106, 300, 30, APP, "sh (busybox): the payload"))
    body.append(_box(390, 142, 300, 30, LIB, "namespaces + a cgroup: minictr", size=11))
    body.append(_box(30, 182, 660, 30, KERNEL, f"this host's kernel {host}", bold=True))
    body.append(_box(30, 218, 660, 30, HARDWARE, "this machine's CPUs and memory"))
    body.append(_text(360, 268, "two kernels on the left, one on the right", size=12, italic=True))
    return _svg(720, 278, body)


def _value(figure: Figure, value: float) -> str:
    from minictr.vm.measure import _shown

    return _shown(value, figure.unit)


def svg_figures(figures: list[Figure]) -> str:
    """One panel per figure: a bar for the container, one for the VM (and the host's, for CPU work), to scale."""
    body: list[str] = []
    y = 10
    for figure in figures:
        bars = [("container", figure.container, CONTAINER_BAR), ("VM", figure.vm, VM_BAR)]
        if figure.host is not None:
            bars.insert(0, ("host", figure.host, HOST_BAR))
        top = max(value for _, value, _ in bars) or 1
        how = "more fit" if figure.more_is_better else "less is better"
        body.append(_text(10, y + 14, f"{figure.name} ({how})", size=13, bold=True, anchor="start"))
        body.append(
            _text(
                710,
                y + 14,
                f"{figure.ratio:,.1f}x",
                size=13,
                bold=True,
                anchor="end",
                fill=CONTAINER_BAR if figure.ratio >= 1 else VM_BAR,
            )
        )
        for index, (label, value, colour) in enumerate(bars):
            row = y + 22 + index * 20
            width = max(1.0, 430 * value / top)
            body.append(_text(90, row + 13, label, size=11, anchor="end"))
            body.append(f'<rect x="96" y="{row}" width="{width:.1f}" height="16" fill="{colour}"/>')
            body.append(_text(102 + width, row + 13, _value(figure, value), size=11, anchor="start"))
        y += 32 + 20 * len(bars)
    return _svg(720, y + 4, body)


def svg_orchestration() -> str:
    """Who calls whom: Kubernetes' kubelet over the CRI, containerd, a shim per container, the OCI runtime."""
    body = [_arrowhead("down", "#444")]
    steps = [
        ("kubelet (Kubernetes, one per node)", "#fff", "CRI: gRPC — RunPodSandbox, CreateContainer…"),
        ("containerd (or CRI-O): images, snapshots", LIB,
         "ttrpc: one shim per container (RuntimeClass picks its handler)"),
        ("containerd-shim-runc-v2: holds the container's stdio and exit", HYPER,
         "exec: create, start, kill, delete + a bundle"),
        ("OCI runtime: runc, crun, minictr-oci, runsc (gVisor), kata", KERNEL,
         "clone, unshare, pivot_root, cgroups, execve"),
        ("the container: a process of this kernel", APP, ""),
    ]  # fmt: skip
    for index, (label, colour, arrow) in enumerate(steps):
        y = 10 + index * 62
        body.append(_box(150, y, 420, 32, colour, label, size=12, bold=index == 3))
        if arrow:
            body.append(f'<line x1="360" y1="{y + 32}" x2="360" y2="{y + 60}" stroke="#444" marker-end="url(#down)"/>')
            body.append(_text(372, y + 50, arrow, size=11, anchor="start", italic=True, fill="#555"))
    body.append(_text(20, 130, "ctr run", size=12, bold=True, anchor="start"))
    body.append(_text(20, 146, "enters here", size=11, anchor="start", italic=True))
    body.append('<line x1="95" y1="136" x2="146" y2="88" stroke="#444" marker-end="url(#down)"/>')
    return _svg(720, 10 + 5 * 62 - 20, body)


# --- exercise: density_ratio ----------------------------------------------------------------------


def check_density_ratio(function: Callable[[int, list[int], list[int]], float]) -> None:
    """Run ``function(budget, container_sizes, vm_sizes)`` in a child process; print ✔ or what is wrong."""
    judge_density_ratio(function).show()


CASES: list[tuple[int, list[int], list[int], float]] = [
    (512 << 20, [256 << 10] * 4, [200 << 20] * 2, 1024.0),
    (100, [30, 30, 30], [40, 60], 1.5),
    (1000, [100, 300], [450], 2.5),
]


def judge_density_ratio(function: Callable[[int, list[int], list[int]], float]) -> Verdict:
    """``density_ratio`` must give (containers that fit) / (VMs that fit), each as whole instances at the mean size."""
    name = function.__name__
    for budget, boxes, vms, expected in CASES:
        report = run_in_child(function, budget, boxes, vms)
        printed = printed_by(report)
        if "error" in report:
            return Verdict(False, printed + raised(name, report["error"]))
        value = report.get("value")
        call = f"{name}({budget}, {boxes}, {vms})"
        if value is None:
            return Verdict(False, printed + returned_none(call))
        if not isinstance(value, (int, float)):
            return Verdict(False, printed + f"✘ {call} returned a {report.get('type')}; expected a number.")
        if abs(value - expected) > 1e-6 * expected:
            hint = _hint(value, expected, budget, boxes, vms)
            return Verdict(False, printed + f"✘ {call} returned {value!r}; expected {expected!r}." + hint)
    return Verdict(True, "✔ Correct: whole instances at the mean size, containers over VMs — the density ratio above.")


def _hint(value: Any, expected: float, budget: int, boxes: list[int], vms: list[int]) -> str:
    """Why a wrong answer is wrong, for the common mistakes."""
    mean_box, mean_vm = sum(boxes) / len(boxes), sum(vms) / len(vms)
    if value and abs(1 / value - expected) < 1e-6 * expected:
        return "\n  Upside down: containers that fit divided by VMs that fit."
    if abs(value - (budget / mean_box) / (budget / mean_vm)) < 1e-6 * expected:
        return "\n  A part of an instance does not run: round each count down (budget // mean size)."
    if abs(value - (budget // boxes[0]) / (budget // vms[0])) < 1e-6 * expected:
        return "\n  Use the mean of all the sizes measured, not the first one."
    return "\n  Count each kind: budget // (sum(sizes) / len(sizes)); then divide containers by VMs."


SOLUTIONS = {
    "density_ratio": '''
        def density_ratio(budget, container_sizes, vm_sizes):
            """How many times more idle containers than VMs fit in `budget` bytes, from the sizes measured."""
            containers = budget // (sum(container_sizes) / len(container_sizes))  # whole instances only
            vms = budget // (sum(vm_sizes) / len(vm_sizes))
            return containers / vms
    ''',
}
