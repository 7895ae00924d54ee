#!/usr/bin/env bash
# Build Guardline's image from the repository's Dockerfile with buildah, on a machine that
# cannot reach Docker Hub (only the Debian mirror and PyPI).
#
#   scripts/build-image.sh [TAG]                     # TAG defaults to localhost/guardline:dev
#   EXTRAS=detoxify scripts/build-image.sh guardline:detoxify
#
# The Dockerfile is not changed and takes its usual base, python:3.11-slim-bookworm. If that
# image is neither in local storage nor pullable, a stand-in is built first and tagged with the
# same name: a minimal Debian 12 root filesystem made with mmdebstrap from the mirror apt uses
# (bookworm, bookworm-updates, bookworm-security), with Debian's own Python 3.11 (python3,
# python3-venv, python-is-python3) and the extras the official slim image has (ca-certificates,
# netbase, tzdata). It is a stand-in, not the official image: Debian's python 3.11.2 in /usr/bin
# rather than python.org's latest 3.11 in /usr/local/bin. Delete it (buildah rmi BASE_IMAGE) once
# the real one can be pulled.
#
# Needs root, buildah and mmdebstrap:
#   DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends buildah mmdebstrap
#
# Environment:
#   EXTRAS            the Dockerfile's EXTRAS build argument (default: none)
#   TORCH_INDEX_URL   the Dockerfile's TORCH_INDEX_URL build argument (default: the Dockerfile's)
#   BASE_IMAGE        the base (then passed as the PYTHON_IMAGE build argument); default
#                     docker.io/library/python:3.11-slim-bookworm, what the Dockerfile's
#                     FROM python:3.11-slim-bookworm resolves to
#   REBUILD_BASE=1    build the stand-in again even when BASE_IMAGE is present
#   CA_BUNDLE         a PEM bundle mounted read-only over the build containers' system bundle
#                     (/etc/ssl/certs/ca-certificates.crt) for RUN steps, e.g. the CA of a
#                     TLS-intercepting proxy; default $PIP_CERT when set. Not stored in the
#                     image. Python's ssl and Debian's pip (the stand-in's) read that file; the
#                     official image's pip may use its own certifi bundle instead.
#   BUILDAH_ISOLATION how RUN steps are isolated (default chroot)
#   BUILDAH_BUD_ARGS  more arguments for `buildah bud` (word-split)
set -euo pipefail

tag=${1:-localhost/guardline:dev}
base=${BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}
root=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "build-image: $*" >&2; exit 1; }
say() { echo "build-image: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (buildah and mmdebstrap need it here)"
command -v buildah >/dev/null || die "buildah missing: apt-get install buildah"

# RUN steps in a chroot on the host's network: no OCI runtime, cgroup or CNI setup needed
# (crun refuses this host's hybrid cgroups; netavark has no firewall tool to drive).
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The bookworm suites of the host's apt sources (main only), else deb.debian.org.
debian_sources() {
    local sources
    # shellcheck disable=SC2016  # apt-get's own $(FIELD) placeholders
    sources=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' \
        'Component: main' 2>/dev/null \
        | awk '$2 ~ /^bookworm(-updates|-security)?$/ {print "deb " $1 " " $2 " main"}' \
        | sort -u) || true
    if [ -z "$sources" ]; then
        sources=$(printf '%s\n' \
            "deb http://deb.debian.org/debian bookworm main" \
            "deb http://deb.debian.org/debian bookworm-updates main" \
            "deb http://deb.debian.org/debian-security bookworm-security main")
    fi
    printf '%s\n' "$sources"
}

build_stand_in() {
    command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap"
    local -a sources
    mapfile -t sources < <(debian_sources)
    say "building a stand-in for $base from: ${sources[*]}"
    # Trimmed like Docker's debian:*-slim (no docs but copyrights, no man pages, no locales).
    # shellcheck disable=SC2016  # "$1" is the hook's argument, the root directory
    mmdebstrap --variant=minbase --format=tar \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/groff/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --include=ca-certificates,netbase,tzdata,python3,python3-venv,python-is-python3 \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log' \
        bookworm "$work/rootfs.tar" "${sources[@]}"
    local ctr
    ctr=$(buildah from scratch)
    buildah add --quiet "$ctr" "$work/rootfs.tar" /
    buildah config \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 \
        --cmd python3 \
        --label io.guardline.base-stand-in="Debian bookworm python3 (scripts/build-image.sh)" \
        "$ctr"
    buildah commit --quiet --rm "$ctr" "$base" >/dev/null
    ctr=$(buildah from --pull=never "$base")
    local version
    version=$(buildah run "$ctr" python --version 2>&1) || die "stand-in: python fails: $version"
    buildah rm "$ctr" >/dev/null
    say "stand-in $base: $version"
}

if [ "${REBUILD_BASE:-0}" = 1 ]; then
    build_stand_in
elif buildah inspect --type image "$base" >/dev/null 2>&1; then
    say "using $base from local storage"
elif timeout 60 buildah pull --quiet "$base" >/dev/null 2>&1; then
    say "pulled $base"
else
    say "cannot pull $base"
    build_stand_in
fi

# A TLS-intercepting proxy: its CA bundle replaces the system bundle (a file every Debian-based
# base has, so the bind mount leaves no mount point behind in any layer) during RUN steps only.
mounts=()
ca=${CA_BUNDLE:-${PIP_CERT:-}}
if [ -n "$ca" ]; then
    [ -f "$ca" ] || die "CA_BUNDLE $ca: no such file"
    mounts+=(--volume "$(readlink -f "$ca"):/etc/ssl/certs/ca-certificates.crt:ro")
fi

args=(--pull=never --layers --force-rm --format docker --tag "$tag" --build-arg "EXTRAS=${EXTRAS:-}")
# Only a BASE_IMAGE given here overrides the Dockerfile's FROM (its PYTHON_IMAGE argument).
[ -z "${BASE_IMAGE:-}" ] || args+=(--build-arg "PYTHON_IMAGE=$base")
[ -z "${TORCH_INDEX_URL+set}" ] || args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
# shellcheck disable=SC2206
[ -z "${BUILDAH_BUD_ARGS:-}" ] || args+=($BUILDAH_BUD_ARGS)

say "buildah bud ${args[*]} ${mounts[*]} $root"
start=$(date +%s)
buildah bud "${args[@]}" "${mounts[@]}" "$root"
say "built $tag in $(($(date +%s) - start)) s"
buildah images "$tag"
