"""What the default protections cost at start-up: ``minictr run --network none busybox true``, three ways.

- default: Docker's capabilities, no_new_privs, the seccomp profile (built
  by libseccomp in the container's first process), masked and read-only paths;
- unconfined: the same without the seccomp filter (``--security-opt seccomp=unconfined``);
- privileged: none of it (``--privileged``: no filter, no masks, every capability).

Run alternately in one run; the script prints each median and the
difference default - privileged, the whole price of being secure by default.

    sudo .venv/bin/python benchmarks/security_start.py [--runs 30]
"""

from __future__ import annotations

import argparse

from common import medians, minictr_command, report, timed, workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with workspace() as (_work, data_root, state_root):
        base = [*minictr_command(data_root, state_root), "run", "--rm", "--network", "none"]
        commands = {
            "default": [*base, "busybox", "true"],
            "unconfined": [*base, "--security-opt", "seccomp=unconfined", "busybox", "true"],
            "privileged": [*base, "--privileged", "busybox", "true"],
        }
        results = medians({name: (lambda c=command: timed(c)) for name, command in commands.items()}, args.runs)
    report({name: f"minictr run --network none {name}" for name in commands}, results, args.runs)
    difference = (results["default"] - results["privileged"]) * 1000
    print(
        f"secure by default costs {difference:+.1f} ms per start "
        f"(seccomp alone {(results['default'] - results['unconfined']) * 1000:+.1f} ms)"
    )


if __name__ == "__main__":
    main()
