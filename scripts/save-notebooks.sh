#!/usr/bin/env bash
# Execute notebooks top to bottom and save them with their outputs, as they are committed:
# no per-cell execution timings, no widget state. As root, after scripts/setup.sh. Cells tagged
# cgroup2-output then get what a pure cgroup v2 host shows (scripts/cgroup2-outputs.sh, a QEMU guest).
#   bash scripts/save-notebooks.sh notebooks/06-network.ipynb [...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -gt 0 ] || set -- notebooks/[0-9][0-9]-*.ipynb
for notebook in "$@"; do
    echo "executing $notebook"
    (cd "$(dirname "$notebook")" && ../.venv/bin/jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.timeout=600 "$(basename "$notebook")" 2>/dev/null)
    .venv/bin/python - "$notebook" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as handle:
    notebook = json.load(handle)
notebook["metadata"].pop("widgets", None)
for cell in notebook["cells"]:
    cell.get("metadata", {}).pop("execution", None)
with open(path, "w") as handle:
    json.dump(notebook, handle, indent=1, ensure_ascii=False)
    handle.write("\n")
PY
    if grep -q '"cgroup2-output"' "$notebook"; then
        bash scripts/cgroup2-outputs.sh "$notebook"
    fi
done
