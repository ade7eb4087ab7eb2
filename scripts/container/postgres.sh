#!/bin/sh
# Entrypoint of compose.yaml's two PostgreSQL services, a primary and a streaming hot
# standby made from it with pg_basebackup:
#
#   postgres.sh primary    first start: initdb, the application database and user, a
#                          replication user; then serve, accepting replication
#   postgres.sh replica    first start: pg_basebackup from $PRIMARY_HOST into a physical
#                          replication slot; then serve read-only, streaming from it
#
# It does its own initialisation rather than the official image's entrypoint, so that
# the same compose file runs on postgres:15 and on an image made from Debian's
# postgresql-15 package where no registry is reachable (postgres.Containerfile).
# Runs as the postgres user, with PGDATA, POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
# REPLICATION_USER, REPLICATION_PASSWORD (and, for the replica, PRIMARY_HOST).
set -eu

PATH="/usr/lib/postgresql/15/bin:$PATH"
: "${PGDATA:=/var/lib/postgresql/data}"
: "${REPLICATION_USER:=replicator}"

primary() {
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
      --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    # Other containers connect over the compose network, with passwords.
    cat >>"$PGDATA/pg_hba.conf" <<HBA
host all all all scram-sha-256
host replication $REPLICATION_USER all scram-sha-256
HBA
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
      --set=db="$POSTGRES_DB" --set=ruser="$REPLICATION_USER" \
      --set=rpass="$REPLICATION_PASSWORD" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I', :'db') WHERE :'db' <> 'postgres' \gexec
CREATE ROLE :"ruser" WITH REPLICATION LOGIN PASSWORD :'rpass';
SQL
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c wal_level=replica
}

replica() {
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # depends_on's service_healthy is not honoured by every runner (podman-compose on
    # podman before 4.6 starts the services at once): wait for the primary here. Its
    # initialisation serves on the socket only, so it answers once it is ready.
    until pg_isready --quiet --host="$PRIMARY_HOST" --dbname=postgres; do sleep 1; done
    # -R writes primary_conninfo and standby.signal: the copy starts as a hot standby.
    # The slot keeps the primary's WAL until the standby has it.
    PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup --host="$PRIMARY_HOST" \
      --username="$REPLICATION_USER" --pgdata="$PGDATA" --wal-method=stream \
      --write-recovery-conf --create-slot --slot="${REPLICATION_SLOT:-replica1}"
    chmod 0700 "$PGDATA"
  fi
  exec postgres -D "$PGDATA" -c listen_addresses='*' -c hot_standby=on
}

case "${1:-}" in
  primary) primary ;;
  replica) replica ;;
  *) echo "usage: postgres.sh primary|replica" >&2; exit 2 ;;
esac
