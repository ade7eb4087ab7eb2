#!/usr/bin/env bash
# The container, built and run, in one command (docs/container.md "Smoke test"):
#
#   scripts/container/smoke.sh
#
# 1. installs podman, runc, slirp4netns and mmdebstrap if missing (Debian, as root);
# 2. makes the base image from Debian packages (build_base.sh) unless it exists
#    (SMOKE_REBUILD_BASE=1 remakes it);
# 3. builds the Dockerfile on it with podman;
# 4. runs the image with TLS (development certificates made for this run) against a
#    fresh database on the machine's PostgreSQL, published on a loopback port;
# 5. waits for its HEALTHCHECK to pass, creates an API key inside it, and asks Checks
#    through the published port with the image's own `authz check` as the client:
#    ALLOWED and DENIED over TLS, and a plaintext client refused;
# 6. stops it (graceful drain, exit status 0) and removes the container and its volume,
#    the database and the certificates. The images stay, so a second run reuses the
#    cached layers.
#
# PostgreSQL: $PGHOST:$PGPORT as $PGUSER (default 127.0.0.1:5432, postgres), trust auth.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/container/lib.sh

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
name=authz-smoke-$$
db=authz_smoke_$$
need_tools podman runc slirp4netns mmdebstrap openssl psql

certs=$(mktemp -d)
chmod 0755 "$certs"  # the service runs as uid 10001 and reads the mounted files
cleanup() {
  "${podman[@]}" rm --force --volumes --ignore "$name" >/dev/null 2>&1 || true
  psql -qc "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$certs"
}
trap cleanup EXIT

build_images

step "run with TLS against database $db"
scripts/container/dev_certs.sh "$certs" >/dev/null
psql -qc "create database $db"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# slirp4netns with allow_host_loopback: the container reaches the host's loopback (and
# so PostgreSQL listening there) at 10.0.2.2; its port 50051 is published on the host's
# loopback only. The image listens on 0.0.0.0 inside, so it must serve TLS.
"${run[@]}" --detach --name "$name" \
  --network slirp4netns:allow_host_loopback=true --publish "127.0.0.1:$port:50051" \
  --volume "$certs:/etc/authz/tls:ro" \
  --env "AUTHZ_DATABASE_URL=postgresql://$PGUSER@10.0.2.2:$PGPORT/$db" \
  --env AUTHZ_TLS_CERT=/etc/authz/tls/server.pem \
  --env AUTHZ_TLS_KEY=/etc/authz/tls/server-key.pem \
  --env AUTHZ_CLIENT_TLS_CA=/etc/authz/tls/ca.pem \
  --env AUTHZ_DEMO=true \
  "$image" >/dev/null

step "waiting for the HEALTHCHECK (podman healthcheck run)"
wait_healthy "$name"
"${podman[@]}" logs "$name" 2>&1 | grep '^authz: listening'

step "Checks through 127.0.0.1:$port"
key=$("${podman[@]}" exec "$name" authz keys create --tenant demo --scopes check --name smoke 2>/dev/null)
checks "$port" "$certs" "$key"

step "stop (drain) and clean up"
"${podman[@]}" stop --time 30 "$name" >/dev/null
status=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
echo "exit status $status"
((status == 0))
step "smoke passed"
