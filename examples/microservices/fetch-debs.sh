#!/usr/bin/env bash
# Download the Debian packages each service's image installs into SERVICE/debs/, so that `minictr compose build`
# works without a network and gives the same images each time.
#
# The host's own apt does the work, from the mirror the host already uses: it resolves the packages against the
# base image's dpkg status (not the host's), so it fetches exactly what the image lacks, dependencies included.
# Each Dockerfile then COPYs its debs/ and installs them with dpkg, offline. Run it again to take security updates.
#
#   bash fetch-debs.sh            # as root, once the base image exists (scripts/debian-image.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
repo=$(cd ../.. && pwd)
MINICTR=${MINICTR:-$( [ -x "$repo/.venv/bin/minictr" ] && echo "$repo/.venv/bin/minictr" || echo minictr )}
BASE=${BASE:-minictr/debian:bookworm}
declare -A PACKAGES=([web]="python3" [db]="redis-server" [lb]="nginx")

if ! "$MINICTR" image inspect "$BASE" >/dev/null 2>&1; then
    echo "fetch-debs: no $BASE image: make it with scripts/debian-image.sh" >&2
    exit 1
fi
# A flat apt repository of the .debs in $1: its Packages index, a sources.list naming it where the Dockerfile
# copies it (/tmp/debs), and an apt.conf that makes apt use that repository alone (APT_CONFIG=/tmp/debs/apt.conf).
index() {
    (
        cd "$1"
        for deb in *.deb; do
            dpkg-deb --field "$deb"
            printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$deb" "$(stat -c %s "$deb")" "$(sha256sum "$deb" | cut -d' ' -f1)"
        done >Packages
        echo 'deb [trusted=yes] file:/tmp/debs ./' >sources.list
        printf '%s\n' 'Dir::Etc::SourceList "/tmp/debs/sources.list";' 'Dir::Etc::SourceParts "/nonexistent";' \
            'Dir::State::Lists "/tmp/debs/lists";' 'Dir::Cache "/tmp/debs/cache";' >apt.conf
    )
}

work=$(mktemp -d /var/tmp/minictr-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state"
# What the base image has installed: apt plans against this, not against the host.
"$MINICTR" run --rm --network none "$BASE" cat /var/lib/dpkg/status >"$work/state/status"
touch "$work/state/extended_states"
for service in "${!PACKAGES[@]}"; do
    dest="$PWD/$service/debs"
    rm -rf "$dest" && mkdir -p "$dest/partial"
    # Dir::State::status: the image's; Dir::Cache::archives: where the .debs go; no lock on the host's dpkg.
    if ! apt-get install --download-only --yes --quiet --no-install-recommends \
            -o Dir::State::status="$work/state/status" -o Dir::State::extended_states="$work/state/extended_states" \
            -o Dir::Cache::archives="$dest" -o Debug::NoLocking=1 \
            ${PACKAGES[$service]} >"$work/$service.log" 2>&1; then
        tail -20 "$work/$service.log" >&2
        echo "fetch-debs: apt could not download ${PACKAGES[$service]} (run apt-get update first?)" >&2
        exit 1
    fi
    rm -rf "$dest/partial" "$dest/lock"
    index "$dest"
    echo "fetch-debs: $service: $(ls "$dest"/*.deb | wc -l) packages, $(du -sh "$dest" | cut -f1) (${PACKAGES[$service]})"
done
