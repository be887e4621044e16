#!/usr/bin/env bash
# Load benchmark: Portcullis vs HAProxy (jwt_verify) vs nginx (plain TLS proxy, no auth).
#
#   sudo bench/run.sh                       # defaults below
#   DURATION=5 IDLE_N=500 bench/run.sh      # quick run
#
# Everything listens on 127.0.0.1 only. The proxy under test is pinned to CPU $PROXY_CPU,
# the load generator (and the cheap nginx upstream) to CPU $LOAD_CPU. Results go to
# bench/RESULTS.md; raw tool output to bench/last-run.log.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DURATION=${DURATION:-15}        # seconds per timed run
CONNS=${CONNS:-64}              # wrk / h2load connections
STREAMS=${STREAMS:-10}          # h2load -m
IDLE_N=${IDLE_N:-2000}          # idle keep-alive TLS connections held for the RSS measurement
ALGS=${ALGS:-"HS256 ES256"}     # token algorithms (Portcullis and HAProxy are run once per alg)
PEERS=${PEERS:-"portcullis haproxy nginx"}  # subset to run
UNCACHED_N=${UNCACHED_N:-100000} # distinct HS256 tokens for the cache-defeating run (> Portcullis' 50,000-entry cache); 0 skips it
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$HERE/RESULTS.md}
RAW=${RAW:-$HERE/last-run.log}

UP_PORT=18080; P_PORT=18443; P_ADMIN=18901; H_PORT=18444; N_PORT=18445

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] FATAL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v taskset >/dev/null || need+=(util-linux)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
fi
[ "$(nproc --all)" -ge 2 ] || die "needs at least 2 CPUs (one for the proxy, one for the load)"

log "cargo build --release"
(cd "$ROOT" && cargo build --release --quiet)
BIN=$ROOT/target/release/portcullis

ulimit -n 65536 2>/dev/null || true
WORK=$(mktemp -d /tmp/portcullis-bench.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
: >"$RAW"

# ---------------------------------------------------------------- keys, cert, user
log "work dir $WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/haproxy.pem"
"$BIN" keygen --alg ES256 --out "$WORK/es256.pem" >/dev/null
openssl pkey -in "$WORK/es256.pem" -pubout -out "$WORK/es256.pub.pem"
"$BIN" keygen --alg HS256 --out "$WORK/hs256.secret" >/dev/null
HS_SECRET=$(tr -d ' \r\n\t' <"$WORK/hs256.secret")
if [ "$UNCACHED_N" -gt 0 ] && [[ " $ALGS " == *" HS256 "* ]]; then
  python3 "$HERE/mint_hs256.py" "$WORK/hs256.secret" "$UNCACHED_N" portcullis bench bench user >"$WORK/tokens.txt"
else
  UNCACHED_N=0
fi
HASH=$(printf 'bench-password' | "$BIN" hash-password)
cat >"$WORK/users.toml" <<EOF
[[user]]
name = "bench"
role = "user"
password_hash = '$HASH'
EOF

# ---------------------------------------------------------------- helpers
# utime+stime (clock ticks) of a process and its children (nginx master + workers)
proc_tree() { echo "$1"; pgrep -P "$1" || true; }
cpu_ticks() {
  local t=0 p v
  for p in $(proc_tree "$1"); do
    v=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') || v=0
    t=$((t + v))
  done
  echo "$t"
}
rss_kib() {
  local t=0 p v
  for p in $(proc_tree "$1"); do
    v=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status") || v=0
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
CLK_TCK=$(getconf CLK_TCK)
wait_port() {  # wait until a TCP port accepts
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listening on port $1"
}
status_of() {  # status_of URL [curl args...]
  local url=$1; shift
  curl -sk -o /dev/null -w '%{http_code}' "$@" "$url"
}
body_of() { local url=$1; shift; curl -sk "$@" "$url"; }
to_ms() {  # wrk latency "812.00us" / "1.23ms" / "1.02s" -> ms
  awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.2f", n }'
}
tamper() {  # flip one character in the middle of the signature
  python3 - "$1" <<'EOF'
import sys
t = sys.argv[1]; h, p, s = t.split(".")
i = len(s) // 2
c = "A" if s[i] != "A" else "B"
print(".".join([h, p, s[:i] + c + s[i + 1:]]))
EOF
}

# ---------------------------------------------------------------- upstream (cheap nginx)
mkdir -p "$WORK/up"
cat >"$WORK/up/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/up/nginx.pid;
error_log $WORK/up/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/up/tmp; proxy_temp_path $WORK/up/tmp; fastcgi_temp_path $WORK/up/tmp;
  uwsgi_temp_path $WORK/up/tmp; scgi_temp_path $WORK/up/tmp;
  keepalive_requests 1000000; keepalive_timeout 600s;
  server {
    listen 127.0.0.1:$UP_PORT;
    default_type text/plain;
    location / { return 200 "sub=\$http_x_auth_sub role=\$http_x_auth_role auth=\$http_authorization\n"; }
  }
}
EOF
mkdir -p "$WORK/up/tmp"
taskset -c "$LOAD_CPU" nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" -e "$WORK/up/error.log" &
PIDS+=($!)
wait_port $UP_PORT

# ---------------------------------------------------------------- peer configs
portcullis_cfg() {  # alg -> config path
  local alg=$1 cfg=$WORK/portcullis-$1.toml key
  if [ "$alg" = HS256 ]; then key="secret_file = \"$WORK/hs256.secret\""
  else key="private_key_file = \"$WORK/es256.pem\""; fi
  cat >"$cfg" <<EOF
[server]
listen = "127.0.0.1:$P_PORT"
admin_listen = "127.0.0.1:$P_ADMIN"
idle_timeout = "600s"
shutdown_grace = "1s"

[tls]
cert = "$WORK/tls.crt"
key = "$WORK/tls.key"

[tokens]
issuer = "portcullis"
audience = "bench"
access_ttl = "2h"

[[tokens.keys]]
kid = "k1"
alg = "$alg"
$key

[users]
file = "$WORK/users.toml"

[store]
backend = "sqlite"
path = "$WORK/store-$alg/portcullis.db"

[limits]
login_per_ip = "1000/min"
login_per_user = "1000/min"
max_body_bytes = "10MiB"

[log]
level = "warn"

[[routes]]
name = "api"
path = "/api/"
upstream = "http://127.0.0.1:$UP_PORT"
auth = "required"
timeout = "30s"
EOF
  echo "$cfg"
}

haproxy_cfg() {  # alg -> config path. Same checks as Portcullis' hot path that matter here:
  # alg pinned, signature, iss, aud, exp/nbf, identity headers stripped then set, Authorization dropped.
  local alg=$1 cfg=$WORK/haproxy-$1.cfg key
  if [ "$alg" = HS256 ]; then key="\"$HS_SECRET\""; else key="\"$WORK/es256.pub.pem\""; fi
  cat >"$cfg" <<EOF
global
  nbthread 1
  maxconn 8000
  log stderr format raw local0 err
  tune.ssl.default-dh-param 2048

defaults
  mode http
  log global
  timeout connect 5s
  timeout client 600s
  timeout server 30s
  timeout http-request 10s
  timeout http-keep-alive 600s

frontend fe
  bind 127.0.0.1:$H_PORT ssl crt $WORK/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2
  http-request del-header X-Auth-Sub
  http-request del-header X-Auth-Role
  http-request del-header X-Auth-Session
  http-request deny deny_status 401 unless { http_auth_bearer -m found }
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_header_query('\$.alg') -m str $alg }
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_header_query('\$.typ') -m str at+jwt }
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_verify("$alg",$key) -m int 1 }
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_payload_query('\$.iss') -m str portcullis }
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_payload_query('\$.aud') -m str bench }
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_payload_query('\$.exp','int'),sub(txn.now) -m int gt 0 }
  http-request deny deny_status 401 unless { http_auth_bearer,jwt_payload_query('\$.nbf','int'),sub(txn.now) -m int le 5 }
  http-request set-var(txn.sub) http_auth_bearer,jwt_payload_query('\$.sub')
  http-request set-var(txn.role) http_auth_bearer,jwt_payload_query('\$.role')
  http-request set-var(txn.sid) http_auth_bearer,jwt_payload_query('\$.sid')
  http-request set-header X-Auth-Sub %[var(txn.sub)]
  http-request set-header X-Auth-Role %[var(txn.role)]
  http-request set-header X-Auth-Session %[var(txn.sid)]
  http-request del-header Authorization
  default_backend be

backend be
  http-reuse always
  server up 127.0.0.1:$UP_PORT
EOF
  echo "$cfg"
}

nginx_cfg() {
  mkdir -p "$WORK/nx/tmp"
  cat >"$WORK/nx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $WORK/nx/nginx.pid;
error_log $WORK/nx/error.log warn;
events { worker_connections 8000; }
http {
  access_log off;
  client_body_temp_path $WORK/nx/tmp; proxy_temp_path $WORK/nx/tmp; fastcgi_temp_path $WORK/nx/tmp;
  uwsgi_temp_path $WORK/nx/tmp; scgi_temp_path $WORK/nx/tmp;
  keepalive_requests 1000000; keepalive_timeout 600s;
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$N_PORT ssl http2;
    ssl_certificate $WORK/tls.crt;
    ssl_certificate_key $WORK/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  echo "$WORK/nx/nginx.conf"
}

# ---------------------------------------------------------------- measurements
ROWS=()
UROWS=()
NOTES=()
FAIL=0
check() {  # check NAME GOT WANT
  if [ "$2" = "$3" ]; then log "ok   $1 ($2)"; else log "FAIL $1: got $2, want $3"; FAIL=1; fi
}

measure_peer() {  # measure_peer LABEL PID PORT TOKEN
  local label=$1 pid=$2 port=$3 tok=$4 url="https://127.0.0.1:$3/api/bench"
  local hdr=() c0 c1 out reqs rps p50 p99 cpu non2xx
  [ -n "$tok" ] && hdr=(-H "Authorization: Bearer $tok")

  # warm-up (fills caches, upstream pool)
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "${hdr[@]}" "$url" >/dev/null

  # idle keep-alive connections: RSS delta / N
  local r0 r1 holder ready idle_kib="n/a"
  r0=$(rss_kib "$pid")
  mkfifo "$WORK/hold.in"
  taskset -c "$LOAD_CPU" python3 "$HERE/idle_conns.py" 127.0.0.1 "$port" /api/bench "$tok" "$IDLE_N" \
    <"$WORK/hold.in" >"$WORK/hold.out" 2>>"$RAW" &
  holder=$!
  exec 7>"$WORK/hold.in"
  for _ in $(seq 1 1200); do grep -q ready "$WORK/hold.out" 2>/dev/null && break; sleep 0.1; done
  ready=$(cat "$WORK/hold.out")
  sleep 1
  r1=$(rss_kib "$pid")
  exec 7>&-
  wait "$holder" || true
  rm -f "$WORK/hold.in"
  local held; held=$(awk '{print $2}' <<<"$ready")
  if [ -n "$held" ] && [ "$held" -gt 0 ]; then
    idle_kib=$(awk -v a="$r0" -v b="$r1" -v n="$held" 'BEGIN{printf "%.1f", (b-a)/n}')
  fi
  echo "== $label idle: $ready rss ${r0}KiB -> ${r1}KiB => $idle_kib KiB/conn" >>"$RAW"
  sleep 1

  # keep-alive HTTP/1.1 load
  c0=$(cpu_ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${hdr[@]}" "$url")
  c1=$(cpu_ticks "$pid")
  printf '== %s keep-alive\n%s\n' "$label" "$out" >>"$RAW"
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  [ "$non2xx" = 0 ] || { log "WARN $label: $non2xx non-2xx responses"; FAIL=1; }
  cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')
  local busy wall; wall=$(awk '/requests in/{w=$4; sub(/,$/,"",w); n=w+0; if (w ~ /m$/) n*=60; else if (w ~ /h$/) n*=3600; print n}' <<<"$out")
  busy=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v w="$wall" 'BEGIN{printf "%.0f", 100*t/hz/w}')
  if [ "$busy" -lt 90 ]; then
    log "WARN $label: proxy core only ${busy}% busy: not CPU-bound (noisy machine or a stall); re-run before trusting this row"
    NOTES+=("- $label: the proxy core was only ${busy}% busy during the keep-alive run, so that row is bounded by something other than the proxy's CPU (another load on the machine, or a stall in the proxy).")
  fi

  # full handshakes: one request per connection (Connection: close), CPU per connection
  local hs_out hs_reqs hs_rate hs_cpu hs_extra
  c0=$(cpu_ticks "$pid")
  hs_out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Connection: close" "${hdr[@]}" "$url")
  c1=$(cpu_ticks "$pid")
  printf '== %s connection: close\n%s\n' "$label" "$hs_out" >>"$RAW"
  hs_reqs=$(awk '/requests in/{print $1}' <<<"$hs_out")
  hs_rate=$(awk '/^Requests\/sec/{printf "%.0f", $2}' <<<"$hs_out")
  hs_cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$hs_reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')
  hs_extra=$(awk -v a="$hs_cpu" -v b="$cpu" 'BEGIN{printf "%.0f", a-b}')

  # HTTP/2 multiplexed
  local h2_out h2_ok h2_rps h2_cpu
  c0=$(cpu_ticks "$pid")
  h2_out=$(taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m"$STREAMS" -D"$DURATION" "${hdr[@]}" "$url" 2>&1)
  c1=$(cpu_ticks "$pid")
  printf '== %s h2load\n%s\n' "$label" "$h2_out" >>"$RAW"
  h2_ok=$(awk '/^status codes:/{gsub(",","",$3); print $3}' <<<"$h2_out")
  h2_rps=$(awk '/^finished in/{gsub(",","",$4); printf "%.0f", $4}' <<<"$h2_out")
  h2_cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="${h2_ok:-0}" 'BEGIN{ if (n>0) printf "%.1f", t*1e6/hz/n; else print "n/a"}')
  local h2_all; h2_all=$(awk '/^requests:/{print $2}' <<<"$h2_out")
  [ "${h2_ok:-0}" = "${h2_all:-x}" ] || log "WARN $label h2: ${h2_ok:-0} 2xx of ${h2_all:-?} requests"

  ROWS+=("| $label | $rps | $p50 | $p99 | $cpu | $busy% | $hs_rate | $hs_cpu (+$hs_extra) | $h2_rps | $h2_cpu | $idle_kib |")
  log "$label: ${rps} req/s p50 ${p50}ms p99 ${p99}ms ${cpu}µs/req (proxy core ${busy}% busy); close: ${hs_rate} conn/s ${hs_cpu}µs; h2 ${h2_rps} req/s ${h2_cpu}µs/req; idle ${idle_kib} KiB/conn"
}

measure_uncached() {  # LABEL PID PORT: keep-alive load, a different HS256 token on every request
  local label=$1 pid=$2 url="https://127.0.0.1:$3/api/bench" c0 c1 out reqs rps p50 p99 cpu busy wall non2xx
  c0=$(cpu_ticks "$pid")
  out=$(TOKENS_FILE="$WORK/tokens.txt" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$HERE/tokens.lua" "$url")
  c1=$(cpu_ticks "$pid")
  printf '== %s uncached tokens\n%s\n' "$label" "$out" >>"$RAW"
  reqs=$(awk '/requests in/{print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/{printf "%.0f", $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%"{print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%"{print $2}' <<<"$out")")
  non2xx=$(awk '/Non-2xx/{print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  [ "$non2xx" = 0 ] || { log "WARN $label uncached: $non2xx non-2xx responses"; NOTES+=("- $label, distinct tokens: $non2xx non-2xx responses."); }
  cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')
  wall=$(awk '/requests in/{w=$4; sub(/,$/,"",w); n=w+0; if (w ~ /m$/) n*=60; print n}' <<<"$out")
  busy=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v w="$wall" 'BEGIN{printf "%.0f", 100*t/hz/w}')
  UROWS+=("| $label | $rps | $p50 | $p99 | $cpu | $busy% |")
  log "$label distinct tokens: ${rps} req/s p50 ${p50}ms p99 ${p99}ms ${cpu}µs/req (proxy core ${busy}% busy)"
}
minted_ok() {  # PORT LABEL: does the peer accept our minted tokens (and refuse a tampered one)?
  local url="https://127.0.0.1:$1/api/bench" t; t=$(head -1 "$WORK/tokens.txt")
  if [ "$(status_of "$url" -H "Authorization: Bearer $t")" = 200 ] &&
     [ "$(status_of "$url" -H "Authorization: Bearer $(tamper "$t")")" = 401 ]; then
    log "ok   $2 minted token 200, tampered minted token 401"; return 0
  fi
  log "WARN $2 does not accept the minted HS256 tokens: skipping its distinct-token run"; return 1
}

behaviour() {  # behaviour LABEL PORT TOKEN
  local label=$1 url="https://127.0.0.1:$2/api/bench" tok=$3 bad
  bad=$(tamper "$tok")
  check "$label valid token" "$(status_of "$url" -H "Authorization: Bearer $tok")" 200
  check "$label valid token over h2" "$(status_of "$url" --http2 -H "Authorization: Bearer $tok")" 200
  check "$label tampered token" "$(status_of "$url" -H "Authorization: Bearer $bad")" 401
  check "$label no token" "$(status_of "$url")" 401
  check "$label identity injected, spoof stripped, Authorization dropped" \
    "$(body_of "$url" -H "Authorization: Bearer $tok" -H 'X-Auth-Sub: admin' -H 'X-Auth-Role: admin')" \
    "sub=bench role=user auth="
}

# ---------------------------------------------------------------- runs
declare -A TOKENS
want() { [[ " $PEERS " == *" $1 "* ]]; }
for alg in $ALGS; do
  # Portcullis (always started: it mints the token HAProxy verifies)
  cfg=$(portcullis_cfg "$alg")
  mkdir -p "$WORK/store-$alg"
  "$BIN" check --config "$cfg" >&2
  taskset -c "$PROXY_CPU" "$BIN" run --config "$cfg" >"$WORK/portcullis-$alg.log" 2>&1 &
  ppid=$!; PIDS+=("$ppid")
  wait_port $P_PORT
  tok=$(curl -sk "https://127.0.0.1:$P_PORT/auth/login" -H 'content-type: application/json' \
        -d '{"username":"bench","password":"bench-password"}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') ||
    die "login to Portcullis ($alg) failed; log: $(tail -5 "$WORK/portcullis-$alg.log")"
  TOKENS[$alg]=$tok
  echo "== token $alg header: $(cut -d. -f1 <<<"$tok" | python3 -c 'import base64,sys; s=sys.stdin.read().strip(); print(base64.urlsafe_b64decode(s+"="*(-len(s)%4)).decode())')" >>"$RAW"
  behaviour "portcullis-$alg" $P_PORT "$tok"
  [ "$FAIL" = 0 ] || die "behaviour check failed for portcullis-$alg: not benchmarking a broken config"
  want portcullis && measure_peer "Portcullis $alg" "$ppid" $P_PORT "$tok"
  if want portcullis && [ "$alg" = HS256 ] && [ "$UNCACHED_N" -gt 0 ] && minted_ok $P_PORT portcullis-HS256; then
    measure_uncached "Portcullis HS256" "$ppid" $P_PORT
  fi
  kill "$ppid"; wait "$ppid" 2>/dev/null || true
  want haproxy || continue

  # HAProxy, same token, same key
  cfg=$(haproxy_cfg "$alg")
  haproxy -c -q -f "$cfg" >&2 || die "haproxy config check failed"
  taskset -c "$PROXY_CPU" haproxy -db -f "$cfg" >"$WORK/haproxy-$alg.log" 2>&1 &
  hpid=$!; PIDS+=("$hpid")
  wait_port $H_PORT
  behaviour "haproxy-$alg" $H_PORT "$tok"
  [ "$FAIL" = 0 ] || die "behaviour check failed for haproxy-$alg: not benchmarking a broken config"
  measure_peer "HAProxy $alg" "$hpid" $H_PORT "$tok"
  if [ "$alg" = HS256 ] && [ "$UNCACHED_N" -gt 0 ] && minted_ok $H_PORT haproxy-HS256; then
    measure_uncached "HAProxy HS256" "$hpid" $H_PORT
  fi
  kill "$hpid"; wait "$hpid" 2>/dev/null || true
done

# nginx: TLS + proxy_pass, no authentication (the floor)
if want nginx; then
cfg=$(nginx_cfg)
taskset -c "$PROXY_CPU" nginx -p "$WORK/nx" -c "$cfg" -e "$WORK/nx/error.log" &
npid=$!; PIDS+=("$npid")
wait_port $N_PORT
check "nginx no token (no auth)" "$(status_of "https://127.0.0.1:$N_PORT/api/bench")" 200
[ "$FAIL" = 0 ] || die "behaviour check failed for nginx"
measure_peer "nginx (no auth)" "$npid" $N_PORT ""
kill "$npid"; wait "$npid" 2>/dev/null || true
fi

# ---------------------------------------------------------------- report
CPU_MODEL=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
{
  echo "# Load benchmark: Portcullis vs HAProxy vs nginx"
  echo
  echo "Generated by \`bench/run.sh\` — do not edit by hand; re-run it."
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) CPUs ($(nproc --all) online), ${CPU_MODEL:-unknown CPU}, $(uname -sr)"
  echo "- versions: $("$BIN" --version 2>/dev/null || echo "portcullis $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)"), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), h2load $(h2load --version | awk '{print $NF}'), $(openssl version | cut -d' ' -f1-2)"
  echo "- command: \`DURATION=$DURATION CONNS=$CONNS STREAMS=$STREAMS IDLE_N=$IDLE_N UNCACHED_N=$UNCACHED_N ALGS=\"$ALGS\" PEERS=\"$PEERS\" bench/run.sh\`"
  echo "- layout: proxy pinned to CPU $PROXY_CPU (\`taskset -c $PROXY_CPU\`); wrk/h2load and the upstream (nginx \`return 200\`, 1 worker) on CPU $LOAD_CPU; all on 127.0.0.1"
  echo "- TLS: one ECDSA P-256 self-signed certificate for every peer; wrk speaks HTTP/1.1 without session resumption"
  echo "- tokens: minted by Portcullis' \`/auth/login\` (one per algorithm); HAProxy verifies the very same token with the same key (\`jwt_verify\`), checks \`alg\`, \`typ\`, \`iss\`, \`aud\`, \`exp\`, \`nbf\`, strips client \`X-Auth-*\`, sets \`X-Auth-Sub/Role/Session\` from the claims and drops \`Authorization\`. nginx does no authentication (the floor)."
  echo "- checked before timing: valid token 200 (HTTP/1.1 and h2), tampered signature 401, no token 401, identity headers injected and client copies stripped, on every authenticating peer; nginx 200 without a token."
  echo
  echo "| peer | req/s | p50 ms | p99 ms | CPU µs/req | proxy core busy | conn/s (\`Connection: close\`) | CPU µs/conn (+ over keep-alive = handshake) | h2 req/s (-m $STREAMS) | h2 CPU µs/req | idle KiB/conn ($IDLE_N held) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "Columns: keep-alive HTTP/1.1 with $CONNS connections for ${DURATION}s (\`wrk -t1 -c$CONNS --latency\`);"
  echo "CPU µs/req = proxy utime+stime from \`/proc/PID/stat\` (all threads, nginx master+worker) over the run / requests;"
  echo "\`Connection: close\` = same load with a full TLS handshake per request (TLS 1.3, no resumption), the \`+\` figure is its CPU minus the keep-alive CPU per request, i.e. the handshake and connection set-up cost; conn/s there is bounded by the client core (wrk's own handshakes), so compare the CPU column, not conn/s;"
  echo "h2 = \`h2load -t1 -c$CONNS -m$STREAMS -D$DURATION\`; idle = RSS delta of the proxy after opening $IDLE_N TLS keep-alive connections that each served one request / connections held."
  echo
  if ((${#UROWS[@]})); then
    echo "Distinct token on every request (HS256, $UNCACHED_N tokens minted with the same secret and claims by \`bench/mint_hs256.py\`, cycled by \`bench/tokens.lua\`; more than Portcullis' 50,000-entry cache, so every request pays a full verification there too):"
    echo
    echo "| peer | req/s | p50 ms | p99 ms | CPU µs/req | proxy core busy |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${UROWS[@]}"
    echo
  fi
  if ((${#NOTES[@]})); then echo "Warnings from this run:"; echo; printf '%s\n' "${NOTES[@]}"; echo; fi
  echo "Caveat: the benchmark sends one token over and over. Portcullis caches verified tokens (moka, keyed by the token string), so after the first request it pays a hash lookup, not a signature check; HAProxy 2.6 verifies the signature on every request. The HS256/ES256 gap in Portcullis' rows is therefore small by design; the distinct-token table (HS256 only: the minting script does not do ES256) shows the uncached cost (\`cargo bench --bench hot_path\` alone: 5.4 µs HS256, 54 µs ES256 per verification)."
  echo
  echo "Raw tool output of the last run: \`bench/last-run.log\`."
} >"$OUT"
log "wrote $OUT"
