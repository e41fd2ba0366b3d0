#!/usr/bin/env bash
# Save, for the cells of a notebook tagged cgroup2-output, what a pure cgroup v2 host shows: the notebook is
# executed in the QEMU guest of scripts/cgroup2-vm.sh and those cells' outputs are copied into it. A learner on a
# current distribution (pure v2) must not read the v1 trees of a hybrid host as the norm; the other cells keep
# this host's outputs (the guest emulates its CPU: timings and throughput there mean nothing).
#   bash scripts/cgroup2-outputs.sh notebooks/07-cgroups.ipynb
# scripts/save-notebooks.sh calls it for every notebook that has such cells.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
notebook=$1
executed=$(mktemp)
trap 'rm -f "$executed"' EXIT
# In the guest: lo up (the kernel and Jupyter talk over 127.0.0.1); the network modules loaded by hand (the
# kernel's own module loader runs in the guest's initramfs, which has no modprobe); the output gzipped and in
# base64, one line, through the serial port. The command is one line: the guest's sh (dash) reads it.
MINICTR_VM_MEMORY=${MINICTR_VM_MEMORY:-1G} MINICTR_VM_TIMEOUT=${MINICTR_VM_TIMEOUT:-3000} \
    bash scripts/cgroup2-vm.sh sh -c 'ip link set lo up; '\
'for module in bridge veth nf_tables nft_chain_nat nft_nat nft_masq nft_fib_ipv4 nft_ct; do modprobe $module; done; '\
'cd "$(dirname "$1")" && ../.venv/bin/jupyter nbconvert --to notebook --execute --stdout '\
'--ExecutePreprocessor.timeout=1500 "$(basename "$1")" 2>/dev/null | gzip | base64 -w 0' sh "$notebook" > "$executed"
.venv/bin/python - "$notebook" "$executed" <<'PY'
import base64, gzip, json, sys

path, executed = sys.argv[1:]
with open(executed) as handle:
    guest = json.loads(gzip.decompress(base64.b64decode(handle.read().strip())))
with open(path) as handle:
    notebook = json.load(handle)
copied = 0
for cell, ran in zip(notebook["cells"], guest["cells"], strict=True):
    if "cgroup2-output" in cell.get("metadata", {}).get("tags", []):
        if ran["source"] != cell["source"]:
            sys.exit(f"{path}: the guest ran another version of a cgroup2-output cell")
        cell["outputs"] = [output for output in ran["outputs"] if output.get("output_type") != "error"]
        if len(cell["outputs"]) != len(ran["outputs"]):
            sys.exit(f"{path}: a cgroup2-output cell failed in the guest")
        copied += 1
with open(path, "w") as handle:
    json.dump(notebook, handle, indent=1, ensure_ascii=False)
    handle.write("\n")
print(f"{path}: {copied} cells with the outputs of a pure cgroup v2 host")
PY
