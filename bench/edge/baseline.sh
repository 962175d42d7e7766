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
# WARMUP [2s] ROUNDS [2] PACED_RATE [1000] PACED_SECONDS [10] PACED_CONNS [8] KEEP_TMP [0]
# REDIS_UNIX [0] (1: hookq and the OpenResty receiver reach Redis over a unix socket, not TCP).
# Only loopback is used; every server is stopped on exit. Shared setup: lib.sh.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD=${1:-build}
MODULE=$(hookq_module "$BUILD")
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

for m in ndk_http_module ngx_http_lua_module; do
    [[ -f $NGX_MODULES/$m.so ]] || { echo "missing $NGX_MODULES/$m.so: apt-get install libnginx-mod-http-lua lua-resty-core lua-resty-lrucache" >&2; exit 2; }
done
need_tools wrk redis-server redis-cli openssl curl g++ "$NGINX"

bench_init baseline
start_redis "$TMP"
make_signed_request

# The queue each kind writes (plain writes none).
declare -A PORT WORKER QUEUE=([plain]="" [hookq]='hookq:{github}:queue' [openresty]='orr:{github}:queue')
for k in "${KINDS[@]}"; do
    PORT[$k]=$(free_port)
    case $k in
    plain)
        main=""
        http=""
        loc="return 204;"
        ;;
    hookq)
        main="load_module $MODULE;"
        http="hookq_redis $(redis_target);"
        loc="hookq github; hookq_secret file:$TMP/gh.secret; hookq_max_queue_depth 0;"
        ;;
    openresty)
        main="load_module $NGX_MODULES/ndk_http_module.so; load_module $NGX_MODULES/ngx_http_lua_module.so;"
        # The secret is read from the same file as hookq's (trailing newline stripped, as hookq does).
        # redis_unix, when set, wins over redis_host/redis_port.
        redis_unix=nil
        [[ $REDIS_UNIX == 1 ]] && redis_unix="'$REDIS_SOCK'"
        http="lua_package_path '$EDGE_DIR/openresty/?.lua;/usr/share/lua/5.1/?.lua;;';
    client_body_buffer_size 64k;
    init_by_lua_block {
        local f = assert(io.open('$TMP/gh.secret', 'rb'))
        local secret = f:read('*a'):gsub('%s+\$', '')
        f:close()
        require('receiver').init({ secret = secret, redis_host = '127.0.0.1', redis_port = $REDIS_PORT,
                                   redis_unix = $redis_unix, queue = 'github', ttl = 86400 })
    }"
        loc="content_by_lua_block { require('receiver').handle() }"
        ;;
    esac
    write_nginx_conf "$TMP/$k" "127.0.0.1:${PORT[$k]} backlog=4096" "$main" "$http" \
        "location = /hooks/github { $loc }"
    start_nginx "$TMP/$k" "${PORT[$k]}"
    url=http://127.0.0.1:${PORT[$k]}/hooks/github
    want=202
    [[ $k == plain ]] && want=204
    wait_ready "$TMP/$k" "$url" "$want"
    if [[ $k != plain ]]; then
        # A wrong signature must be refused and a repeated delivery id deduplicated, or the
        # receivers would not be doing the work being compared.
        expect_bad_signature_refused "$TMP/$k" "$url"
        n0=$(rcli LLEN "${QUEUE[$k]}")
        for _ in 1 2; do
            post_signed "$url" "twice-$k" "$SIG" >/dev/null
        done
        n1=$(rcli LLEN "${QUEUE[$k]}")
        ((n1 == n0 + 1)) || { echo "$k: a repeated delivery id was queued $((n1 - n0)) times" >&2; exit 1; }
    fi
    WORKER[$k]=$(nginx_worker_pid "$TMP/$k")
done

# hookq's link and the OpenResty receiver's pooled connections, over the transport asked for
expect_redis_clients 2
build_paced_client "$BUILD"

declare -A R_RPS R_P50 R_P99 R_NG R_RD  # "kind c" -> space-separated values of the rounds
CHECKS=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== hookq vs return 204 vs OpenResty ($(date -u +%FT%TZ)): wrk -t$WRK_THREADS -d$WRK_DURATION, $ROUNDS rounds, order rotated, Redis over $(redis_transport)"
printf '%-5s %-10s %-5s %9s %8s %8s %11s %11s %5s\n' conns kind round "req/s" "p50 ms" "p99 ms" "nginx cpu" "redis cpu" ok
printf '%-5s %-10s %-5s %9s %8s %8s %11s %11s %5s\n' "" "" "" "" "" "" "us/req" "us/req" ""
for c in $CONNS; do
    for round in $(seq "$ROUNDS"); do
        order=("${KINDS[@]:$(((round - 1) % 3))}" "${KINDS[@]:0:$(((round - 1) % 3))}")
        for k in "${order[@]}"; do
            url=http://127.0.0.1:${PORT[$k]}/hooks/github
            wrk_signed "warm-$k-$c-$round-$$" "$WRK_THREADS" "$c" "$WARMUP" "$url" >/dev/null
            rcli FLUSHALL >/dev/null
            n0=$(cpu_ticks "${WORKER[$k]}")
            r0=$(cpu_ticks "$REDIS_PID")
            out=$(wrk_signed "run-$k-$c-$round-$$" "$WRK_THREADS" "$c" "$WRK_DURATION" "$url" --latency)
            n1=$(cpu_ticks "${WORKER[$k]}")
            r1=$(cpu_ticks "$REDIS_PID")
            printf '%s\n' "$out" >"$TMP/wrk-$k-$c-$round.txt"
            wrk_stats "$out"
            rps=$W_RPS p50=$W_P50 p99=$W_P99 non2xx=$W_NON2XX total=$W_TOTAL llen=
            ok=yes
            if [[ -n $non2xx ]]; then ok=NO; fi
            if [[ -n ${QUEUE[$k]} ]]; then
                llen=$(rcli LLEN "${QUEUE[$k]}")
                # wrk does not count the requests in flight when it stops; they were queued.
                ((llen >= total && llen <= total + c)) || ok=NO
            fi
            [[ $ok == yes ]] || CHECKS+=("$k -c$c round $round: non-2xx=${non2xx:-0} LLEN=$llen wrk=$total")
            ng=$(cpu_us_per_req $((n1 - n0)) "$total")
            rd=$(cpu_us_per_req $((r1 - r0)) "$total")
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
    PACED_NG[$k]=$(cpu_us_per_req $((n1 - n0)) "$cnt")
    PACED_RD[$k]=$(cpu_us_per_req $((r1 - r0)) "$cnt")
    echo "  $k: ${PACED_OUT[$k]}  nginx_cpu_us=${PACED_NG[$k]} redis_cpu_us=${PACED_RD[$k]}"
    if [[ $(kv non2xx "${PACED_OUT[$k]}") != 0 || $(kv errors "${PACED_OUT[$k]}") != 0 ]]; then
        CHECKS+=("paced $k: ${PACED_OUT[$k]}")
    fi
    if [[ -n ${QUEUE[$k]} && $(rcli LLEN "${QUEUE[$k]}") != "$cnt" ]]; then
        CHECKS+=("paced $k: LLEN $(rcli LLEN "${QUEUE[$k]}") != count $cnt")
    fi
done

echo
echo "== summary (wrk: median of $ROUNDS rounds; CPU in us of the nginx worker / redis-server per request; Redis over $(redis_transport))"
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
echo "machine: $(cpu_desc); load $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "nginx: $(nginx_version); redis: $(redis_version); lua-nginx-module: $(dpkg-query -W -f='${Version}' libnginx-mod-http-lua 2>/dev/null || echo '?')"
for k in "${KINDS[@]}"; do
    echo "$k nginx error log: $(count_warn "$TMP/$k/error.log") warn-or-worse lines"
    grep -E "$WARN_RE" "$TMP/$k/error.log" | head -3 || true
done
