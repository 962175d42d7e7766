#!/usr/bin/env bash
# hookq vs `return 204` vs an OpenResty receiver doing the same work (bench/edge/openresty/), in
# one run: three nginx instances (one worker each) sharing one Redis, driven in turn by the same
# wrk load at each connection count (order rotated every round), then a paced open-loop run of
# each. Per run: req/s, p50/p99, and the CPU time (utime+stime from /proc) of that nginx's worker
# and of redis-server per request. See bench/edge/README.md ("hookq vs OpenResty").
#
#   bash bench/edge/baseline.sh [BUILD_DIR]        (default: build)
#
# Needs, besides run.sh's tools: apt-get install libnginx-mod-http-lua lua-resty-core
# lua-resty-lrucache (Debian 12; no lua-resty-redis needed: openresty/resp.lua is a tiny client).
# Environment knobs (defaults in brackets): CONNS ["64 8"] WRK_THREADS [2] WRK_DURATION [10s]
# WARMUP [2s] ROUNDS [2] PACED_RATE [1000] PACED_SECONDS [10] PACED_CONNS [8] KEEP_TMP [0].
# Only loopback is used; every server is stopped on exit.
set -euo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "build dir ${1:-build} not found" >&2; exit 2; }
MODULE=$BUILD/ngx_module/ngx_http_hookq_module.so
NGINX=${NGINX:-/usr/sbin/nginx}
NGX_MODULES=${NGX_MODULES:-/usr/lib/nginx/modules}
CONNS=${CONNS:-"64 8"}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
PACED_RATE=${PACED_RATE:-1000}
PACED_SECONDS=${PACED_SECONDS:-10}
PACED_CONNS=${PACED_CONNS:-8}
KINDS=(plain hookq openresty)

[[ -f $MODULE ]] || { echo "module not found: $MODULE" >&2; exit 2; }
for m in ndk_http_module ngx_http_lua_module; do
    [[ -f $NGX_MODULES/$m.so ]] || { echo "missing $NGX_MODULES/$m.so: apt-get install libnginx-mod-http-lua lua-resty-core lua-resty-lrucache" >&2; exit 2; }
done
for tool in wrk redis-server redis-cli openssl curl g++ "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

TMP=$(mktemp -d -t hookq-edge-baseline.XXXXXX)
PIDS=()
cleanup() {
    local rc=$?
    set +e
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT" "$REDIS_PID"
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

SECRET="It's a Secret to Everybody"
printf '%s\n' "$SECRET" >"$TMP/gh.secret"
python3 - "$TMP/body.json" <<'EOF'
import json, sys
doc = {"ref": "refs/heads/main", "before": "0" * 40, "after": "f" * 40,
       "repository": {"id": 1296269, "full_name": "octocat/Hello-World", "private": False},
       "pusher": {"name": "octocat", "email": "octocat@github.com"},
       "head_commit": {"id": "f" * 40, "message": "", "timestamp": "2024-01-01T00:00:00Z"}}
pad = 1024 - len(json.dumps(doc, separators=(",", ":")))
doc["head_commit"]["message"] = "x" * pad
open(sys.argv[1], "wb").write(json.dumps(doc, separators=(",", ":")).encode())
EOF
SIG="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$TMP/body.json" | cut -d' ' -f1)"
printf 'Content-Type: application/json\nX-GitHub-Event: push\nX-Hub-Signature-256: %s\n' "$SIG" >"$TMP/headers.txt"
export HOOKQ_BENCH_BODY=$TMP/body.json HOOKQ_BENCH_SIG=$SIG

# The queue each kind writes (plain writes none).
declare -A PORT WORKER QUEUE=([plain]="" [hookq]='hookq:{github}:queue' [openresty]='orr:{github}:queue')
for k in "${KINDS[@]}"; do
    PORT[$k]=$(free_port)
    mkdir -p "$TMP/$k"
    case $k in
    plain)
        head=""
        http=""
        loc="return 204;"
        ;;
    hookq)
        head="load_module $MODULE;"
        http="hookq_redis 127.0.0.1:$REDIS_PORT;"
        loc="hookq github; hookq_secret file:$TMP/gh.secret; hookq_max_queue_depth 0;"
        ;;
    openresty)
        head="load_module $NGX_MODULES/ndk_http_module.so; load_module $NGX_MODULES/ngx_http_lua_module.so;"
        # The secret is read from the same file as hookq's (trailing newline stripped, as hookq does).
        http="lua_package_path '$HERE/openresty/?.lua;/usr/share/lua/5.1/?.lua;;';
    client_body_buffer_size 64k;
    init_by_lua_block {
        local f = assert(io.open('$TMP/gh.secret', 'rb'))
        local secret = f:read('*a'):gsub('%s+\$', '')
        f:close()
        require('receiver').init({ secret = secret, redis_host = '127.0.0.1',
                                   redis_port = $REDIS_PORT, queue = 'github', ttl = 86400 })
    }"
        loc="content_by_lua_block { require('receiver').handle() }"
        ;;
    esac
    cat >"$TMP/$k/nginx.conf" <<EOF
$head
daemon off;
master_process on;
worker_processes 1;
pid $TMP/$k/nginx.pid;
error_log $TMP/$k/error.log info;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/$k/body;
    proxy_temp_path $TMP/$k/proxy;
    fastcgi_temp_path $TMP/$k/fastcgi;
    uwsgi_temp_path $TMP/$k/uwsgi;
    scgi_temp_path $TMP/$k/scgi;
    keepalive_requests 1000000;
    $http
    server {
        listen 127.0.0.1:${PORT[$k]} backlog=4096;
        location = /hooks/github { $loc }
    }
}
EOF
    "$NGINX" -p "$TMP/$k" -c "$TMP/$k/nginx.conf" 2>"$TMP/$k/stderr" &
    PIDS+=("$!")
    wait_port "${PORT[$k]}" "$!" || { cat "$TMP/$k/stderr" "$TMP/$k/error.log" >&2; exit 1; }
    want=202
    [[ $k == plain ]] && want=204
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$TMP/body.json" \
            -H "X-Hub-Signature-256: $SIG" -H "X-GitHub-Delivery: ready-$k-$RANDOM" \
            "http://127.0.0.1:${PORT[$k]}/hooks/github" || true)
        [[ $code == "$want" ]] && break
        sleep 0.1
    done
    [[ $code == "$want" ]] || { echo "$k: answered $code, not $want" >&2; cat "$TMP/$k/error.log" >&2; exit 1; }
    if [[ $k != plain ]]; then
        # A wrong signature must be refused and a repeated delivery id deduplicated, or the
        # receivers would not be doing the work being compared.
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$TMP/body.json" \
            -H "X-Hub-Signature-256: sha256=$(printf '0%.0s' $(seq 64))" -H "X-GitHub-Delivery: bad-$k" \
            "http://127.0.0.1:${PORT[$k]}/hooks/github")
        [[ $code == 401 ]] || { echo "$k: wrong signature answered $code, expected 401" >&2; exit 1; }
        n0=$(rcli LLEN "${QUEUE[$k]}")
        for _ in 1 2; do
            curl -s -o /dev/null -X POST --data-binary "@$TMP/body.json" -H "X-Hub-Signature-256: $SIG" \
                -H "X-GitHub-Delivery: twice-$k" "http://127.0.0.1:${PORT[$k]}/hooks/github"
        done
        n1=$(rcli LLEN "${QUEUE[$k]}")
        ((n1 == n0 + 1)) || { echo "$k: a repeated delivery id was queued $((n1 - n0)) times" >&2; exit 1; }
    fi
    WORKER[$k]=$(awk '{ print $1 }' "/proc/$(cat "$TMP/$k/nginx.pid")/task/$(cat "$TMP/$k/nginx.pid")/children")
done

PACED=$BUILD/bench/hookq_paced_client
if [[ ! -x $PACED ]]; then
    PACED=$TMP/hookq_paced_client
    g++ -O2 -std=c++17 -pthread -o "$PACED" "$HERE/paced_client.cc"
fi

to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.2f", n }'
}
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A R_RPS R_P50 R_P99 R_NG R_RD  # "kind c" -> space-separated values of the rounds
CHECKS=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== hookq vs return 204 vs OpenResty ($(date -u +%FT%TZ)): wrk -t$WRK_THREADS -d$WRK_DURATION, $ROUNDS rounds, order rotated"
printf '%-5s %-10s %-5s %9s %8s %8s %11s %11s %5s\n' conns kind round "req/s" "p50 ms" "p99 ms" "nginx cpu" "redis cpu" ok
printf '%-5s %-10s %-5s %9s %8s %8s %11s %11s %5s\n' "" "" "" "" "" "" "us/req" "us/req" ""
for c in $CONNS; do
    for round in $(seq "$ROUNDS"); do
        order=("${KINDS[@]:$(((round - 1) % 3))}" "${KINDS[@]:0:$(((round - 1) % 3))}")
        for k in "${order[@]}"; do
            url=http://127.0.0.1:${PORT[$k]}/hooks/github
            HOOKQ_BENCH_NONCE="warm-$k-$c-$round-$$" wrk -t"$WRK_THREADS" -c"$c" -d"$WARMUP" \
                -s "$HERE/signed.lua" "$url" >/dev/null
            rcli FLUSHALL >/dev/null
            n0=$(cpu_ticks "${WORKER[$k]}")
            r0=$(cpu_ticks "$REDIS_PID")
            out=$(HOOKQ_BENCH_NONCE="run-$k-$c-$round-$$" wrk -t"$WRK_THREADS" -c"$c" -d"$WRK_DURATION" \
                --latency -s "$HERE/signed.lua" "$url")
            n1=$(cpu_ticks "${WORKER[$k]}")
            r1=$(cpu_ticks "$REDIS_PID")
            printf '%s\n' "$out" >"$TMP/wrk-$k-$c-$round.txt"
            rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
            p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
            p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
            non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' <<<"$out")
            total=$(awk '/requests in/ { print $1 }' <<<"$out")
            ok=yes
            if [[ -n $non2xx ]]; then ok=NO; fi
            if [[ -n ${QUEUE[$k]} ]]; then
                llen=$(rcli LLEN "${QUEUE[$k]}")
                # wrk does not count the requests in flight when it stops; they were queued.
                ((llen >= total && llen <= total + c)) || ok=NO
            fi
            [[ $ok == yes ]] || CHECKS+=("$k -c$c round $round: non-2xx=${non2xx:-0} LLEN=${llen:-} wrk=$total")
            read -r ng rd < <(awk -v n="$total" -v nt=$((n1 - n0)) -v rt=$((r1 - r0)) -v tick="$TICK" \
                'BEGIN { printf "%.2f %.2f\n", nt * 1e6 / tick / n, rt * 1e6 / tick / n }')
            R_RPS[$k $c]+="$rps "; R_P50[$k $c]+="$p50 "; R_P99[$k $c]+="$p99 "
            R_NG[$k $c]+="$ng "; R_RD[$k $c]+="$rd "
            printf '%-5s %-10s %-5s %9.0f %8.2f %8.2f %11.2f %11.2f %5s\n' "$c" "$k" "$round" "$rps" "$p50" "$p99" "$ng" "$rd" "$ok"
        done
    done
done

echo "== paced: $PACED_RATE req/s for ${PACED_SECONDS}s on $PACED_CONNS keep-alive connections (latency from the scheduled send)"
declare -A PACED_OUT PACED_NG PACED_RD
for k in "${KINDS[@]}"; do
    "$PACED" 127.0.0.1 "${PORT[$k]}" /hooks/github "$PACED_RATE" 2 "$PACED_CONNS" "$TMP/headers.txt" "$TMP/body.json" >/dev/null || true
    rcli FLUSHALL >/dev/null
    n0=$(cpu_ticks "${WORKER[$k]}")
    r0=$(cpu_ticks "$REDIS_PID")
    PACED_OUT[$k]=$("$PACED" 127.0.0.1 "${PORT[$k]}" /hooks/github "$PACED_RATE" "$PACED_SECONDS" "$PACED_CONNS" "$TMP/headers.txt" "$TMP/body.json" || true)
    n1=$(cpu_ticks "${WORKER[$k]}")
    r1=$(cpu_ticks "$REDIS_PID")
    cnt=$(kv count "${PACED_OUT[$k]}")
    read -r PACED_NG[$k] PACED_RD[$k] < <(awk -v n="$cnt" -v nt=$((n1 - n0)) -v rt=$((r1 - r0)) -v tick="$TICK" \
        'BEGIN { printf "%.2f %.2f\n", nt * 1e6 / tick / n, rt * 1e6 / tick / n }')
    echo "  $k: ${PACED_OUT[$k]}  nginx_cpu_us=${PACED_NG[$k]} redis_cpu_us=${PACED_RD[$k]}"
    if [[ $(kv non2xx "${PACED_OUT[$k]}") != 0 || $(kv errors "${PACED_OUT[$k]}") != 0 ]]; then
        CHECKS+=("paced $k: ${PACED_OUT[$k]}")
    fi
    if [[ -n ${QUEUE[$k]} && $(rcli LLEN "${QUEUE[$k]}") != "$cnt" ]]; then
        CHECKS+=("paced $k: LLEN $(rcli LLEN "${QUEUE[$k]}") != count $cnt")
    fi
done

echo
echo "== summary (wrk: median of $ROUNDS rounds; CPU in us of the nginx worker / redis-server per request)"
printf '%-22s %14s %14s %14s\n' "" "${KINDS[@]}"
for c in $CONNS; do
    for m in RPS P50 P99 NG RD; do
        declare -n arr="R_$m"
        label=$(case $m in RPS) echo "wrk -c$c req/s" ;; P50) echo "wrk -c$c p50 ms" ;;
            P99) echo "wrk -c$c p99 ms" ;; NG) echo "wrk -c$c nginx us/req" ;; RD) echo "wrk -c$c redis us/req" ;; esac)
        vals=()
        for k in "${KINDS[@]}"; do
            # shellcheck disable=SC2086
            vals+=("$(median ${arr[$k $c]})")
        done
        printf '%-22s %14s %14s %14s\n' "$label" "${vals[@]}"
        unset -n arr
    done
done
row() {  # label key
    local vals=() k
    for k in "${KINDS[@]}"; do
        vals+=("$(awk -v v="$(kv "$2" "${PACED_OUT[$k]}")" 'BEGIN { printf "%.3f", v / 1000 }')")
    done
    printf '%-22s %14s %14s %14s\n' "$1" "${vals[@]}"
}
row "paced $PACED_RATE/s p50 ms" p50_us
row "paced $PACED_RATE/s p99 ms" p99_us
row "paced $PACED_RATE/s p99.9 ms" p999_us
printf '%-22s %14s %14s %14s\n' "paced nginx us/req" "${PACED_NG[plain]}" "${PACED_NG[hookq]}" "${PACED_NG[openresty]}"
printf '%-22s %14s %14s %14s\n' "paced redis us/req" "${PACED_RD[plain]}" "${PACED_RD[hookq]}" "${PACED_RD[openresty]}"
if ((${#CHECKS[@]})); then
    echo "CHECKS FAILED:"; printf '  %s\n' "${CHECKS[@]}"
else
    echo "checks: every request 2xx; hookq and OpenResty queued every request (LLEN), refused a bad signature, deduplicated a repeated id"
fi
echo "machine: $(nproc) cpus, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "nginx: $("$NGINX" -v 2>&1 | cut -d/ -f2); redis: $(redis-server --version | awk '{ print $3 }'); lua-nginx-module: $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?')"
for k in "${KINDS[@]}"; do
    bad=$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$TMP/$k/error.log" || true)
    echo "$k nginx error log: $bad warn-or-worse lines"
    grep -E '\[(warn|error|crit|alert|emerg)\]' "$TMP/$k/error.log" | head -3 || true
done
