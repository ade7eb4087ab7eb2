#!/usr/bin/env bash
# Development certificates for the container stack: a throwaway CA and a server
# certificate it signed, for the names the service is dialled by (localhost, 127.0.0.1,
# ::1 and the compose service name `authz`). Never use them for a deployment.
#
#   scripts/container/dev_certs.sh [DIR]     (default: certs/)
#
# Writes DIR/ca.pem, DIR/server.pem, DIR/server-key.pem. The CA key is discarded: nothing
# else can be signed with it. The server key is made readable by everyone because the
# service runs as uid 10001 in the container and reads it through a bind mount; that is
# acceptable only for these development files.
set -euo pipefail

dir=${1:-certs}
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=authz development CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null

openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=authz" -keyout "$work/server-key.pem" -out "$work/server.csr" 2>/dev/null
openssl x509 -req -in "$work/server.csr" -CA "$dir/ca.pem" -CAkey "$work/ca-key.pem" \
  -CAcreateserial -days 30 -out "$dir/server.pem" \
  -extfile <(printf '%s\n' \
    "subjectAltName=DNS:authz,DNS:localhost,IP:127.0.0.1,IP:::1" \
    "extendedKeyUsage=serverAuth" \
    "basicConstraints=critical,CA:FALSE") 2>/dev/null

install -m 0644 "$work/server-key.pem" "$dir/server-key.pem"
echo "$dir/ca.pem $dir/server.pem $dir/server-key.pem"
