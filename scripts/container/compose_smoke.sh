#!/usr/bin/env bash
# compose.yaml, brought up with podman-compose and asked a Check (docs/container.md
# "compose.yaml"):
#
#   scripts/container/compose_smoke.sh
#
# Where postgres:15 cannot be pulled it builds PostgreSQL 15 from Debian packages
# (postgres.Containerfile on build_base.sh's image); with POSTGRES_IMAGE=postgres:15 it
# uses that. It then: builds the service image; makes development certificates;
# `podman-compose up`s the primary, the pg_basebackup standby and the service under a
# project name of its own, on a free loopback port; waits for the health checks; shows
# the standby streaming; asks Checks over TLS; and `podman-compose down -v`s it all.
# podman-compose comes from PyPI, into a venv under ~/.cache, if it is not on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/container/lib.sh

need_tools podman runc mmdebstrap openssl
if command -v podman-compose >/dev/null; then
  compose_bin="podman-compose"
else
  venv=${XDG_CACHE_HOME:-$HOME/.cache}/authz/podman-compose
  [[ -x $venv/bin/podman-compose ]] || {
    step "pip install podman-compose into $venv"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q podman-compose
  }
  compose_bin=$venv/bin/podman-compose
fi

project=authz-compose-$$
certs=$(mktemp -d)
chmod 0755 "$certs"  # the service runs as uid 10001 and reads the mounted files
# podman-compose runs plain `podman`: give it, through containers.conf, the runtime and
# rlimits that lib.sh passes as flags.
conf=$certs.containers.conf
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=4096:4096"]\n[engine]\nruntime = "%s"\n' \
  "$nofile" "$nofile" "$runtime" >"$conf"
export CONTAINERS_CONF=$conf AUTHZ_CERTS=$certs
AUTHZ_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AUTHZ_PORT
compose=("$compose_bin" --project-name "$project" --file compose.yaml)
cleanup() {
  "${compose[@]}" down --volumes --timeout 30 >/dev/null 2>&1 || true
  rm -rf "$certs" "$conf"
}
trap cleanup EXIT

build_images
"${podman[@]}" tag "$image" localhost/authz-service:local  # compose.yaml's image
if [[ -z ${POSTGRES_IMAGE:-} ]]; then
  POSTGRES_IMAGE=localhost/authz-postgres:15
  step "PostgreSQL 15 image from Debian packages ($POSTGRES_IMAGE)"
  "${build[@]}" --build-arg "BASE_IMAGE=$base" --tag "$POSTGRES_IMAGE" \
    --file scripts/container/postgres.Containerfile scripts/container
fi
export POSTGRES_IMAGE

step "podman-compose up (project $project, port $AUTHZ_PORT)"
scripts/container/dev_certs.sh "$certs" >/dev/null
"${compose[@]}" up --detach >/dev/null
primary=${project}_postgres_1
standby=${project}_postgres-replica_1
service=${project}_authz_1
wait_healthy "$primary"
wait_healthy "$standby"
wait_healthy "$service"
"${podman[@]}" logs "$service" 2>&1 | grep '^authz: listening'

step "the standby streams from the primary"
"${podman[@]}" exec "$primary" psql -U authz -d authz -Atc \
  "select 'primary sees: ' || application_name || ' ' || state || ' ' || sync_state from pg_stat_replication"
"${podman[@]}" exec "$standby" psql -U authz -d authz -Atc \
  "select 'standby in recovery: ' || pg_is_in_recovery()"

step "Checks through 127.0.0.1:$AUTHZ_PORT"
key=$("${podman[@]}" exec "$service" authz keys create --tenant demo --scopes check --name smoke 2>/dev/null)
checks "$AUTHZ_PORT" "$certs" "$key"
# The demo's writes reached the standby by streaming replication, and the service
# routes reads to it (its replica monitor logs the change of state).
"${podman[@]}" exec "$standby" psql -U authz -d authz -Atc \
  "select 'relationships on the standby: ' || count(*) from relationships"
"${podman[@]}" logs "$service" 2>&1 | grep -o 'replica [^"]*' | sort -u

step "podman-compose down"
"${compose[@]}" down --volumes --timeout 30 >/dev/null 2>&1
step "compose smoke passed"
