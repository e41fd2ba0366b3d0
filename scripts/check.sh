#!/usr/bin/env bash
# The checkers, configured in pyproject.toml: ruff's lint, ruff's format check and mypy (strict) over the package.
# scripts/test.sh runs this before the tests; run it alone for a quick verdict (needs the .venv of scripts/setup.sh).
# Every checker runs, so one run lists every finding; the exit status is non-zero if any of them failed.
#
# MINICTR_CHECK_FORMAT=0 skips the format check (and the line-length rule, E501, which the formatter mostly
# settles): for a tree that has not been through `ruff format` yet. The default, 1, is what CI runs.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=.venv/bin
status=0
paths=(minictr tests benchmarks scripts conftest.py)
if [ "${MINICTR_CHECK_FORMAT:-1}" = 0 ]; then
    echo "check: ruff check (E501 skipped: MINICTR_CHECK_FORMAT=0)"
    "$bin/ruff" check --extend-ignore E501 "${paths[@]}" || status=1
    echo "check: ruff format --check skipped (MINICTR_CHECK_FORMAT=0)"
else
    echo "check: ruff check"
    "$bin/ruff" check "${paths[@]}" || status=1
    echo "check: ruff format --check"
    "$bin/ruff" format --check "${paths[@]}" || status=1
fi
echo "check: mypy"
"$bin/mypy" || status=1
exit $status
