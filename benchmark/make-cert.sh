#!/usr/bin/env bash
# Makes the benchmark's throwaway TLS certificate, fresh on every run (nothing is committed or
# reused):
#
#   benchmark/make-cert.sh DIR
#
#   DIR/ca.pem                  a self-signed CA, valid for 1 day (its key is deleted)
#   DIR/server.pem, server.key  signed by it, for localhost and 127.0.0.1
#
# Keys are EC P-256 (PKCS#8 PEM), as a production gRPC server would likely use: the
# handshake is not measured (connections are made before the clock starts), but the
# certificate's key type decides the handshake's signature algorithm, and the suite decides the
# record encryption every message pays. The load generators expect the name localhost
# (harness::TLS_SERVER_NAME). Needs the openssl command (Debian's openssl package).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: make-cert.sh DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
cd "$dir"
rm -f ca.pem ca.key server.pem server.key server.csr server.ext

key() { # FILE: a new EC P-256 key
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
}

key ca.key
openssl req -new -x509 -key ca.key -subj "/O=grpc-runtime benchmark/CN=benchmark test CA" \
  -days 1 -sha256 -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign" -out ca.pem

key server.key
openssl req -new -key server.key -subj "/O=grpc-runtime benchmark/CN=localhost" -out server.csr
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" >server.ext
# x509 -req reports success on stderr: kept only if it fails.
if ! openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -sha256 -extfile server.ext -out server.pem 2>server.log; then
  cat server.log >&2
  exit 1
fi
rm -f ca.key ca.srl server.csr server.ext server.log
