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
# Shared setup: lib.sh.
set -euo pipefail
REDIS_UNIX=0  # TCP only here
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNS=${CONNS:-"64 8"}
WRK_THREADS=${WRK_THREADS:-2}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}

(($# == 2)) || { echo "usage: $0 OLD_BUILD_DIR NEW_BUILD_DIR" >&2; exit 2; }
declare -A MODULE
MODULE[old]=$(hookq_module "$1")
MODULE[new]=$(hookq_module "$2")
need_tools wrk redis-server redis-cli openssl "$NGINX"

bench_init compare
start_redis "$TMP"
make_signed_request

declare -A PORT WORKER
for k in old new; do
    PORT[$k]=$(free_port)
    write_nginx_conf "$TMP/$k" "127.0.0.1:${PORT[$k]}" "load_module ${MODULE[$k]};" "hookq_redis $(redis_target);" \
        "location = /hooks/github { hookq github; hookq_secret file:$TMP/gh.secret; hookq_max_queue_depth 0; }"
    start_nginx "$TMP/$k" "${PORT[$k]}"
    wait_ready "$TMP/$k" "http://127.0.0.1:${PORT[$k]}/hooks/github" 202
    WORKER[$k]=$(nginx_worker_pid "$TMP/$k")
done

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
            wrk_signed "warm-$k-$c-$round-$$" "$WRK_THREADS" "$c" "$WARMUP" "$url" >/dev/null
            rcli FLUSHALL >/dev/null
            rcli CONFIG RESETSTAT >/dev/null
            n0=$(cpu_ticks "${WORKER[$k]}")
            r0=$(cpu_ticks "$REDIS_PID")
            out=$(wrk_signed "run-$k-$c-$round-$$" "$WRK_THREADS" "$c" "$WRK_DURATION" "$url" --latency)
            n1=$(cpu_ticks "${WORKER[$k]}")
            r1=$(cpu_ticks "$REDIS_PID")
            printf '%s\n' "$out" >"$TMP/wrk-$k-$c-$round.txt"
            wrk_stats "$out"
            llen=$(rcli LLEN 'hookq:{github}:queue')
            # The ingest calls: EVALSHA (and EVAL, after a NOSCRIPT) in INFO commandstats.
            read -r calls usec < <(rcli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
                /^cmdstat_eval(sha)?:/ { calls += $3; usec += $5 } END { print calls + 0, usec + 0 }')
            awk -v rps="$W_RPS" -v p50="$W_P50" -v p99="$W_P99" -v calls="$calls" -v usec="$usec" \
                -v n="$llen" -v nt=$((n1 - n0)) -v rt=$((r1 - r0)) -v tick="$TICK" \
                -v c="$c" -v k="$k" -v round="$round" \
                -v ok="$([[ -z $W_NON2XX ]] && ((llen >= W_TOTAL)) && echo yes || echo NO)" 'BEGIN {
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
echo "machine: $(cpu_desc); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nginx: $(nginx_version); redis: $(redis_version)"
for k in old new; do
    echo "$k nginx error log: $(count_warn "$TMP/$k/error.log") warn-or-worse lines"
done
