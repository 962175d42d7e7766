#!/usr/bin/env bash
# Edge benchmark: the hookq nginx module (verify + EVALSHA ingest into Redis) against a plain
# `return 204` location in the same nginx, same run. See bench/edge/README.md.
#
#   bash bench/edge/run.sh [BUILD_DIR]        (default: build)
#
# Environment knobs (defaults in brackets): WRK_THREADS [2] WRK_CONNS [64] WRK_DURATION [10s]
# WARMUP [2s] ROUNDS [2] PACED_RATE [1000] PACED_SECONDS [10] PACED_CONNS [8] KEEP_TMP [0]
# MICRO_BUILD [BUILD_DIR] (where bench/bench_verify and bench/bench_envelope are looked for)
# Only loopback is used; redis-server and nginx are started here and stopped on exit.
set -euo pipefail

BUILD=${1:-build}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "build dir ${1:-build} not found" >&2; exit 2; }
MODULE=$BUILD/ngx_module/ngx_http_hookq_module.so
NGINX=${NGINX:-/usr/sbin/nginx}

WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-64}
WRK_DURATION=${WRK_DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-2}
PACED_RATE=${PACED_RATE:-1000}
PACED_SECONDS=${PACED_SECONDS:-10}
PACED_CONNS=${PACED_CONNS:-8}

[[ -f $MODULE ]] || { echo "module not found: $MODULE (cmake --build $BUILD --target ngx_http_hookq_module)" >&2; exit 2; }
for tool in wrk redis-server redis-cli openssl "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done

TMP=$(mktemp -d -t hookq-edge-bench.XXXXXX)
REDIS_PID=
NGINX_PID=
cleanup() {
    local rc=$?
    set +e
    if [[ -n $NGINX_PID ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -QUIT "$NGINX_PID"
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$NGINX_PID" 2>/dev/null && kill -KILL "$NGINX_PID"
        wait "$NGINX_PID" 2>/dev/null
    fi
    if [[ -n $REDIS_PID ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill -TERM "$REDIS_PID"
        wait "$REDIS_PID" 2>/dev/null
    fi
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

# --- servers -------------------------------------------------------------------------------------
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
wait_port "$REDIS_PORT" "$REDIS_PID"
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

SECRET="It's a Secret to Everybody"
printf '%s\n' "$SECRET" >"$TMP/gh.secret"

HTTP_PORT=$(free_port)
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx.conf" <<EOF
load_module $MODULE;
daemon off;
master_process on;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/error.log info;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    hookq_redis 127.0.0.1:$REDIS_PORT;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        location = /hooks/github {
            hookq github;
            hookq_secret file:$TMP/gh.secret;
            hookq_max_queue_depth 0;
        }
        location = /plain { return 204; }
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx.conf" 2>"$TMP/nginx.stderr" &
NGINX_PID=$!
wait_port "$HTTP_PORT" "$NGINX_PID" || { cat "$TMP/nginx.stderr" "$TMP/error.log" >&2; exit 1; }
BASE=http://127.0.0.1:$HTTP_PORT

# --- request: 1 KB JSON body and its GitHub signature -------------------------------------------
python3 - "$TMP/body.json" <<'EOF'
import json, sys
doc = {"ref": "refs/heads/main", "before": "0" * 40, "after": "f" * 40,
       "repository": {"id": 1296269, "full_name": "octocat/Hello-World", "private": False},
       "pusher": {"name": "octocat", "email": "octocat@github.com"},
       "head_commit": {"id": "f" * 40, "message": "", "timestamp": "2024-01-01T00:00:00Z"}}
pad = 1024 - len(json.dumps(doc, separators=(",", ":")))
doc["head_commit"]["message"] = "x" * pad
data = json.dumps(doc, separators=(",", ":")).encode()
assert len(data) == 1024, len(data)
open(sys.argv[1], "wb").write(data)
EOF
SIG="sha256=$(openssl dgst -sha256 -hmac "$SECRET" -r "$TMP/body.json" | cut -d' ' -f1)"
printf 'Content-Type: application/json\nX-GitHub-Event: push\nX-Hub-Signature-256: %s\n' "$SIG" >"$TMP/headers.txt"
export HOOKQ_BENCH_BODY=$TMP/body.json HOOKQ_BENCH_SIG=$SIG

# Readiness: the worker's Redis connection is up once a signed request is accepted.
ready=0
for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$TMP/body.json" \
        -H "Content-Type: application/json" -H "X-Hub-Signature-256: $SIG" \
        -H "X-GitHub-Delivery: ready-$RANDOM$RANDOM" "$BASE/hooks/github" || true)
    [[ $code == 202 ]] && { ready=1; break; }
    sleep 0.1
done
[[ $ready == 1 ]] || { echo "edge never answered 202 (last: $code)" >&2; cat "$TMP/error.log" >&2; exit 1; }
# A wrong signature must be refused, or the benchmark would measure nothing.
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$TMP/body.json" \
    -H "X-Hub-Signature-256: sha256=$(printf '0%.0s' $(seq 64))" -H "X-GitHub-Delivery: bad-1" "$BASE/hooks/github")
[[ $code == 401 ]] || { echo "wrong signature answered $code, expected 401" >&2; exit 1; }

# --- paced client ---------------------------------------------------------------------------------
PACED=$BUILD/bench/hookq_paced_client
if [[ ! -x $PACED ]]; then
    PACED=$TMP/hookq_paced_client
    g++ -O2 -std=c++17 -pthread -o "$PACED" "$HERE/paced_client.cc"
fi

# --- helpers --------------------------------------------------------------------------------------
to_ms() {  # wrk latency ("812.00us", "1.23ms", "2.01s") -> ms
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; }  # key line -> value

declare -a PLAIN_RPS=() PLAIN_P50=() PLAIN_P99=() HOOKQ_RPS=() HOOKQ_P50=() HOOKQ_P99=()
CHECKS=()
run_wrk() {  # kind(plain|hookq) round
    local kind=$1 round=$2 path out total rps p50 p99 non2xx llen errs
    [[ $kind == plain ]] && path=/plain || path=/hooks/github
    HOOKQ_BENCH_NONCE="warm-$kind-$round-$$" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WARMUP" \
        -s "$HERE/signed.lua" "$BASE$path" >/dev/null
    rcli FLUSHALL >/dev/null
    out=$(HOOKQ_BENCH_NONCE="run-$kind-$round-$$" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" \
        --latency -s "$HERE/signed.lua" "$BASE$path")
    printf '%s\n' "$out" >"$TMP/wrk-$kind-$round.txt"
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    non2xx=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' <<<"$out")
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
echo "== hookq edge benchmark ($(date -u +%FT%TZ)), nginx :$HTTP_PORT redis :$REDIS_PORT, tmp $TMP"
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
echo "== summary (wrk: median of $ROUNDS rounds; paced: one ${PACED_SECONDS}s run)"
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
echo "machine: $(nproc) cpus, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -r)"
echo "load:    $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after (1/5/15 min; the machine may be shared)"
echo "nginx:   $("$NGINX" -v 2>&1)"
echo "redis:   $(redis-server --version)"
echo "wrk:     $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"

echo
echo "== nginx error log (warn and worse; $(wc -l <"$TMP/error.log") lines in total)"
grep -E '\[(warn|error|crit|alert|emerg)\]' "$TMP/error.log" | sort | uniq -c | sort -rn | head -20 || echo "  (none)"
echo "hookq lines: $(grep -c hookq "$TMP/error.log" || true)"
grep hookq "$TMP/error.log" | sed -E 's/^[0-9\/]+ [0-9:]+ //; s/[0-9]+#[0-9]+: (\*[0-9]+ )?//' | sort | uniq -c | sort -rn | head -10 || true

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
