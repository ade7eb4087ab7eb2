#!/usr/bin/env bash
# Make the container base image from Debian packages, without a registry:
# Debian 12 (bookworm) minbase plus Python 3.11, bootstrapped by mmdebstrap and imported
# into podman's local store as localhost/authz-base:bookworm (override with $1).
#
# It stands in for python:3.11-slim-bookworm, the Dockerfile's default base: the same
# Debian release and Python minor version, `python` on PATH, the venv module with pip.
# Needs root (or a working user namespace), mmdebstrap, podman, and the Debian mirror.
set -euo pipefail

image=${1:-localhost/authz-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# minbase: essential packages and apt, no init system. The python3 packages are those
# python:3.11-slim-bookworm provides from its own build: interpreter, venv + pip wheels,
# CA certificates for pip to reach the index.
# Documentation, man pages and translations are left out, as in the slim images.
mmdebstrap \
  --variant=minbase \
  --include=python3,python3-venv,python-is-python3,ca-certificates \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$work/rootfs.tar" \
  "deb $mirror bookworm main" \
  "deb $mirror bookworm-updates main" \
  "deb $security bookworm-security main" \
  </dev/null

podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  "$work/rootfs.tar" "$image" >/dev/null
podman image inspect --format '{{.Id}} {{.Size}}' "$image"
