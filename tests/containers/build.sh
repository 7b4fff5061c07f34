#!/usr/bin/env bash
# Build the stand-in images that the Docker test backend uses on machines that cannot reach a
# container registry (see README.md here). An image is rebuilt only when its recipe changed:
# each carries the hash of this folder in the label org.shopstream.recipe.
#
#   tests/containers/build.sh            # base, postgres, moto
#   tests/containers/build.sh IMAGE...   # only these (base is built when missing)
#
# Prints the `export` lines for the image variables the tests read.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"

BASE_IMAGE=shopstream-standin/debian:bookworm
POSTGRES_IMAGE=shopstream-standin/postgres:15
MOTO_IMAGE=shopstream-standin/moto:5.1.18

log() { echo "containers: $*" >&2; }

recipe_hash() {
    (cd "$HERE" && find . -type f ! -name '*.md' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}
RECIPE="$(recipe_hash)"

current() {  # is image $1 built from this recipe?
    [ "$(docker image inspect -f '{{ index .Config.Labels "org.shopstream.recipe" }}' "$1" 2>/dev/null)" = "$RECIPE" ]
}

build_base() {
    if current "$BASE_IMAGE"; then log "$BASE_IMAGE is up to date"; return; fi
    command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
    local suite tarball
    suite="$(. /etc/os-release && echo "${VERSION_CODENAME:?this machine names no Debian suite}")"
    tarball="$(mktemp -d)/rootfs.tar"
    log "building $BASE_IMAGE: Debian $suite from this machine's apt sources"
    # The machine's own CA certificates go in too, so that pip and apt inside the image trust
    # whatever this machine trusts (some networks inspect TLS with a local CA).
    mmdebstrap --quiet --variant=minbase \
        --include=ca-certificates,python3,python3-venv,tini \
        --customize-hook='if [ -d /usr/local/share/ca-certificates ]; then cp -r /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/"; fi' \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        "$suite" "$tarball"
    docker import \
        --change "LABEL org.shopstream.recipe=$RECIPE" \
        --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        "$tarball" "$BASE_IMAGE" >/dev/null
    rm -rf "$(dirname "$tarball")"
}

build_from_dockerfile() {  # name folder
    if current "$1"; then log "$1 is up to date"; return; fi
    log "building $1 from tests/containers/$2"
    docker build --quiet --label "org.shopstream.recipe=$RECIPE" --build-arg "BASE=$BASE_IMAGE" \
        -t "$1" "$HERE/$2" >/dev/null
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(postgres moto)
build_base
for name in "${wanted[@]}"; do
    case "$name" in
        base) ;;
        postgres) build_from_dockerfile "$POSTGRES_IMAGE" postgres ;;
        moto) build_from_dockerfile "$MOTO_IMAGE" moto ;;
        *) echo "build.sh: unknown image '$name' (expected: base, postgres, moto)" >&2; exit 2 ;;
    esac
done

echo "export SHOPSTREAM_TEST_POSTGRES_IMAGE=$POSTGRES_IMAGE"
echo "export SHOPSTREAM_TEST_S3_IMAGE=$MOTO_IMAGE"
