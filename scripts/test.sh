#!/usr/bin/env bash
# Run the checkers (scripts/check.sh: ruff and mypy), then the whole test suite (unit, root integration,
# notebooks) after the same set-up as the lab, then the cgroup tests again on a pure cgroup v2 hierarchy, in a
# QEMU guest (scripts/cgroup2-vm.sh). A checker's finding fails the run, but the tests still run, so one run
# reports everything. Extra arguments go to the first pytest run only; the checkers and the guest run are
# skipped then.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINICTR_EXTRA_PACKAGES=scripts/test-packages.txt bash scripts/setup.sh
status=0
if [ $# -eq 0 ]; then
    bash scripts/check.sh || status=$?
fi
.venv/bin/python -m pytest tests notebooks --nbval-lax \
    --nbval-sanitize-with notebooks/nbval-sanitize.cfg -p no:cacheprovider "$@" || status=$?
if [ $# -eq 0 ]; then
    bash scripts/cgroup2-vm.sh || status=$?
fi
exit $status
