#!/bin/bash
# PostgreSQL 15 for the reference stack, like the official image: on first start initdb with
# TD_DB_USER as superuser (password TD_DB_PASSWORD; the image's ready-made cluster when that user is
# the one it was made for) and create TD_DB_NAME; then run the server
# on 127.0.0.1:TD_DB_PORT. Local socket connections are trusted (the seed's
# `docker compose exec postgres psql -U taylordash` relies on that); TCP needs the password.
set -euo pipefail
: "${TD_DB_USER:=taylordash}" "${TD_DB_NAME:=taylordash}" "${TD_DB_PORT:=5432}"
: "${TD_DB_PASSWORD:?TD_DB_PASSWORD must be set}"
export PGDATA=/var/lib/postgresql/data
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    template=/opt/pgtemplate
    if [ -s "$template/data/PG_VERSION" ] && [ "$(cat "$template/user")" = "$TD_DB_USER" ]; then
        # The cluster the image was built with, for this superuser: copied with PG_VERSION last, so
        # that a copy cut short is copied again at the next start, never taken for a cluster.
        (cd "$template/data" && tar -cf - --exclude=./PG_VERSION .) | (cd "$PGDATA" && tar -xpf -)
        cp -p "$template/data/PG_VERSION" "$PGDATA/PG_VERSION"
        set_password=1
    else
        pwfile=$(mktemp)
        printf '%s\n' "$TD_DB_PASSWORD" >"$pwfile"
        chown postgres "$pwfile"
        make-cluster "$PGDATA" "$TD_DB_USER" "$pwfile"
        rm -f "$pwfile"
        set_password=0
    fi
    # fsync=off for this set-up server only, as make-cluster's --no-sync: nothing to protect yet.
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c port=$TD_DB_PORT -c fsync=off" -w start >/dev/null
    if [ "$set_password" = 1 ]; then
        # On standard input, not in a command line that ps would show; quotes doubled for SQL.
        printf "ALTER ROLE \"%s\" PASSWORD '%s';\n" "$TD_DB_USER" "${TD_DB_PASSWORD//\'/\'\'}" \
            | as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$TD_DB_PORT" -U "$TD_DB_USER" -d postgres >/dev/null
    fi
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$TD_DB_PORT" -U "$TD_DB_USER" -d postgres \
        -c "CREATE DATABASE \"$TD_DB_NAME\" OWNER \"$TD_DB_USER\""
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres: initialised $PGDATA" >&2
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" \
    -c listen_addresses=127.0.0.1 -c port="$TD_DB_PORT" -c jit=off \
    -c unix_socket_directories=/var/run/postgresql -c log_min_messages=warning
