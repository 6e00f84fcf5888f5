#!/usr/bin/env bash
# (b) The runbook's procedure as written (Emergency Service Rollback, for both services):
#   docker-compose stop; docker tag :previous :latest; docker-compose up -d; sleep 30; curl;
#   ./ops/validate_p1.sh
# Usage: seed.sh PROJECT_DIR PREFIX BACKEND_URL
set -euo pipefail
dir=$1 prefix=$2 backend=$3
cd "$dir"
docker compose stop backend frontend >/dev/null 2>&1
docker tag "${prefix}_backend:previous" "${prefix}_backend:latest"
docker tag "${prefix}_frontend:previous" "${prefix}_frontend:latest"
docker compose up -d backend frontend >/dev/null 2>&1
sleep "${SEED_SLEEP:-30}"
curl -sf "$backend" >/dev/null
./ops/validate_p1.sh >/dev/null
