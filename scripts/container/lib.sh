# shellcheck shell=bash
# Shared by smoke.sh and compose_smoke.sh (sourced, not run): tools, podman settings that
# this kind of machine needs, the image builds, and waiting for a health check.

start=$SECONDS
step() { printf '\n== [%3ds] %s\n' $((SECONDS - start)) "$*"; }

# need_tools TOOL...: install the missing ones from Debian (as root), or stop.
need_tools() {
  local missing=() packages=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]})) || return 0
  step "installing ${missing[*]}"
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "needs ${missing[*]} (Debian: apt-get install podman runc slirp4netns mmdebstrap)" >&2
    exit 2
  fi
  for tool in "${missing[@]}"; do
    case $tool in psql) packages+=(postgresql-client) ;; *) packages+=("$tool") ;; esac
  done
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >/dev/null
}

# runc, not podman's default crun: crun refuses a hybrid cgroup layout that has any
# controller on the v2 hierarchy (here: hugetlb), which runc accepts.
runtime=${SMOKE_RUNTIME:-runc}
podman=(podman --runtime "$runtime")
# podman asks for rlimits above the hard limits of this shell (nofile 1048576 as root);
# raising them needs CAP_SYS_RESOURCE, which a sandboxed root may lack. Stay within them.
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] && nofile=1048576
limits=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)
# The periodic health check is a systemd timer, absent here: the scripts run it instead.
run=("${podman[@]}" run "${limits[@]}" --health-interval=disable)
# A build's RUN steps share the host's network (pip and apt reach their indexes as the
# host does) and its CA bundle, mounted for the build only: an HTTPS proxy trusted by
# the host is then trusted inside, and nothing of the host is left in the image.
build=("${podman[@]}" build --quiet --format docker "${limits[@]}" --network host
       --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)

base=${SMOKE_BASE_IMAGE:-localhost/authz-base:bookworm}
image=${SMOKE_IMAGE:-localhost/authz-service:smoke}

# build_images: the Debian base (unless it exists; SMOKE_REBUILD_BASE=1 remakes it),
# then the Dockerfile on it.
build_images() {
  if [[ ${SMOKE_REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$base"; then
    step "base image $base from Debian packages (mmdebstrap)"
    scripts/container/build_base.sh "$base"
  fi
  step "podman build -t $image ."
  "${build[@]}" --build-arg "PYTHON_IMAGE=$base" --tag "$image" .
  "${podman[@]}" image inspect --format '{{.Id}} {{.Size}} bytes' "$image"
}

# wait_healthy CONTAINER: run its HEALTHCHECK until it passes (2 min at most; a
# container that stops meanwhile may be restarted by its restart policy).
wait_healthy() {
  local deadline=$((SECONDS + 120))
  until "${podman[@]}" healthcheck run "$1" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "$1 did not become healthy" >&2
      "${podman[@]}" logs "$1" >&2
      exit 1
    fi
    sleep 1
  done
  "${podman[@]}" inspect --format "$1: {{.State.Health.Status}}" "$1"
}

# checks PORT CERTS KEY: Checks through 127.0.0.1:PORT with the image's own `authz check`:
# ALLOWED and DENIED over TLS, and a plaintext client refused.
checks() {
  local client=("${run[@]}" --rm --network host --volume "$2:/etc/authz/tls:ro" "$image"
                check --server "127.0.0.1:$1" --api-key "$3" --tenant demo)
  expect() {  # expect STATUS ARGS...: run the client, show its answer, demand the status
    local want=$1 got=0
    shift
    "${client[@]}" "$@" || got=$?
    if ((got != want)); then
      echo "exit status $got, expected $want" >&2
      exit 1
    fi
  }
  expect 0 --tls-ca /etc/authz/tls/ca.pem document:readme view user:alice
  expect 1 --tls-ca /etc/authz/tls/ca.pem document:readme view user:mallory
  echo "a plaintext client:"
  expect 2 document:readme view user:alice
}
