#!/usr/bin/env bash
# (a) The floor: the same steps as raw docker commands, with a tight health poll.
# Usage: floor.sh PROJECT_DIR PREFIX BACKEND_URL FRONTEND_URL
set -euo pipefail
dir=$1 prefix=$2 backend=$3 frontend=$4
for service in backend frontend; do
    docker tag "${prefix}_${service}:previous" "${prefix}_${service}:latest"
done
docker compose --project-directory "$dir" up -d --no-deps --pull never backend frontend >/dev/null 2>&1
deadline=$((SECONDS + 60))
for url in "$backend" "$frontend"; do
    until curl -sf -o /dev/null --max-time 1 "$url"; do
        (( SECONDS < deadline )) || { echo "floor: $url not healthy" >&2; exit 1; }
        sleep 0.02
    done
done
