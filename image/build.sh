#!/usr/bin/env bash
# `make image`: the service image from the lock, on the Debian base (built first
# when missing, image/base.sh). BASE=python:3.11-slim uses that image instead,
# where a registry is reachable.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need podman
if [ -z "${BASE:-}" ]; then
    "$IMAGE_DIR/base.sh"
    BASE="$BASE_IMAGE"
fi
timed "service image $IMAGE on $BASE" build "$IMAGE" "$REPO_DIR" --build-arg BASE="$BASE"
podman image inspect --format "service image $IMAGE: {{.Size}} bytes" "$IMAGE"
