#!/usr/bin/env bash
# Before/after for the edge module: two builds of ngx_http_hookq_module.so, each in its own nginx
# (one worker), sharing one Redis, driven in turn by the same wrk load at each connection count.
# Per round: req/s, latency, what Redis spent on the ingest calls (INFO commandstats), and the CPU
# time of the nginx worker and of redis-server per webhook. See bench/edge/README.md.
#
#   bash bench/edge/compare.sh OLD_BUILD_DIR NEW_BUILD_DIR
#
# Environment knobs (defaults in brackets): CONNS ["64 8"] WRK_THREADS [2] WRK_DURATION [10s]
# WARMUP [2s] ROUNDS [2] KEEP_TMP [0]. Only loopback is used; every server is stopped on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
CONNS=${CONNS:-"64 8"}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}

(($# == 2)) || { echo "usage: $0 OLD_BUILD_DIR NEW_BUILD_DIR" >&2; exit 2; }
declare -A MODULE
MODULE[old]=$(cd "$1" && pwd)/ngx_module/ngx_http_hookq_module.so
MODULE[new]=$(cd "$2" && pwd)/ngx_module/ngx_http_hookq_module.so
for k in old new; do
    [[ -f ${MODULE[$k]} ]] || { echo "module not found: ${MODULE[$k]}" >&2; exit 2; }
done
for tool in wrk redis-server redis-cli openssl "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

TMP=$(mktemp -d -t hookq-edge-compare.XXXXXX)
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
# CPU time (utime + stime) of a process, in clock ticks
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
export HOOKQ_BENCH_BODY=$TMP/body.json HOOKQ_BENCH_SIG=$SIG

declare -A PORT WORKER
for k in old new; do
    PORT[$k]=$(free_port)
    mkdir -p "$TMP/$k"
    cat >"$TMP/$k/nginx.conf" <<EOF
load_module ${MODULE[$k]};
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
    hookq_redis 127.0.0.1:$REDIS_PORT;
    server {
        listen 127.0.0.1:${PORT[$k]};
        location = /hooks/github {
            hookq github;
            hookq_secret file:$TMP/gh.secret;
            hookq_max_queue_depth 0;
        }
    }
}
EOF
    "$NGINX" -p "$TMP/$k" -c "$TMP/$k/nginx.conf" 2>"$TMP/$k/stderr" &
    PIDS+=("$!")
    wait_port "${PORT[$k]}" "$!" || { cat "$TMP/$k/stderr" "$TMP/$k/error.log" >&2; exit 1; }
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$TMP/body.json" \
            -H "X-Hub-Signature-256: $SIG" -H "X-GitHub-Delivery: ready-$k-$RANDOM" \
            "http://127.0.0.1:${PORT[$k]}/hooks/github" || true)
        [[ $code == 202 ]] && break
        sleep 0.1
    done
    [[ $code == 202 ]] || { echo "$k: edge never answered 202" >&2; cat "$TMP/$k/error.log" >&2; exit 1; }
    WORKER[$k]=$(cat "/proc/$(cat "$TMP/$k/nginx.pid")/task/$(cat "$TMP/$k/nginx.pid")/children" | awk '{ print $1 }')
done

to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.2f", n }'
}

echo "== hookq edge before/after ($(date -u +%FT%TZ)): wrk -t$WRK_THREADS -d$WRK_DURATION, $ROUNDS rounds, order old/new"
echo "   old: ${MODULE[old]}"
echo "   new: ${MODULE[new]}"
printf '%-4s %-4s %-5s %9s %8s %8s %8s %10s %10s %11s %11s %5s\n' \
    conns kind round "req/s" "p50 ms" "p99 ms" "calls" "us/call" "redis us" "redis cpu" "nginx cpu" ok
printf '%-4s %-4s %-5s %9s %8s %8s %8s %10s %10s %11s %11s %5s\n' \
    "" "" "" "" "" "" "ingest" "(Redis)" "/webhook" "us/webhook" "us/webhook" ""
for c in $CONNS; do
    for round in $(seq "$ROUNDS"); do
        for k in old new; do
            url=http://127.0.0.1:${PORT[$k]}/hooks/github
            HOOKQ_BENCH_NONCE="warm-$k-$c-$round-$$" wrk -t"$WRK_THREADS" -c"$c" -d"$WARMUP" \
                -s "$HERE/signed.lua" "$url" >/dev/null
            rcli FLUSHALL >/dev/null
            rcli CONFIG RESETSTAT >/dev/null
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
            llen=$(rcli LLEN 'hookq:{github}:queue')
            # The ingest calls: EVALSHA (and EVAL, after a NOSCRIPT) in INFO commandstats.
            read -r calls usec < <(rcli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
                /^cmdstat_eval(sha)?:/ { calls += $3; usec += $5 } END { print calls + 0, usec + 0 }')
            awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v calls="$calls" -v usec="$usec" \
                -v n="$llen" -v nt=$((n1 - n0)) -v rt=$((r1 - r0)) -v tick="$TICK" \
                -v c="$c" -v k="$k" -v round="$round" \
                -v ok="$([[ -z $non2xx ]] && ((llen >= total)) && echo yes || echo NO)" 'BEGIN {
                printf "%-4s %-4s %-5s %9.0f %8.2f %8.2f %8d %10.2f %10.2f %11.2f %11.2f %5s\n",
                    c, k, round, rps, p50, p99, calls, calls ? usec / calls : 0, n ? usec / n : 0,
                    n ? rt * 1e6 / tick / n : 0, n ? nt * 1e6 / tick / n : 0, ok }'
        done
    done
done
echo
echo "calls: ingest script calls Redis ran in the round; us/call: Redis's usec_per_call for them;"
echo "redis us/webhook: their total usec over the webhooks queued (LLEN); cpu us/webhook: the"
echo "process's utime+stime over the round (${TICK} ticks/s) over the webhooks queued."
echo "ok: no non-2xx answer and LLEN >= wrk's count of completed requests."
echo "machine: $(nproc) cpus, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nginx: $("$NGINX" -v 2>&1 | cut -d/ -f2); redis: $(redis-server --version | awk '{ print $3 }')"
for k in old new; do
    bad=$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$TMP/$k/error.log" || true)
    echo "$k nginx error log: $bad warn-or-worse lines"
done
