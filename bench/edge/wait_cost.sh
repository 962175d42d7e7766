#!/usr/bin/env bash
# What hookq_redis_wait costs: one module build, two nginx (one worker each) on one Redis master
# with one replica, one without the option and one with `hookq_redis_wait 1`, driven in turn by
# the same wrk load at each connection count. See bench/edge/README.md ("Replica wait").
#
#   bash bench/edge/wait_cost.sh [BUILD_DIR]
#
# Environment knobs (defaults in brackets): CONNS ["64 8 1"] WRK_THREADS [2] WRK_DURATION [10s]
# WARMUP [2s] ROUNDS [2] WAIT_TIMEOUT [100ms] KEEP_TMP [0]. Loopback only; everything is stopped
# on exit. Shared setup: lib.sh.
set -euo pipefail
REDIS_UNIX=0  # TCP only here
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${CONNS:-"64 8 1"}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-100ms}
MODULE=$(hookq_module "${1:-build}")
need_tools wrk redis-server redis-cli openssl "$NGINX"

bench_init wait
start_redis "$TMP/master"
MASTER=$REDIS_PORT
start_redis "$TMP/replica" --replicaof 127.0.0.1 "$MASTER"
REDIS_PORT=$MASTER  # rcli and hookq talk to the master
for _ in $(seq 100); do
    [[ $(rcli INFO replication | tr -d '\r' | awk -F: '/^connected_slaves/ { print $2 }') == 1 ]] && break
    sleep 0.1
done
make_signed_request

declare -A PORT WAIT
WAIT[off]=""
WAIT[wait1]="hookq_redis_wait 1 $WAIT_TIMEOUT;"
for k in off wait1; do
    PORT[$k]=$(free_port)
    # hookq_redis_timeout generous, so that a loaded box's stalls show as latency, not as 503s
    write_nginx_conf "$TMP/$k" "127.0.0.1:${PORT[$k]}" "load_module $MODULE;" \
        "hookq_redis $(redis_target); hookq_redis_timeout 1s; ${WAIT[$k]}" \
        "location = /hooks/github { hookq github; hookq_secret file:$TMP/gh.secret; }"
    start_nginx "$TMP/$k" "${PORT[$k]}"
    wait_ready "$TMP/$k" "http://127.0.0.1:${PORT[$k]}/hooks/github" 202
done

echo "== hookq_redis_wait cost ($(date -u +%FT%TZ)): wrk -t$WRK_THREADS -d$WRK_DURATION, $ROUNDS rounds, master + 1 replica on loopback"
printf '%-5s %-6s %-5s %9s %8s %8s %8s %5s\n' conns config round "req/s" "p50 ms" "p99 ms" "waits" ok
for c in $CONNS; do
    for round in $(seq "$ROUNDS"); do
        for k in off wait1; do
            url=http://127.0.0.1:${PORT[$k]}/hooks/github
            t=$((c < WRK_THREADS ? c : WRK_THREADS))
            wrk_signed "warm-$k-$c-$round-$$" "$t" "$c" "$WARMUP" "$url" >/dev/null
            rcli FLUSHALL >/dev/null
            rcli CONFIG RESETSTAT >/dev/null
            out=$(wrk_signed "run-$k-$c-$round-$$" "$t" "$c" "$WRK_DURATION" "$url" --latency)
            printf '%s\n' "$out" >"$TMP/wrk-$k-$c-$round.txt"
            wrk_stats "$out"
            waits=$(rcli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_wait:/ { print $3 }')
            printf '%-5s %-6s %-5s %9.0f %8.2f %8.2f %8s %5s\n' "$c" "$k" "$round" "$W_RPS" "$W_P50" "$W_P99" \
                "${waits:-0}" "$([[ -z $W_NON2XX ]] && echo yes || echo "NO:$W_NON2XX")"
        done
    done
done
echo "waits: WAIT calls Redis ran in the round (one per event-loop turn of the nginx worker, whatever"
echo "the number of script calls in it). ok: no non-2xx answer."
echo "machine: $(cpu_desc); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nginx: $(nginx_version); redis: $(redis_version)"
for k in off wait1; do
    echo "$k nginx error log: $(count_warn "$TMP/$k/error.log") warn-or-worse lines"
done
