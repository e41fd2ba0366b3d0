#!/usr/bin/env bash
# Open the tutorial: set everything up, then JupyterLab on 127.0.0.1 with the notebooks, as root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
[ "$(id -u)" = 0 ] || echo "lab: not root - most notebooks need root (sudo $0)" >&2
exec .venv/bin/jupyter lab --ip 127.0.0.1 --port "${PORT:-8888}" --no-browser --allow-root \
    --notebook-dir notebooks "$@"
