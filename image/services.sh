#!/usr/bin/env bash
# Redis and PostgreSQL images for compose (and tests/test_image.py) from Debian's
# redis-server and postgresql packages, when no registry is reachable. Kept when
# present; FORCE=1 builds them again.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need podman mmdebstrap
if ! have_image "$REDIS_IMAGE" || [ "${FORCE:-0}" = 1 ]; then
    timed "redis image $REDIS_IMAGE: mmdebstrap + import" \
        rootfs "localhost/ingest-rootfs-redis:$SUITE" redis-server
    timed "redis image $REDIS_IMAGE: finish" \
        build "$REDIS_IMAGE" "$IMAGE_DIR/redis" --build-arg ROOTFS="localhost/ingest-rootfs-redis:$SUITE"
else
    echo "redis image $REDIS_IMAGE: present, kept"
fi
if ! have_image "$POSTGRES_IMAGE" || [ "${FORCE:-0}" = 1 ]; then
    # The package's postinst makes a cluster "main" that the image never uses.
    ROOTFS_HOOK='rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main' \
        timed "postgres image $POSTGRES_IMAGE: mmdebstrap + import" \
        rootfs "localhost/ingest-rootfs-postgres:$SUITE" postgresql
    timed "postgres image $POSTGRES_IMAGE: finish" \
        build "$POSTGRES_IMAGE" "$IMAGE_DIR/postgres" --build-arg ROOTFS="localhost/ingest-rootfs-postgres:$SUITE"
else
    echo "postgres image $POSTGRES_IMAGE: present, kept"
fi
