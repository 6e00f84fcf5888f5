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
alembic -c /app/alembic.ini upgrade head
exec python3 /app/server.py
