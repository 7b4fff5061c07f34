#!/usr/bin/env bash
# Remove the containers that a killed earlier test run left behind, before a new run starts.
#
# The image test's stacks copy `astro dev start`'s `restart: unless-stopped`: when a run is killed
# before its `docker compose down` (a CI time-out, a stopped machine), the engine starts their
# Airflow services again when it starts, and those loop through restarts (their database is gone)
# for as long as the next run lasts, on the same cores as its tests. The end-to-end tests'
# containers carry org.shopstream.test-session=<pytest's pid>: those whose pytest is gone go too.
# For a machine that runs no image test of this project's at the same time: CI (.ci/run).
set -euo pipefail

project="${SHOPSTREAM_COMPOSE_PROJECT:-shopstream-image-test}"
mapfile -t leftovers < <(
    docker ps --all --format '{{.ID}} {{.Label "com.docker.compose.project"}}' \
        | awk -v p="$project" '$2 == p || index($2, p "-") == 1 { print $1 }'
    docker ps --all --format '{{.ID}} {{.Label "org.shopstream.test-session"}}' \
        --filter label=org.shopstream.test-session \
        | while read -r id owner; do [ -d "/proc/$owner" ] || echo "$id"; done
)
if [ ${#leftovers[@]} -gt 0 ]; then
    echo "remove-leftovers: removing ${#leftovers[@]} containers of an earlier run" >&2
    docker rm --force --volumes "${leftovers[@]}" >/dev/null
fi
mapfile -t volumes < <(docker volume ls --quiet | awk -v p="$project" 'index($1, p "_") == 1 || index($1, p "-") == 1')
if [ ${#volumes[@]} -gt 0 ]; then
    docker volume rm "${volumes[@]}" >/dev/null
fi
mapfile -t networks < <(docker network ls --format '{{.Name}}' | awk -v p="$project" 'index($1, p "_") == 1 || index($1, p "-") == 1')
if [ ${#networks[@]} -gt 0 ]; then
    docker network rm "${networks[@]}" >/dev/null
fi
