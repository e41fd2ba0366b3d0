#!/usr/bin/env bash
# Open the tutorial: set everything up, then JupyterLab on 127.0.0.1 with the notebooks, as root.
# binder/start gives a hosted session the same set-up; tests/test_browser.py starts the lab through this script
# (MINICTR_SKIP_SETUP=1: the test session has set up already).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ "${MINICTR_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh
[ "$(id -u)" = 0 ] || echo "lab: not root - most notebooks need root (sudo $0)" >&2
# the tutorial's JupyterLab settings (jupyter/README.md): no news prompt
export JUPYTER_CONFIG_PATH="$PWD/jupyter${JUPYTER_CONFIG_PATH:+:$JUPYTER_CONFIG_PATH}"
exec .venv/bin/jupyter lab --ip 127.0.0.1 --port "${PORT:-8888}" --no-browser --allow-root \
    --notebook-dir notebooks "$@"
