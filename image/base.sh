#!/usr/bin/env bash
# The Python base image, built from Debian's packages (no registry needed):
# mmdebstrap makes a minimal bookworm with python3, podman imports it, and
# base/Containerfile adds a venv with an upgraded pip. Kept when present;
# FORCE=1 builds it again.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need podman mmdebstrap
if have_image "$BASE_IMAGE" && [ "${FORCE:-0}" != 1 ]; then
    echo "base image $BASE_IMAGE: present, kept (FORCE=1 to rebuild)"
    exit 0
fi
rootfs_tag="localhost/ingest-rootfs-python:$SUITE"
timed "base image $BASE_IMAGE: mmdebstrap + import" \
    rootfs "$rootfs_tag" python3 python3-venv python3-pip ca-certificates
timed "base image $BASE_IMAGE: venv + pip" \
    build "$BASE_IMAGE" "$IMAGE_DIR/base" --build-arg ROOTFS="$rootfs_tag"
