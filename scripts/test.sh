#!/usr/bin/env bash
# Run the whole test suite (unit, root integration, notebooks) after the same set-up as the lab.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINICTR_EXTRA_PACKAGES=scripts/test-packages.txt bash scripts/setup.sh
exec .venv/bin/python -m pytest tests notebooks --nbval-lax \
    --nbval-sanitize-with notebooks/nbval-sanitize.cfg -p no:cacheprovider "$@"
