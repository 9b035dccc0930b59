#!/usr/bin/env bash
# Installs what the interop peers need; idempotent and quiet (a second run does nothing).
#
#   interop/install-peers.sh            Debian packages (apt-get), then the Python venv and npm
#   interop/install-peers.sh --no-apt   only the Python venv and node_modules
#
# - grpc-go peer: Debian's Go toolchain, grpc-go and protobuf sources (built offline in
#   GOPATH mode by interop/peers/go/build.sh) and the protoc plugins.
#   golang-github-golang-protobuf-1-5-dev is named explicitly: grpc-go's package accepts the
#   1.3 API too, and the APIv2 code protoc-gen-go generates needs 1.5.
# - grpcio peer: interop/peers/python/.venv from requirements.txt.
# - grpc-js peer: interop/peers/node/node_modules by `npm ci` from package-lock.json.
# - grpc-proto: the official grpc.reflection.v1 proto for the reflection check.
# - openssl (the command): interop/make-certs.sh makes the TLS matrix's test certificates.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive

apt=1
[ "${1:-}" = "--no-apt" ] && apt=0

if [ $apt = 1 ]; then
  pkgs=(protobuf-compiler golang-go golang-google-grpc-dev golang-github-golang-protobuf-1-5-dev
        golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc openssl)
  # The official grpc.reflection.v1 proto (/usr/share/grpc-proto), compiled at run time by
  # interop/peers/python/health_reflection_check.py: grpcio-reflection has only v1alpha.
  pkgs+=(grpc-proto)
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
  python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "install-peers: apt-get install ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# grpcio in a virtualenv, reinstalled only when requirements.txt changes.
py="$here/peers/python"
venv="$py/.venv"
if ! cmp -s "$py/requirements.txt" "$venv/.installed-requirements" 2>/dev/null; then
  echo "install-peers: pip install -r interop/peers/python/requirements.txt"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$py/requirements.txt"
  cp "$py/requirements.txt" "$venv/.installed-requirements"
fi

# grpc-js from the lockfile, reinstalled only when package-lock.json changes.
node="$here/peers/node"
if ! cmp -s "$node/package-lock.json" "$node/node_modules/.installed-lock" 2>/dev/null; then
  echo "install-peers: npm ci (interop/peers/node)"
  (cd "$node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$node/package-lock.json" "$node/node_modules/.installed-lock"
fi
