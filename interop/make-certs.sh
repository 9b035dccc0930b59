#!/usr/bin/env bash
# Makes throwaway certificates for the TLS interop matrix, fresh on every run (nothing is
# committed and nothing is reused):
#
#   interop/make-certs.sh DIR
#
#   DIR/ca.pem, ca.key          a self-signed test CA
#   DIR/server.pem, server.key  signed by it; names *.test.google.fr, foo.test.google.fr,
#                               localhost, 127.0.0.1 and ::1 (so clients may dial 127.0.0.1
#                               with --server_host_override=foo.test.google.fr, the interop
#                               default, or dial localhost without an override)
#   DIR/client.pem, client.key  signed by it, for client authentication (mTLS)
#
# Keys are EC P-256 in PKCS#8 PEM ("BEGIN PRIVATE KEY"), which rustls, grpc-go (crypto/tls),
# grpcio (BoringSSL) and grpc-js (Node's OpenSSL) all load. Certificates are valid for
# 2 days from now. Needs the openssl command (Debian's openssl package).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: make-certs.sh DIR" >&2; exit 2; }
dir=$1
mkdir -p "$dir"
cd "$dir"
rm -f ca.* server.* client.*
days=2

key() { # FILE: a new EC P-256 key, PKCS#8 PEM
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1")
}

# issue NAME SUBJECT EXTENSIONS: NAME.pem for NAME.key, signed by the CA.
issue() {
  printf '%s\n' "$3" >"$1.ext"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  # x509 -req reports its success on stderr: shown only if it fails.
  if ! openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 -extfile "$1.ext" \
    -out "$1.pem" 2>"$1.log"; then
    cat "$1.log" >&2
    exit 1
  fi
  rm -f "$1.ext" "$1.csr" "$1.log"
}

key ca.key
openssl req -new -x509 -key ca.key -subj "/O=grpc-runtime interop/CN=interop test CA" \
  -days "$days" -sha256 -set_serial "0x$(openssl rand -hex 16)" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" -out ca.pem

key server.key
issue server "/O=grpc-runtime interop/CN=*.test.google.fr" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=DNS:*.test.google.fr,DNS:foo.test.google.fr,DNS:localhost,IP:127.0.0.1,IP:::1"

key client.key
issue client "/O=grpc-runtime interop/CN=interop test client" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=DNS:client.test.google.fr"
