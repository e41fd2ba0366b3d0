#!/usr/bin/env bash
# Make the Debian base image minictr/debian:bookworm (FROM it in Dockerfiles): debootstrap's minbase
# variant from the apt mirror this host is configured with, imported as one layer. Root only; ~80 s.
# Its apt lists come from debootstrap, so `RUN apt-get install …` works where the mirror is reachable
# (on the default bridge network); the downloaded .deb files are dropped to keep the image small.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINICTR=${MINICTR:-.venv/bin/minictr}
name=${1:-minictr/debian:bookworm}
suite=${SUITE:-bookworm}
# The first Debian mirror apt uses here (deb822 .sources or one-line sources.list), or $MIRROR.
mirror=$({ grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list || true; } | grep -v security | sed -E 's/^URIs:\s*//; s/^deb (\[[^]]*\] )?//' | awk '{print $1; exit}')
mirror=${MIRROR:-$mirror}
if [ -z "$mirror" ]; then
    echo "debian-image: apt names no Debian mirror on this host; set MIRROR=URL (or MINICTR_DEBIAN_IMAGE=0 to skip)" >&2
    exit 1
fi
work=$(mktemp -d /var/tmp/minictr-debian.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "debian-image: debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 || { tail -20 "$work/log" >&2; exit 1; }
rm -f "$work"/root/var/cache/apt/archives/*.deb
"$MINICTR" import -m "debootstrap --variant=minbase $suite $mirror" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'CMD ["bash"]' "$work/root" "$name"
