#!/usr/bin/env bash
# Generate Go, Java and TypeScript stubs from proto/ with the repository's buf.gen.yaml and
# locally installed plugins (Debian packages and npm; no remote plugins), then compile the
# Java and the TypeScript, each with a small example using them, and the Go when a Go
# toolchain is on PATH. CI installs none: `apt-get install golang-go
# golang-google-protobuf-dev golang-google-grpc-dev golang-google-genproto-dev` took 1m35s
# here and the first build another 1m10s, past the time .ci/run can spend on this, and
# the Java already shows the stubs compile. Run from anywhere; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUBS=clients/stubs

# Debian: protoc (Java is built in), the gRPC Java plugin, the Go plugins, and the jars
# the generated Java compiles against (protobuf-java, grpc-java, guava,
# javax.annotation.Generated from geronimo).
PACKAGES=(protobuf-compiler protobuf-compiler-grpc-java-plugin protoc-gen-go protoc-gen-go-grpc
  libprotobuf-java libgrpc-java libguava-java libgeronimo-annotation-1.3-spec-java)
command -v javac >/dev/null || PACKAGES+=(default-jdk-headless)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]}" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# buf: the one scripts/dev.py setup installs in the venv, else one on PATH.
BUF=.venv/bin/buf
[ -x "$BUF" ] || BUF=buf

(cd "$STUBS" && npm ci --no-audit --no-fund --silent)
rm -rf "$STUBS/gen"
"$BUF" generate
echo "generated: $(find "$STUBS/gen/go" -name '*.go' | wc -l) Go, $(find "$STUBS/gen/java" -name '*.java' | wc -l) Java, $(find "$STUBS/gen/ts" -name '*.ts' | wc -l) TypeScript files"

CLASSES=$(mktemp -d)
trap 'rm -rf "$CLASSES"' EXIT
JARS=protobuf,grpc-api,grpc-context,grpc-stub,grpc-protobuf,grpc-protobuf-lite,guava,geronimo-annotation-1.3-spec
CLASSPATH=$(eval "ls /usr/share/java/{$JARS}.jar" | tr '\n' ':')

# The two compilers run side by side: each is mostly single-threaded.
(cd "$STUBS" && node_modules/.bin/tsc -p tsconfig.json && echo "TypeScript stubs compile") &
tsc_pid=$!
# -proc:none: no annotation processors to look for; TieredStopAtLevel=1: javac's own JIT
# warm-up dominates a one-shot compile of this size.
javac -J-XX:TieredStopAtLevel=1 -proc:none -nowarn -Xlint:none -d "$CLASSES" -cp "$CLASSPATH" \
  $(find "$STUBS/gen/java" "$STUBS/java" -name '*.java') 2> >(grep -v '^Note:' >&2)
java -cp "$CLASSES:$CLASSPATH" Example | grep -q 'permission: "view"'
echo "Java stubs compile ($(find "$CLASSES" -name '*.class' | wc -l) classes) and the example runs"
wait "$tsc_pid"

if command -v go >/dev/null; then
  # GOPATH mode with Debian's Go sources (golang-google-protobuf-dev, golang-google-grpc-dev,
  # golang-google-genproto-dev): no module proxy.
  GOPATH_DIR=$(mktemp -d)
  mkdir -p "$GOPATH_DIR/src/example.com/authz/gen"
  cp -r "$STUBS/gen/go" "$GOPATH_DIR/src/example.com/authz/gen/go"
  (cd "$GOPATH_DIR/src/example.com/authz/gen/go/authz/v1" &&
    GO111MODULE=off GOPATH="$GOPATH_DIR:/usr/share/gocode" GOFLAGS= go build ./...)
  rm -rf "$GOPATH_DIR"
  echo "Go stubs compile"
else
  echo "Go stubs generated, not compiled: no Go toolchain on PATH"
fi
