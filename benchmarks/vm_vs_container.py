"""A busybox container against a small VM (QEMU, this host's kernel, a busybox initramfs), in one run.

Both run ``sh -c 'echo ready; exec sh'`` (see minictr/vm/measure.py, which
notebook 12 uses too) and are measured the same way:

- first line: from starting ``minictr run`` / QEMU to reading "ready";
- memory: the container's cgroup against QEMU's resident set, both idle;
- disk: the image's layers against the kernel image + initramfs (and a
  minimal Debian, computed from dpkg's database, for scale);
- CPU work: a busybox shell loop inside each and on the host (overhead in %);
- density: idle instances started one by one in a memory budget, bounded by
  a count of each (never more than the budget, and only while the host keeps
  twice the budget free).

KVM is used where a guest boots under it, software emulation (TCG) otherwise;
the first line says which. ``--svg FILE`` draws the figures.

    sudo .venv/bin/python benchmarks/vm_vs_container.py [--loops 100000] [--budget-mib 512] [--svg out.svg]
"""

from __future__ import annotations

import argparse

from common import workspace

from minictr.vm import measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=100_000, help="rounds of the shell loop (CPU work)")
    parser.add_argument("--rounds", type=int, default=3, help="timings of the loop; the best is shown")
    parser.add_argument("--memory-mib", type=int, default=measure.DEFAULT_MEMORY_MIB, help="each VM's RAM")
    parser.add_argument("--budget-mib", type=int, default=512, help="the memory budget of the density test")
    parser.add_argument("--containers", type=int, default=8, help="at most this many idle containers")
    parser.add_argument("--vms", type=int, default=4, help="at most this many idle VMs")
    parser.add_argument("--svg", help="write the figures as an SVG bar chart here")
    args = parser.parse_args()
    with workspace() as (_work, data_root, state_root):
        result = measure.compare(
            data_root, state_root, loops=args.loops, rounds=args.rounds, memory_mib=args.memory_mib
        )
        boxes, guests = measure.densities(
            data_root,
            state_root,
            budget_mib=args.budget_mib,
            containers=args.containers,
            vms=args.vms,
            memory_mib=args.memory_mib,
        )
    dense = measure.density_figure(boxes, guests)
    result.figures.append(dense)
    print(result.report())
    cpu = result.figure("CPU work")
    assert cpu.host is not None
    print(
        f"CPU overhead against the host: container {measure.cpu_overhead(cpu.container, cpu.host):+.1f} %, "
        f"VM {measure.cpu_overhead(cpu.vm, cpu.host):+.1f} %"
    )
    distribution, packages = measure.distribution_bytes()
    print(
        f"for scale: a minimal Debian ({packages} packages) is {distribution / 2**20:.0f} MiB, "
        f"{distribution / result.figure('disk').container:.0f}x the busybox image"
    )
    print(f"density: {dense.note}")
    if args.svg:
        from minictr.tutorial.vms import svg_figures

        with open(args.svg, "w") as handle:
            handle.write(svg_figures(result.figures))
        print(f"figures drawn in {args.svg}")


if __name__ == "__main__":
    main()
