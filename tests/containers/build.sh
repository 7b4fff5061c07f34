#!/usr/bin/env bash
# Build the stand-in images that the Docker test backend and `make image-test` use on machines
# that cannot reach a container registry (see README.md here). An image is rebuilt only when
# its recipe changed: each carries a hash of its recipe in the label org.shopstream.recipe.
#
#   tests/containers/build.sh                 # postgres and moto (and the base they need)
#   tests/containers/build.sh NAME...         # base, postgres, moto, python, astro-runtime,
#                                             # astro-runtime-3, redis
#
# Prints `export` lines naming the images, for `eval "$(tests/containers/build.sh)"`.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PROJECT="$(cd "$HERE/../.." && pwd)"

BASE_IMAGE=shopstream-standin/debian:bookworm
POSTGRES_IMAGE=shopstream-standin/postgres:15
MOTO_IMAGE=shopstream-standin/moto:5.1.18
PYTHON_IMAGE=shopstream-standin/python:3.11
RUNTIME_IMAGE=shopstream-standin/astro-runtime:2.10.5-python-3.11
# Airflow 3.3 (the Airflow 3 profile, Dockerfile.airflow3): the runtime's -base distribution.
RUNTIME3_IMAGE=shopstream-standin/astro-runtime:3.3.2-python-3.11-base
REDIS_IMAGE=shopstream-standin/redis:7
BASE_PACKAGES=ca-certificates,python3,python3-venv,tini

log() { echo "containers: $*" >&2; }

hash_of() {  # files or folders -> short hash of their contents
    find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sed "s|$HERE/||" | sha256sum | cut -c1-16
}

current() {  # image, recipe hash: is the image built from this recipe?
    [ "$(docker image inspect -f '{{ index .Config.Labels "org.shopstream.recipe" }}' "$1" 2>/dev/null)" = "$2" ]
}

SUITE="$(. /etc/os-release && echo "${VERSION_CODENAME:?this machine names no Debian suite}")"
BASE_RECIPE="$(echo "$SUITE $BASE_PACKAGES" | sha256sum | cut -c1-16)"

build_base() {
    if current "$BASE_IMAGE" "$BASE_RECIPE"; then log "$BASE_IMAGE is up to date"; return; fi
    command -v mmdebstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null; }
    local workdir
    workdir="$(mktemp -d)"
    log "building $BASE_IMAGE: Debian $SUITE from this machine's apt sources"
    # The machine's own CA certificates go in too, so that pip and apt inside the images trust
    # what this machine trusts (some networks inspect TLS with a local CA).
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
        --customize-hook='if [ -d /usr/local/share/ca-certificates ]; then cp -r /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/"; fi' \
        --customize-hook='chroot "$1" update-ca-certificates >/dev/null 2>&1' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        "$SUITE" "$workdir/rootfs.tar"
    docker import \
        --change "LABEL org.shopstream.recipe=$BASE_RECIPE" \
        --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        "$workdir/rootfs.tar" "$BASE_IMAGE" >/dev/null
    rm -rf "$workdir"
}

build_folder() {  # image folder [extra build-context files...]
    local image="$1" folder="$HERE/$2" context recipe
    shift 2
    context="$(mktemp -d)"
    cp -r "$folder/." "$context/"
    [ $# -eq 0 ] || cp "$@" "$context/"
    recipe="$( (echo "$BASE_RECIPE"; hash_of "$context") | sha256sum | cut -c1-16)"
    if current "$image" "$recipe"; then
        log "$image is up to date"
    else
        log "building $image from tests/containers/$(basename "$folder")"
        docker build --quiet --label "org.shopstream.recipe=$recipe" --build-arg "BASE=$BASE_IMAGE" \
            -t "$image" "$context" >/dev/null
    fi
    rm -rf "$context"
}

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(postgres moto)
build_base
for name in "${wanted[@]}"; do
    case "$name" in
        base) ;;
        postgres) build_folder "$POSTGRES_IMAGE" postgres ;;
        moto) build_folder "$MOTO_IMAGE" moto ;;
        python) build_folder "$PYTHON_IMAGE" python ;;
        astro-runtime) build_folder "$RUNTIME_IMAGE" astro-runtime ;;
        astro-runtime-3) build_folder "$RUNTIME3_IMAGE" astro-runtime-3 "$PROJECT/requirements-airflow3.lock" ;;
        redis) build_folder "$REDIS_IMAGE" redis ;;
        *) echo "build.sh: unknown image '$name' (expected: base, postgres, moto, python, astro-runtime, astro-runtime-3, redis)" >&2; exit 2 ;;
    esac
done

cat <<EXPORTS
export SHOPSTREAM_TEST_POSTGRES_IMAGE=$POSTGRES_IMAGE
export SHOPSTREAM_TEST_S3_IMAGE=$MOTO_IMAGE
export SHOPSTREAM_POSTGRES_IMAGE=$POSTGRES_IMAGE
export SHOPSTREAM_S3_IMAGE=$MOTO_IMAGE
export SHOPSTREAM_PYTHON_IMAGE=$PYTHON_IMAGE
export SHOPSTREAM_RUNTIME_STAND_IN=$RUNTIME_IMAGE
export SHOPSTREAM_RUNTIME3_STAND_IN=$RUNTIME3_IMAGE
export SHOPSTREAM_REDIS_IMAGE=$REDIS_IMAGE
EXPORTS
