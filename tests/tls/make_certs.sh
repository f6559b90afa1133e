#!/usr/bin/env bash
# make_certs.sh OUTDIR: the certificates of the TLS transport tests
# (tests/tls/transports.py), made with the openssl CLI only. EC P-256 leaf
# keys but for the two RSA client pairs (the SChannel build takes RSA client
# keys only); the two CAs are RSA 2048, so every certificate carries an RSA
# signature: Wine 8's crypt32 rejects an ECDSA signature whose r or s is
# shorter than 32 bytes (about one in 128), which made a fresh set fail the
# SChannel run now and then. The whole set takes well under a second.
#
#   ca.pem ca.key                    the test CA (what --ca-file trusts)
#   server.pem server.key            DNS:localhost, IP:127.0.0.1, from the test CA
#   server-chain.pem                 server.pem + ca.pem
#   wrong.pem wrong.key              DNS:wrong.example only, from the test CA
#   expired.pem expired.key          DNS:localhost, IP:127.0.0.1, from the test CA,
#                                    valid 2020-01-01 .. 2021-01-01 only
#   other-ca.pem other-ca.key        a second CA nobody trusts
#   untrusted.pem untrusted.key      DNS:localhost, IP:127.0.0.1, from the other CA
#   untrusted-chain.pem              untrusted.pem + other-ca.pem
#   client.pem client.key            CN=alwaysup-test-client, clientAuth, from the test CA
#   client-rsa.pem client-rsa.key    CN=alwaysup-test-client-rsa, clientAuth, from the test CA, RSA 2048
#   untrusted-client-rsa.pem untrusted-client-rsa.key
#                                    CN=alwaysup-test-client-rsa, clientAuth, from the other CA, RSA 2048
#
# Idempotent: a set made by this same script (the stamp file holds its hash)
# whose certificates are all still valid for a day is left alone; otherwise
# the whole set is made afresh in a temporary directory and moved in. Quiet
# unless something fails (then openssl's output is shown, exit 1).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUT=$1
command -v openssl >/dev/null 2>&1 || { echo "make_certs.sh: the openssl CLI is missing (apt-get install openssl)" >&2; exit 1; }

SELF_HASH=$(openssl dgst -sha256 -r "$0" | cut -d' ' -f1)
SELF_HASH=${SELF_HASH#\*}
FILES="ca.pem ca.key server.pem server.key server-chain.pem wrong.pem wrong.key expired.pem expired.key
       other-ca.pem other-ca.key untrusted.pem untrusted.key untrusted-chain.pem client.pem client.key
       client-rsa.pem client-rsa.key untrusted-client-rsa.pem untrusted-client-rsa.key"
VALID="ca.pem server.pem wrong.pem other-ca.pem untrusted.pem client.pem client-rsa.pem untrusted-client-rsa.pem"

up_to_date() {
    [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$SELF_HASH" ] || return 1
    local f
    for f in $FILES; do [ -s "$OUT/$f" ] || return 1; done
    for f in $VALID; do openssl x509 -in "$OUT/$f" -noout -checkend 86400 >/dev/null 2>&1 || return 1; done
    return 0
}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# two runs at once would mix their sets: one at a time
if command -v flock >/dev/null 2>&1; then
    exec 9>"$OUT/.lock"
    flock 9
fi
if up_to_date; then
    exit 0
fi

TMP=$(mktemp -d "$OUT/.make_certs.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
LOG=$TMP/openssl.log
run() {
    if ! "$@" >>"$LOG" 2>&1; then
        echo "make_certs.sh: failed: $*" >&2
        cat "$LOG" >&2
        exit 1
    fi
}
cd "$TMP"

newkey() {   # FILE [rsa]
    if [ "${2:-}" = rsa ]; then run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1"
    else run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; fi
}

cat >ext.cnf <<'EOF'
[req]
distinguished_name = req_dn
[req_dn]

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[wrong_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF

# CA NAME CN: a self-signed CA certificate (RSA), valid ten years from yesterday
make_ca() {
    newkey "$1.key" rsa
    run openssl req -new -x509 -key "$1.key" -out "$1.pem" -days 3650 -subj "/O=alwaysup tests/CN=$2" \
        -config ext.cnf -extensions ca_ext -sha256
}
# leaf NAME CA CN EXT [rsa]: a key (EC, or RSA) and a certificate signed by CA, valid ten years
leaf() {
    newkey "$1.key" "${5:-}"
    run openssl req -new -key "$1.key" -out "$1.csr" -subj "/O=alwaysup tests/CN=$3" -config ext.cnf
    run openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 16)" \
        -days 3650 -sha256 -extfile ext.cnf -extensions "$4" -out "$1.pem"
}

make_ca ca "alwaysup test CA"
make_ca other-ca "alwaysup untrusted CA"
leaf server ca localhost server_ext
leaf wrong ca wrong.example wrong_ext
leaf untrusted other-ca localhost server_ext
leaf client ca alwaysup-test-client client_ext
leaf client-rsa ca alwaysup-test-client-rsa client_ext rsa
leaf untrusted-client-rsa other-ca alwaysup-test-client-rsa client_ext rsa

# expired: OpenSSL 3.0's `x509 -req` has no -not_before/-not_after, so a
# minimal `openssl ca` setup signs it with explicit dates in the past
newkey expired.key
run openssl req -new -key expired.key -out expired.csr -subj "/O=alwaysup tests/CN=localhost" -config ext.cnf
mkdir -p ca-db
: >ca-db/index.txt
openssl rand -hex 16 >ca-db/serial
cat >ca.cnf <<EOF
[ca]
default_ca = test_ca
[test_ca]
dir = $TMP/ca-db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $TMP/ca.pem
private_key = $TMP/ca.key
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[policy_any]
organizationName = optional
commonName = supplied
EOF
run openssl ca -batch -notext -config ca.cnf -in expired.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20210101000000Z -extfile ext.cnf -extensions server_ext

cat server.pem ca.pem >server-chain.pem
cat untrusted.pem other-ca.pem >untrusted-chain.pem

# sanity: what each certificate is for
run openssl verify -CAfile ca.pem server.pem
run openssl verify -CAfile ca.pem -verify_hostname localhost server.pem
run openssl verify -CAfile ca.pem -verify_ip 127.0.0.1 server.pem
run openssl verify -CAfile ca.pem client.pem
run openssl verify -CAfile ca.pem client-rsa.pem
run openssl verify -CAfile other-ca.pem untrusted-client-rsa.pem
run openssl verify -CAfile other-ca.pem untrusted.pem
if openssl verify -CAfile ca.pem expired.pem >>"$LOG" 2>&1; then
    echo "make_certs.sh: expired.pem verifies, but must have expired" >&2
    exit 1
fi
if openssl verify -CAfile ca.pem -verify_hostname localhost wrong.pem >>"$LOG" 2>&1; then
    echo "make_certs.sh: wrong.pem verifies for localhost, but must not" >&2
    exit 1
fi

chmod 600 ./*.key
echo "$SELF_HASH" >stamp
for f in $FILES stamp; do mv -f "$f" "$OUT/$f"; done
