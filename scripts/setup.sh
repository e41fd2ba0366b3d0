#!/usr/bin/env bash
# Shared set-up of scripts/lab.sh and scripts/test.sh: Debian packages, a
# virtual environment with minictr installed editable, the offline busybox image
# and (where debootstrap is installed) the Debian base image.
# Safe to run again: each step does only what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages() { grep -hv '^\s*#' "$@" | tr -s ' \n' ' '; }
wanted=$(packages binder/apt.txt ${MINICTR_EXTRA_PACKAGES:-})
missing=()
for p in $wanted; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: please install these packages (as root): apt-get install ${missing[*]}" >&2
    fi
fi

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: minictr needs Python >= 3.11 ($PYTHON is $("$PYTHON" -V 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# compat mode: a plain path in a .pth file, not an import hook that costs every start-up
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[lab,test]' --config-settings editable_mode=compat

# The offline image every notebook starts from (built once, kept in /var/lib/minictr). Asked by name: a
# pipe into grep -q would break (SIGPIPE) under pipefail and rebuild it every time.
if [ "$(id -u)" = 0 ]; then
    .venv/bin/minictr image inspect busybox >/dev/null 2>&1 || .venv/bin/minictr image build-busybox
fi

# The Debian base image Dockerfiles start FROM (minictr/debian:bookworm, made once by
# scripts/debian-image.sh from the configured apt mirror; MINICTR_DEBIAN_IMAGE=0 skips it).
if [ "$(id -u)" = 0 ] && [ "${MINICTR_DEBIAN_IMAGE:-1}" != 0 ] && command -v debootstrap >/dev/null; then
    .venv/bin/minictr image inspect minictr/debian:bookworm >/dev/null 2>&1 || bash scripts/debian-image.sh \
        || echo "setup: no Debian image (see above); Dockerfiles can still start FROM busybox" >&2
    # The capstone's Debian packages (examples/microservices/*/debs), fetched once by the host's apt so that
    # its images build offline (notebook 11).
    if .venv/bin/minictr image inspect minictr/debian:bookworm >/dev/null 2>&1 \
            && ! ls examples/microservices/{web,db,lb}/debs/Packages >/dev/null 2>&1; then
        bash examples/microservices/fetch-debs.sh \
            || echo "setup: no packages for examples/microservices (see above); notebook 11 will be skipped" >&2
    fi
fi
