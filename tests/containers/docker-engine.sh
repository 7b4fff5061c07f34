#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io and start dockerd when none does.
# For CI machines that come without one; on a developer's machine an engine is already running.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null; then
    echo "docker-engine: installing Debian's docker.io" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    log=/var/log/shopstream-dockerd.log
    echo "docker-engine: starting dockerd (log: $log)" >&2
    setsid dockerd >"$log" 2>&1 </dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
fi
docker info >/dev/null 2>&1 || { echo "docker-engine: dockerd did not come up; see $log" >&2; exit 1; }
echo "docker-engine: $(docker version --format 'engine {{.Server.Version}}')" >&2
