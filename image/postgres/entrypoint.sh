#!/bin/sh
# First start: a cluster in $PGDATA whose superuser is POSTGRES_USER (default postgres)
# with POSTGRES_PASSWORD, and the database POSTGRES_DB (default: the user's name);
# password authentication over TCP. Later starts find the cluster and only run it.
set -eu
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        pg_ctl --pgdata="$PGDATA" --silent --wait -o "-c listen_addresses=''" start
        createdb --username="$user" "$db"
        pg_ctl --pgdata="$PGDATA" --silent --wait stop
    fi
    echo "postgres-entrypoint: cluster made in $PGDATA (user $user, database $db)"
fi
if [ "${1:-}" = postgres ]; then
    shift
    exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
