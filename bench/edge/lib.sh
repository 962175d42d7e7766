# shellcheck shell=bash disable=SC2034  # sourced; its globals are read by the scripts
# Shared setup of the edge benchmarks (baseline.sh, compare.sh, run.sh, wait_cost.sh): sourced
# after `set -euo pipefail`, never run. What a script gets from it:
#
#   bench_init NAME            $TMP (mktemp -d, removed on exit unless KEEP_TMP=1) and the PIDS
#                              array: every server started below is TERMed and reaped on exit
#   need_tools TOOL...         exit 2 naming the first tool not on PATH
#   hookq_module BUILD_DIR     absolute path of BUILD_DIR's ngx_http_hookq_module.so (fails if none)
#   free_port, wait_port PORT PID
#   start_redis DIR [ARG...]   redis-server on a free loopback port, no persistence, files in DIR;
#                              with REDIS_UNIX=1 also on the unix socket DIR/redis.sock (0700).
#                              Sets REDIS_PORT REDIS_PID REDIS_SOCK; rcli talks to REDIS_PORT.
#   redis_target               what `hookq_redis` takes: unix:PATH or 127.0.0.1:PORT
#   redis_transport            "TCP (loopback)" or "unix socket", for headers
#   expect_redis_clients MIN   at least MIN clients connected, all over that transport
#   make_signed_request        $TMP/gh.secret, the GitHub push body $TMP/body.json, its
#                              signature SIG, $TMP/headers.txt (paced client); exports
#                              HOOKQ_BENCH_BODY and HOOKQ_BENCH_SIG for signed.lua
#   write_nginx_conf DIR LISTEN MAIN HTTP SERVER
#                              DIR/nginx.conf: one worker, pid, error log and temp paths in DIR,
#                              keepalive_requests 1000000; MAIN/HTTP/SERVER are added verbatim
#   start_nginx DIR PORT       runs it (prefix DIR), waits for PORT; NGINX_PID
#   nginx_worker_pid DIR       pid of that nginx's (only) worker
#   wait_ready DIR URL CODE    POSTs the signed body until URL answers CODE (the worker's Redis
#                              link is up once hookq answers 202)
#   expect_bad_signature_refused DIR URL
#   wrk_signed NONCE THREADS CONNS DURATION URL [WRK_OPTION...]   wrk driven by signed.lua
#   wrk_stats OUTPUT           W_RPS W_TOTAL W_P50 W_P99 (ms) W_NON2XX (empty when none)
#   cpu_ticks PID, TICK        utime+stime of PID in clock ticks; ticks per second
#   cpu_us_per_req TICKS N     TICKS as microseconds per request ("%.2f")
#   to_ms WRK_LATENCY, median VALUE..., kv KEY LINE   (MS_DECIMALS, default 2, for both)
#   build_paced_client BUILD_DIR   PACED: BUILD_DIR/bench/hookq_paced_client, else built in $TMP
#   count_warn FILE, WARN_RE   warn-or-worse lines of an nginx error log
#   cpu_desc, nginx_version, redis_version   for the closing "machine:" lines
#
# Knobs read here: NGINX [/usr/sbin/nginx], REDIS_UNIX [0], KEEP_TMP [0], BODY_BYTES [1024].

EDGE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
REDIS_UNIX=${REDIS_UNIX:-0}
[[ $REDIS_UNIX == 0 || $REDIS_UNIX == 1 ]] || { echo "REDIS_UNIX must be 0 or 1, not '$REDIS_UNIX'" >&2; exit 2; }
MS_DECIMALS=${MS_DECIMALS:-2}
BODY_BYTES=${BODY_BYTES:-1024}
((BODY_BYTES >= 1024)) || { echo "BODY_BYTES must be at least 1024, not '$BODY_BYTES'" >&2; exit 2; }
TICK=$(getconf CLK_TCK)
WARN_RE='\[(warn|error|crit|alert|emerg)\]'

# --- process lifetime ----------------------------------------------------------------------------
bench_init() {  # name
    TMP=$(mktemp -d -t "hookq-edge-$1.XXXXXX")
    PIDS=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    local rc=$? pid
    set +e
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}

need_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
    done
}

hookq_module() {  # build dir
    local dir so
    dir=$(cd "$1" 2>/dev/null && pwd) || { echo "build dir $1 not found" >&2; return 2; }
    so=$dir/ngx_module/ngx_http_hookq_module.so
    [[ -f $so ]] || { echo "module not found: $so (cmake --build $1 --target ngx_http_hookq_module)" >&2; return 2; }
    echo "$so"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {  # port pid
    for _ in $(seq 300); do
        kill -0 "$2" 2>/dev/null || { echo "process $2 exited before port $1 opened" >&2; return 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "port $1 did not open" >&2
    return 1
}

# --- Redis ---------------------------------------------------------------------------------------
# No persistence (--save '' --appendonly no): no disk in the measured path.
start_redis() {  # dir [redis-server option...]
    local dir=$1
    shift
    mkdir -p "$dir"
    REDIS_PORT=$(free_port)
    REDIS_SOCK=
    local unix=()
    if [[ $REDIS_UNIX == 1 ]]; then
        REDIS_SOCK=$dir/redis.sock
        unix=(--unixsocket "$REDIS_SOCK" --unixsocketperm 700)
    fi
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --dir "$dir" --logfile "$dir/redis.log" "${unix[@]}" "$@" &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT" "$REDIS_PID"
    if [[ -n $REDIS_SOCK ]]; then
        for _ in $(seq 100); do [[ -S $REDIS_SOCK ]] && break; sleep 0.05; done
        [[ -S $REDIS_SOCK ]] || { echo "redis did not create $REDIS_SOCK" >&2; cat "$dir/redis.log" >&2; return 1; }
    fi
}
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
redis_target() {
    if [[ $REDIS_UNIX == 1 ]]; then echo "unix:$REDIS_SOCK"; else echo "127.0.0.1:$REDIS_PORT"; fi
}
redis_transport() {
    if [[ $REDIS_UNIX == 1 ]]; then echo "unix socket"; else echo "TCP (loopback)"; fi
}
# Every Redis client but this redis-cli must have come over the transport asked for (CLIENT LIST
# flags U: unix socket), and at least MIN of them: a receiver left on TCP would otherwise pass.
expect_redis_clients() {  # min
    local unix tcp
    read -r unix tcp < <(rcli CLIENT LIST | awk '!/cmd=client\|list/ {
        f = $0; sub(/.* flags=/, "", f); sub(/ .*/, "", f); if (f ~ /U/) u++; else t++ }
        END { print u + 0, t + 0 }')
    if [[ $REDIS_UNIX == 1 ]]; then
        ((tcp == 0 && unix >= $1)) || { echo "Redis clients: $unix on the unix socket, $tcp on TCP; want >= $1 and 0" >&2; exit 1; }
    else
        ((unix == 0 && tcp >= $1)) || { echo "Redis clients: $tcp on TCP, $unix on a unix socket; want >= $1 and 0" >&2; exit 1; }
    fi
}

# --- the request -----------------------------------------------------------------------------------
# A GitHub push body (JSON, exactly BODY_BYTES [1024] bytes) signed with the secret GitHub's docs
# use.
make_signed_request() {
    SECRET="It's a Secret to Everybody"
    printf '%s\n' "$SECRET" >"$TMP/gh.secret"
    python3 - "$TMP/body.json" "$BODY_BYTES" <<'EOF'
import json, sys
doc = {"ref": "refs/heads/main", "before": "0" * 40, "after": "f" * 40,
       "repository": {"id": 1296269, "full_name": "octocat/Hello-World", "private": False},
       "pusher": {"name": "octocat", "email": "octocat@github.com"},
       "head_commit": {"id": "f" * 40, "message": "", "timestamp": "2024-01-01T00:00:00Z"}}
size = int(sys.argv[2])
pad = size - len(json.dumps(doc, separators=(",", ":")))
doc["head_commit"]["message"] = "x" * pad
data = json.dumps(doc, separators=(",", ":")).encode()
assert len(data) == size, len(data)
open(sys.argv[1], "wb").write(data)
EOF
    SIG="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$TMP/body.json" | cut -d' ' -f1)"
    printf 'Content-Type: application/json\nX-GitHub-Event: push\nX-Hub-Signature-256: %s\n' "$SIG" >"$TMP/headers.txt"
    export HOOKQ_BENCH_BODY=$TMP/body.json HOOKQ_BENCH_SIG=$SIG
}

# --- nginx ---------------------------------------------------------------------------------------
write_nginx_conf() {  # dir listen main http server
    local dir=$1 user=
    # The unix socket is 0700 and ours; nginx, started as root, would run its worker as nobody.
    [[ $REDIS_UNIX == 1 && $EUID == 0 ]] && user="user root;"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
$3
$user
daemon off;
master_process on;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    # wrk must not reconnect every 1000 requests
    keepalive_requests 1000000;
    $4
    server {
        listen $2;
        $5
    }
}
EOF
}
start_nginx() {  # dir port
    "$NGINX" -p "$1" -c "$1/nginx.conf" 2>"$1/stderr" &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
    wait_port "$2" "$NGINX_PID" || { cat "$1/stderr" "$1/error.log" >&2; exit 1; }
}
nginx_worker_pid() {  # dir
    local master
    master=$(cat "$1/nginx.pid")
    awk '{ print $1 }' "/proc/$master/task/$master/children"
}
post_signed() {  # url delivery-id signature -> HTTP status
    curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$TMP/body.json" \
        -H "Content-Type: application/json" -H "X-Hub-Signature-256: $3" -H "X-GitHub-Delivery: $2" "$1"
}
wait_ready() {  # dir url code
    local name code=
    name=$(basename "$1")
    for _ in $(seq 100); do
        code=$(post_signed "$2" "ready-$name-$RANDOM$RANDOM" "$SIG" || true)
        [[ $code == "$3" ]] && return 0
        sleep 0.1
    done
    echo "$name: never answered $3 (last: $code)" >&2
    cat "$1/error.log" >&2
    exit 1
}
# A wrong signature must be refused, or the benchmark would measure nothing.
expect_bad_signature_refused() {  # dir url
    local name code
    name=$(basename "$1")
    code=$(post_signed "$2" "bad-$name" "sha256=$(printf '0%.0s' {1..64})")
    [[ $code == 401 ]] || { echo "$name: wrong signature answered $code, expected 401" >&2; exit 1; }
}

# --- load and measures ---------------------------------------------------------------------------
wrk_signed() {  # nonce threads conns duration url [wrk option...]
    local nonce=$1 threads=$2 conns=$3 duration=$4 url=$5
    shift 5
    HOOKQ_BENCH_NONCE=$nonce wrk -t"$threads" -c"$conns" -d"$duration" "$@" -s "$EDGE_DIR/signed.lua" "$url"
}
wrk_stats() {  # wrk --latency output
    W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$1")
    W_TOTAL=$(awk '/requests in/ { print $1 }' <<<"$1")
    W_P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$1")")
    W_P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$1")")
    W_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' <<<"$1")
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_us_per_req() { awk -v t="$1" -v n="$2" -v tick="$TICK" 'BEGIN { printf "%.2f", t * 1e6 / tick / n }'; }

to_ms() {  # wrk latency ("812.00us", "1.23ms", "2.01s", "1.05m") -> ms
    awk -v v="$1" -v d="$MS_DECIMALS" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.*f", d, n }'
}
median() {
    printf '%s\n' "$@" | sort -g | awk -v d="$MS_DECIMALS" '{ a[NR] = $1 } END {
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.*f\n", d, (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }  # key "k=v k=v ..." -> value

build_paced_client() {  # build dir
    PACED=$1/bench/hookq_paced_client
    if [[ ! -x $PACED ]]; then
        PACED=$TMP/hookq_paced_client
        g++ -O2 -std=c++17 -pthread -o "$PACED" "$EDGE_DIR/paced_client.cc"
    fi
}

# --- report --------------------------------------------------------------------------------------
count_warn() { grep -cE "$WARN_RE" "$1" || true; }
cpu_desc() { echo "$(nproc) cpus, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"; }
nginx_version() { "$NGINX" -v 2>&1 | cut -d/ -f2; }
redis_version() { redis-server --version | awk '{ print $3 }'; }
