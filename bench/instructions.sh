#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable whatever else the machine
# is doing, unlike CPU time (bench/run.sh). Use it to compare two builds of the hot path:
#
#   bench/instructions.sh BIN [N1 N2]   # e.g. target/release/portcullis 500 2500
#
# Runs BIN under `valgrind --tool=callgrind` twice, in front of a cheap nginx upstream on
# 127.0.0.1, each time starting it, sending N keep-alive HS256 requests on one TLS connection
# (h2load --h1) and stopping it; prints (I(N2) - I(N1)) / (N2 - N1), so start-up and shutdown
# cancel out. Run-to-run spread is about 2 % on a quiet machine and up to 4 % on a busy one
# (tokio's idle workers park and spin differently): run each build twice or more, alternating,
# and compare the means. Needs valgrind, h2load, nginx,
# openssl, curl, python3 (Debian: valgrind nghttp2-client nginx openssl curl python3).
set -euo pipefail
BIN=$(realpath "$1"); N1=${2:-500}; N2=${3:-2500}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# total instructions for: start, N requests, stop
count() {
N=$1
W=$(mktemp -d /tmp/portcullis-instr.XXXXXX)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout $W/tls.key -out $W/tls.crt -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
$BIN keygen --alg HS256 --out $W/hs256.secret >/dev/null 2>&1 || true
TOKEN=$(python3 $ROOT/bench/mint_hs256.py $W/hs256.secret 1 portcullis bench bench user | head -1)
HASH=$(printf 'x' | $BIN hash-password)
printf '[[user]]\nname = "bench"\nrole = "user"\npassword_hash = '"'"'%s'"'"'\n' "$HASH" > $W/users.toml
mkdir -p $W/up/tmp
cat > $W/up/nginx.conf <<NG
worker_processes 1; daemon off; pid $W/up/nginx.pid; error_log $W/up/error.log warn;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $W/up/tmp; proxy_temp_path $W/up/tmp; fastcgi_temp_path $W/up/tmp; uwsgi_temp_path $W/up/tmp; scgi_temp_path $W/up/tmp;
 keepalive_requests 1000000; keepalive_timeout 600s;
 server { listen 127.0.0.1:28080; location / { return 200 "ok\n"; } } }
NG
nginx -p $W/up -c $W/up/nginx.conf -e $W/up/error.log & NGX=$!
cat > $W/g.toml <<CF
[server]
listen = "127.0.0.1:28443"
admin_listen = "127.0.0.1:28901"
idle_timeout = "600s"
shutdown_grace = "1s"
[tls]
cert = "$W/tls.crt"
key = "$W/tls.key"
[tokens]
issuer = "portcullis"
audience = "bench"
access_ttl = "2h"
[[tokens.keys]]
kid = "k1"
alg = "HS256"
secret_file = "$W/hs256.secret"
[users]
file = "$W/users.toml"
[store]
backend = "sqlite"
path = "$W/p.db"
[log]
level = "warn"
[[routes]]
name = "api"
path = "/api/"
upstream = "http://127.0.0.1:28080"
auth = "required"
timeout = "30s"
CF
valgrind --tool=callgrind --callgrind-out-file=$W/cg.out $BIN run --config $W/g.toml >$W/gw.log 2>&1 & GW=$!
for i in $(seq 1 600); do curl -sk -o /dev/null https://127.0.0.1:28443/api/x -H "Authorization: Bearer $TOKEN" && break; sleep 0.1; done
h2load --h1 -n $N -c 1 -H "Authorization: Bearer $TOKEN" https://127.0.0.1:28443/api/x > $W/h2load.log 2>&1
grep -qE "^requests: .* $N succeeded" $W/h2load.log || { cat $W/h2load.log >&2; exit 1; }
kill -TERM $GW; wait $GW || true
kill $NGX; wait $NGX 2>/dev/null || true
grep -E "^(summary|totals):" $W/cg.out | head -1 | awk '{print $2}'
rm -rf $W
}

A=$(count "$N1"); B=$(count "$N2")
echo "$(( (B - A) / (N2 - N1) )) instructions per request ($BIN; $N1 and $N2 requests: $A, $B)"
