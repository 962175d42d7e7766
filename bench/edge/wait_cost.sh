#!/usr/bin/env bash
# What hookq_redis_wait costs: one module build, two nginx (one worker each) on one Redis master
# with one replica, one without the option and one with `hookq_redis_wait 1`, driven in turn by
# the same wrk load at each connection count. See bench/edge/README.md ("Replica wait").
#
#   bash bench/edge/wait_cost.sh [BUILD_DIR]
#
# Environment knobs (defaults in brackets): CONNS ["64 8 1"] WRK_THREADS [2] WRK_DURATION [10s]
# WARMUP [2s] ROUNDS [2] WAIT_TIMEOUT [100ms] KEEP_TMP [0]. Loopback only; everything is stopped
# on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NGINX=${NGINX:-/usr/sbin/nginx}
CONNS=${CONNS:-"64 8 1"}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-100ms}
BUILD=$(cd "${1:-build}" && pwd)
MODULE=$BUILD/ngx_module/ngx_http_hookq_module.so
[[ -f $MODULE ]] || { echo "module not found: $MODULE" >&2; exit 2; }
for tool in wrk redis-server redis-cli openssl "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

TMP=$(mktemp -d -t hookq-edge-wait.XXXXXX)
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

MASTER=$(free_port)
REPLICA=$(free_port)
for p in "$MASTER" "$REPLICA"; do
    mkdir -p "$TMP/r$p"
    extra=()
    [[ $p == "$REPLICA" ]] && extra=(--replicaof 127.0.0.1 "$MASTER")
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
        --dir "$TMP/r$p" --logfile "$TMP/r$p/redis.log" "${extra[@]}" &
    PIDS+=("$!")
    wait_port "$p" "$!"
done
rcli() { redis-cli -h 127.0.0.1 -p "$MASTER" "$@"; }
for _ in $(seq 100); do
    [[ $(rcli INFO replication | tr -d '\r' | awk -F: '/^connected_slaves/ { print $2 }') == 1 ]] && break
    sleep 0.1
done

SECRET="It's a Secret to Everybody"
printf '%s\n' "$SECRET" >"$TMP/gh.secret"
python3 - "$TMP/body.json" <<'EOF'
import json, sys
doc = {"ref": "refs/heads/main", "repository": {"id": 1296269, "full_name": "octocat/Hello-World"}}
doc["pad"] = "x" * (1024 - len(json.dumps(doc, separators=(",", ":"))) - 10)
open(sys.argv[1], "wb").write(json.dumps(doc, separators=(",", ":")).encode())
EOF
SIG="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$TMP/body.json" | cut -d' ' -f1)"
export HOOKQ_BENCH_BODY=$TMP/body.json HOOKQ_BENCH_SIG=$SIG

declare -A PORT WAIT
WAIT[off]=""
WAIT[wait1]="hookq_redis_wait 1 $WAIT_TIMEOUT;"
for k in off wait1; do
    PORT[$k]=$(free_port)
    mkdir -p "$TMP/$k"
    cat >"$TMP/$k/nginx.conf" <<EOF
load_module $MODULE;
daemon off;
master_process on;
worker_processes 1;
pid $TMP/$k/nginx.pid;
error_log $TMP/$k/error.log info;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/$k/body;
    keepalive_requests 1000000;
    hookq_redis 127.0.0.1:$MASTER;
    # generous, so that a loaded box's stalls show as latency, not as 503s
    hookq_redis_timeout 1s;
    ${WAIT[$k]}
    server {
        listen 127.0.0.1:${PORT[$k]};
        location = /hooks/github {
            hookq github;
            hookq_secret file:$TMP/gh.secret;
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
done

to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; printf "%.2f", n }'
}

echo "== hookq_redis_wait cost ($(date -u +%FT%TZ)): wrk -t$WRK_THREADS -d$WRK_DURATION, $ROUNDS rounds, master + 1 replica on loopback"
printf '%-5s %-6s %-5s %9s %8s %8s %8s %5s\n' conns config round "req/s" "p50 ms" "p99 ms" "waits" ok
for c in $CONNS; do
    for round in $(seq "$ROUNDS"); do
        for k in off wait1; do
            url=http://127.0.0.1:${PORT[$k]}/hooks/github
            t=$((c < WRK_THREADS ? c : WRK_THREADS))
            HOOKQ_BENCH_NONCE="warm-$k-$c-$round-$$" wrk -t"$t" -c"$c" -d"$WARMUP" \
                -s "$HERE/signed.lua" "$url" >/dev/null
            rcli FLUSHALL >/dev/null
            rcli CONFIG RESETSTAT >/dev/null
            out=$(HOOKQ_BENCH_NONCE="run-$k-$c-$round-$$" wrk -t"$t" -c"$c" -d"$WRK_DURATION" \
                --latency -s "$HERE/signed.lua" "$url")
            printf '%s\n' "$out" >"$TMP/wrk-$k-$c-$round.txt"
            rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
            p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
            p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
            non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' <<<"$out")
            waits=$(rcli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_wait:/ { print $3 }')
            printf '%-5s %-6s %-5s %9.0f %8.2f %8.2f %8s %5s\n' "$c" "$k" "$round" "$rps" "$p50" "$p99" \
                "${waits:-0}" "$([[ -z $non2xx ]] && echo yes || echo "NO:$non2xx")"
        done
    done
done
echo "waits: WAIT calls Redis ran in the round (one per event-loop turn of the nginx worker, whatever"
echo "the number of script calls in it). ok: no non-2xx answer."
echo "machine: $(nproc) cpus, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nginx: $("$NGINX" -v 2>&1 | cut -d/ -f2); redis: $(redis-server --version | awk '{ print $3 }')"
for k in off wait1; do
    bad=$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$TMP/$k/error.log" || true)
    echo "$k nginx error log: $bad warn-or-worse lines"
done
