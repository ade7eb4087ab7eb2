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
# 6. stops it (graceful drain, exit status 0) and removes the container, the database
#    and the certificates. The images stay, so a second run reuses the cached layers.
#
# PostgreSQL: $PGHOST:$PGPORT as $PGUSER (default 127.0.0.1:5432, postgres), trust auth.
set -euo pipefail
cd "$(dirname "$0")/../.."

base=${SMOKE_BASE_IMAGE:-localhost/authz-base:bookworm}
image=${SMOKE_IMAGE:-localhost/authz-service:smoke}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
name=authz-smoke-$$
db=authz_smoke_$$
start=$SECONDS
step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }

missing=()
for tool in podman runc slirp4netns mmdebstrap openssl psql; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "smoke: needs ${missing[*]} (Debian: apt-get install podman runc slirp4netns mmdebstrap)" >&2
    exit 2
  fi
  packages=()
  for tool in "${missing[@]}"; do
    case $tool in psql) packages+=(postgresql-client) ;; *) packages+=("$tool") ;; esac
  done
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >/dev/null
fi

# runc, not podman's default crun: crun refuses a hybrid cgroup layout that has any
# controller on the v2 hierarchy (here: hugetlb), which runc accepts.
podman=(podman --runtime "${SMOKE_RUNTIME:-runc}")
# podman asks for rlimits above the hard limits of this shell (nofile 1048576 as root);
# raising them needs CAP_SYS_RESOURCE, which a sandboxed root may lack. Stay within them.
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=1048576
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)
# The periodic health check is a systemd timer, absent here: the smoke runs it itself.
run=("${podman[@]}" run "${limits[@]}" --health-interval=disable)

certs=$(mktemp -d)
chmod 0755 "$certs"  # the service runs as uid 10001 and reads the mounted files
cleanup() {
  "${podman[@]}" rm --force --ignore "$name" >/dev/null 2>&1 || true
  psql -qc "drop database if exists $db" >/dev/null 2>&1 || true
  rm -rf "$certs"
}
trap cleanup EXIT

if [[ ${SMOKE_REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$base"; then
  step "base image $base from Debian packages (mmdebstrap)"
  scripts/container/build_base.sh "$base"
fi

step "podman build -t $image ."
# The build's RUN steps share the host's network (pip reaches PyPI as the host does) and
# its CA bundle, mounted for the build only: an HTTPS proxy trusted by the host is then
# trusted by pip, and nothing of the host is left in the image.
"${podman[@]}" build --quiet --format docker "${limits[@]}" --network host \
  --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  --build-arg "PYTHON_IMAGE=$base" --tag "$image" .
"${podman[@]}" image inspect --format '{{.Id}} {{.Size}} bytes' "$image"

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
deadline=$((SECONDS + 120))
until "${podman[@]}" healthcheck run "$name" >/dev/null 2>&1; do
  if [[ $("${podman[@]}" inspect --format '{{.State.Running}}' "$name") != true ]] \
      || ((SECONDS > deadline)); then
    echo "smoke: the container did not become healthy" >&2
    "${podman[@]}" logs "$name" >&2
    exit 1
  fi
  sleep 1
done
"${podman[@]}" inspect --format 'health: {{.State.Health.Status}}' "$name"
"${podman[@]}" logs "$name" 2>&1 | grep '^authz: listening'

step "Checks through 127.0.0.1:$port"
key=$("${podman[@]}" exec "$name" authz keys create --tenant demo --scopes check --name smoke 2>/dev/null)
client=("${run[@]}" --rm --network host --volume "$certs:/etc/authz/tls:ro" "$image" check
        --server "127.0.0.1:$port" --api-key "$key" --tenant demo)
expect() {  # expect STATUS ARGS...: run the client, show its answer, demand the status
  local want=$1 got=0
  shift
  "${client[@]}" "$@" || got=$?
  if ((got != want)); then
    echo "smoke: exit status $got, expected $want" >&2
    exit 1
  fi
}
expect 0 --tls-ca /etc/authz/tls/ca.pem document:readme view user:alice
expect 1 --tls-ca /etc/authz/tls/ca.pem document:readme view user:mallory
echo "a plaintext client:"
expect 2 document:readme view user:alice

step "stop (drain) and clean up"
"${podman[@]}" stop --time 30 "$name" >/dev/null
status=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name")
echo "exit status $status"
((status == 0))
step "smoke passed"
