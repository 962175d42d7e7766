#!/usr/bin/env bash
# Edge benchmark: the hookq nginx module (verify + EVALSHA ingest into Redis) against a plain
# `return 204` location in the same nginx, same run. See bench/edge/README.md.
#
#   bash bench/edge/run.sh [BUILD_DIR]        (default: build)
#
# Environment knobs (defaults in brackets): WRK_THREADS [2] WRK_CONNS [64] WRK_DURATION [10s]
# WARMUP [2s] ROUNDS [2] PACED_RATE [1000] PACED_SECONDS [10] PACED_CONNS [8] KEEP_TMP [0]
# MICRO_BUILD [BUILD_DIR] (where bench/bench_verify and bench/bench_envelope are looked for)
# REDIS_UNIX [0] (1: hookq reaches Redis over a unix socket, not TCP)
# Only loopback is used; redis-server and nginx are started here and stopped on exit. Shared
# setup: lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD=${1:-build}
MODULE=$(hookq_module "$BUILD")
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-64}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
PACED_RATE=${PACED_RATE:-1000}
PACED_SECONDS=${PACED_SECONDS:-10}
PACED_CONNS=${PACED_CONNS:-8}
MS_DECIMALS=3  # this script's tables print ms with 3 decimals
need_tools wrk redis-server redis-cli openssl "$NGINX"

# --- servers -------------------------------------------------------------------------------------
bench_init bench
start_redis "$TMP"
make_signed_request  # 1 KB JSON body and its GitHub signature

HTTP_PORT=$(free_port)
write_nginx_conf "$TMP/nginx" "127.0.0.1:$HTTP_PORT" "load_module $MODULE;" "hookq_redis $(redis_target);" "
        location = /hooks/github {
            hookq github;
            hookq_secret file:$TMP/gh.secret;
            hookq_max_queue_depth 0;
        }
        location = /plain { return 204; }"
start_nginx "$TMP/nginx" "$HTTP_PORT"
BASE=http://127.0.0.1:$HTTP_PORT
ERROR_LOG=$TMP/nginx/error.log
wait_ready "$TMP/nginx" "$BASE/hooks/github" 202
expect_bad_signature_refused "$TMP/nginx" "$BASE/hooks/github"
expect_redis_clients 1
build_paced_client "$BUILD"

declare -a PLAIN_RPS=() PLAIN_P50=() PLAIN_P99=() HOOKQ_RPS=() HOOKQ_P50=() HOOKQ_P99=()
CHECKS=()
run_wrk() {  # kind(plain|hookq) round
    local kind=$1 round=$2 path out total rps p50 p99 non2xx llen errs
    [[ $kind == plain ]] && path=/plain || path=/hooks/github
    wrk_signed "warm-$kind-$round-$$" "$WRK_THREADS" "$WRK_CONNS" "$WARMUP" "$BASE$path" >/dev/null
    rcli FLUSHALL >/dev/null
    out=$(wrk_signed "run-$kind-$round-$$" "$WRK_THREADS" "$WRK_CONNS" "$WRK_DURATION" "$BASE$path" --latency)
    printf '%s\n' "$out" >"$TMP/wrk-$kind-$round.txt"
    wrk_stats "$out"
    rps=$W_RPS total=$W_TOTAL p50=$W_P50 p99=$W_P99 non2xx=$W_NON2XX
    errs=$(grep -E '^ +Socket errors' <<<"$out" | sed 's/^ *//' || true)
    if [[ $kind == plain ]]; then
        PLAIN_RPS+=("$rps"); PLAIN_P50+=("$p50"); PLAIN_P99+=("$p99")
        printf '  %-6s round %d: %10s req/s  p50 %8s ms  p99 %8s ms  requests %s  non-2xx %s %s\n' \
            "$kind" "$round" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}" "$errs"
    else
        llen=$(rcli LLEN 'hookq:{github}:queue')
        HOOKQ_RPS+=("$rps"); HOOKQ_P50+=("$p50"); HOOKQ_P99+=("$p99")
        printf '  %-6s round %d: %10s req/s  p50 %8s ms  p99 %8s ms  requests %s  non-2xx %s  LLEN %s %s\n' \
            "$kind" "$round" "$rps" "$p50" "$p99" "$total" "${non2xx:-0}" "$llen" "$errs"
        # wrk counts completed responses only; requests still in flight when it stops may have been
        # queued without being counted, so LLEN may exceed the total by up to the connection count.
        local diff=$((llen - total))
        if [[ -n ${non2xx} ]] || ((diff < 0 || diff > WRK_CONNS)); then
            CHECKS+=("round $round: non-2xx=${non2xx:-0} LLEN=$llen wrk_total=$total (diff $diff)")
        fi
    fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== hookq edge benchmark ($(date -u +%FT%TZ)), nginx :$HTTP_PORT redis $(redis_target), tmp $TMP"
echo "== wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION --latency (warmup $WARMUP + FLUSHALL before each), order a/b x $ROUNDS"
for round in $(seq "$ROUNDS"); do
    run_wrk plain "$round"
    run_wrk hookq "$round"
done

echo "== paced: $PACED_RATE req/s for ${PACED_SECONDS}s on $PACED_CONNS keep-alive connections (latency from scheduled send)"
paced() {  # path
    "$PACED" 127.0.0.1 "$HTTP_PORT" "$1" "$PACED_RATE" 2 "$PACED_CONNS" "$TMP/headers.txt" "$TMP/body.json" >/dev/null || true
    rcli FLUSHALL >/dev/null
    "$PACED" 127.0.0.1 "$HTTP_PORT" "$1" "$PACED_RATE" "$PACED_SECONDS" "$PACED_CONNS" "$TMP/headers.txt" "$TMP/body.json" || true
}
PACED_PLAIN=$(paced /plain)
echo "  plain  $PACED_PLAIN"
PACED_HOOKQ=$(paced /hooks/github)
PACED_LLEN=$(rcli LLEN 'hookq:{github}:queue')
echo "  hookq  $PACED_HOOKQ  LLEN=$PACED_LLEN"
if [[ $(kv non2xx "$PACED_HOOKQ") != 0 || $(kv errors "$PACED_HOOKQ") != 0 || $(kv count "$PACED_HOOKQ") != "$PACED_LLEN" ]]; then
    CHECKS+=("paced: $PACED_HOOKQ LLEN=$PACED_LLEN")
fi

# --- summary -------------------------------------------------------------------------------------
B_RPS=$(median "${PLAIN_RPS[@]}"); H_RPS=$(median "${HOOKQ_RPS[@]}")
B_P50=$(median "${PLAIN_P50[@]}"); H_P50=$(median "${HOOKQ_P50[@]}")
B_P99=$(median "${PLAIN_P99[@]}"); H_P99=$(median "${HOOKQ_P99[@]}")
RATIO=$(awk -v h="$H_RPS" -v b="$B_RPS" 'BEGIN { printf "%.2f", h / b }')
us_to_ms() { awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; }
HP99=$(kv p99_us "$PACED_HOOKQ")
verdict() { awk -v v="$1" -v t="$2" -v dir="$3" 'BEGIN { ok = (dir == "ge") ? (v >= t) : (v <= t); print ok ? "PASS" : "MISS" }'; }

echo
echo "== summary (wrk: median of $ROUNDS rounds; paced: one ${PACED_SECONDS}s run; Redis over $(redis_transport))"
printf '%-34s %14s %14s\n' "" "plain (204)" "hookq github"
printf '%-34s %14s %14s\n' "wrk req/s" "$B_RPS" "$H_RPS"
printf '%-34s %14s %14s\n' "wrk p50 ms" "$B_P50" "$H_P50"
printf '%-34s %14s %14s\n' "wrk p99 ms" "$B_P99" "$H_P99"
printf '%-34s %14s %14s\n' "paced $PACED_RATE/s p50 ms" "$(us_to_ms "$(kv p50_us "$PACED_PLAIN")")" "$(us_to_ms "$(kv p50_us "$PACED_HOOKQ")")"
printf '%-34s %14s %14s\n' "paced $PACED_RATE/s p99 ms" "$(us_to_ms "$(kv p99_us "$PACED_PLAIN")")" "$(us_to_ms "$HP99")"
printf '%-34s %14s %14s\n' "paced $PACED_RATE/s p99.9 ms" "$(us_to_ms "$(kv p999_us "$PACED_PLAIN")")" "$(us_to_ms "$(kv p999_us "$PACED_HOOKQ")")"
printf '%-34s %14s %14s\n' "paced $PACED_RATE/s max ms" "$(us_to_ms "$(kv max_us "$PACED_PLAIN")")" "$(us_to_ms "$(kv max_us "$PACED_HOOKQ")")"
printf '%-34s %29s\n' "throughput ratio hookq/plain" "$RATIO  (target >= 0.6: $(verdict "$RATIO" 0.6 ge))"
printf '%-34s %29s\n' "paced hookq p99" "$(us_to_ms "$HP99") ms  (target <= 1 ms: $(verdict "$HP99" 1000 le))"
if ((${#CHECKS[@]})); then
    echo "CHECKS FAILED:"; printf '  %s\n' "${CHECKS[@]}"
else
    echo "checks: every hookq request 2xx, queue length matches the requests sent"
fi
echo "machine: $(cpu_desc), $(uname -r)"
echo "load:    $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after (1/5/15 min; the machine may be shared)"
echo "nginx:   $("$NGINX" -v 2>&1)"
echo "redis:   $(redis-server --version)"
echo "wrk:     $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"

echo
echo "== nginx error log (warn and worse; $(wc -l <"$ERROR_LOG") lines in total)"
grep -E "$WARN_RE" "$ERROR_LOG" | sort | uniq -c | sort -rn | head -20 || echo "  (none)"
echo "hookq lines: $(grep -c hookq "$ERROR_LOG" || true)"
grep hookq "$ERROR_LOG" | sed -E 's/^[0-9\/]+ [0-9:]+ //; s/[0-9]+#[0-9]+: (\*[0-9]+ )?//' | sort | uniq -c | sort -rn | head -10 || true

# --- micro benchmarks ----------------------------------------------------------------------------
MICRO_BUILD=${MICRO_BUILD:-$BUILD}  # a build configured with HOOKQ_BENCH=ON, if $BUILD is not
for b in bench_verify bench_envelope; do
    if [[ -x $MICRO_BUILD/bench/$b ]]; then
        echo; echo "== $MICRO_BUILD/bench/$b"
        "$MICRO_BUILD/bench/$b" --benchmark_min_time=0.2
    else
        echo; echo "== $b: not built in $MICRO_BUILD/bench (configure with -DHOOKQ_BENCH=ON, or set MICRO_BUILD)"
    fi
done
