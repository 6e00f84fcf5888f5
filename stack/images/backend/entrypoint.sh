#!/bin/bash
# Backend start-up: wait for the database (bounded), migrate to this build's head, serve.
set -euo pipefail
cd /app
if [ "${TD_FAULTS_ENABLED:-0}" = 1 ] && [ "${TD_FAULT:-none}" = crash ]; then
    exec python3 /app/server.py   # exits at once: the crash-loop fault
fi
deadline=$((SECONDS + ${TD_DB_WAIT_SECONDS:-60}))
until pg_isready -q -h "${TD_DB_HOST:-127.0.0.1}" -p "${TD_DB_PORT:-5432}"; do
    if (( SECONDS >= deadline )); then
        echo "backend: database not ready after ${TD_DB_WAIT_SECONDS:-60}s" >&2
        exit 1
    fi
    sleep 0.2
done
# `alembic upgrade head` changes nothing on a database already at this build's head, but it costs a
# third of a second of CPU at every start (most starts: a recreate or a rollback onto the same
# schema). Ask the database first; anything else (no table yet, another revision, no answer) migrates.
current=$(PGPASSWORD="${TD_DB_PASSWORD:-}" psql -X -q -t -A -w -h "${TD_DB_HOST:-127.0.0.1}" -p "${TD_DB_PORT:-5432}" \
    -U "${TD_DB_USER:-taylordash}" -d "${TD_DB_NAME:-taylordash}" -c 'SELECT version_num FROM alembic_version' 2>/dev/null || true)
if [ -s /app/alembic_head ] && [ "$current" = "$(cat /app/alembic_head)" ]; then
    echo "backend: database already at this build's head ($current)" >&2
else
    alembic -c /app/alembic.ini upgrade head
fi
exec python3 /app/server.py
