# Shared by the image scripts (sourced, not run): where podman reads its settings,
# the CA bundle pip needs inside a build, and the names of the images.
# Every name can be overridden from the environment.

IMAGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$IMAGE_DIR")"

export CONTAINERS_CONF="${CONTAINERS_CONF:-$IMAGE_DIR/containers.conf}"
# Debian's standard bundle: mounted read-only into a build for pip, never copied in.
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
SUITE="${SUITE:-bookworm}"
BASE_IMAGE="${BASE_IMAGE:-localhost/ingest-base:$SUITE}"
IMAGE="${IMAGE:-localhost/ingest:latest}"
REDIS_IMAGE="${REDIS_IMAGE:-localhost/ingest-redis:$SUITE}"
POSTGRES_IMAGE="${POSTGRES_IMAGE:-localhost/ingest-postgres:$SUITE}"

need() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "error: $tool is missing (apt-get install podman runc mmdebstrap podman-compose)" >&2
            exit 1
        }
    done
}

have_image() { podman image exists "$1"; }

# rootfs TAG PACKAGE...: a minimal Debian with these packages, imported as TAG
# (ROOTFS_HOOK: one more mmdebstrap --customize-hook, run in the finished tree "$1").
rootfs() {
    local tag="$1"; shift
    local packages; packages="$(IFS=,; echo "$*")"
    mmdebstrap --quiet --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        ${ROOTFS_HOOK:+--customize-hook="$ROOTFS_HOOK"} \
        "$SUITE" - | podman import --quiet - "$tag" >/dev/null
}

# build TAG CONTEXT [podman build options...]: docker format keeps HEALTHCHECK.
build() {
    local tag="$1" context="$2"; shift 2
    podman build --quiet --format docker -v "$CA_BUNDLE:$CA_BUNDLE:ro" -t "$tag" "$@" "$context" >/dev/null
}

# timed LABEL COMMAND...: run it and print how long it took.
timed() {
    local label="$1"; shift
    local start; start=$(date +%s.%N)
    "$@"
    awk -v label="$label" -v start="$start" -v end="$(date +%s.%N)" \
        'BEGIN { printf "%s: %.1f s\n", label, end - start }' </dev/null
}
