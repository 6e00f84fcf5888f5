#!/usr/bin/env bash
# (b) The runbook's "Recovery After Failed Rollback" as written, for this bench stack only:
#   docker-compose down -v; docker system prune -f; docker volume prune -f
#   docker-compose up -d postgres; sleep 30; DROP DATABASE ...; CREATE DATABASE ...; psql < emergency_backup.sql
#   cp .env.emergency .env; cp docker-compose.emergency.yml docker-compose.yml
#   docker-compose up -d; sleep 120; ./ops/validate_p1.sh
# The two host-wide prunes are NOT run: they would destroy every other stack on this host (the
# reason the collection never does them). Everything else runs as written, sleeps included.
# Usage: seed.sh PROJECT_DIR    (SEED_SLEEP_DB, SEED_SLEEP_UP: the two sleeps, 30 and 120)
set -euo pipefail
dir=$1
cd "$dir"
docker compose down -v >/dev/null 2>&1
docker compose up -d postgres >/dev/null 2>&1
sleep "${SEED_SLEEP_DB:-30}"
docker compose exec -T postgres psql -q -U taylordash -d postgres \
  -c "DROP DATABASE IF EXISTS taylordash;" -c "CREATE DATABASE taylordash OWNER taylordash;" >/dev/null
docker compose exec -T postgres psql -q -U taylordash -d taylordash < emergency_backup.sql >/dev/null
cp .env.emergency .env
cp docker-compose.emergency.yml docker-compose.yml
docker compose up -d >/dev/null 2>&1
sleep "${SEED_SLEEP_UP:-120}"
./ops/validate_p1.sh >/dev/null
