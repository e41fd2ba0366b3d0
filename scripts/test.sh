#!/usr/bin/env bash
# Run the whole test suite (unit, root integration, notebooks) after the same set-up as the lab,
# then the cgroup tests again on a pure cgroup v2 hierarchy, in a QEMU guest (scripts/cgroup2-vm.sh).
# Extra arguments go to the first pytest run only; the guest run is skipped then.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINICTR_EXTRA_PACKAGES=scripts/test-packages.txt bash scripts/setup.sh
status=0
.venv/bin/python -m pytest tests notebooks --nbval-lax \
    --nbval-sanitize-with notebooks/nbval-sanitize.cfg -p no:cacheprovider "$@" || status=$?
if [ $# -eq 0 ]; then
    bash scripts/cgroup2-vm.sh || status=$?
fi
exit $status
