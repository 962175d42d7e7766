#!/usr/bin/env bash
# Runs hookq on loopback: redis-server and Debian's nginx with the hookq module (and, once built,
# PostgreSQL, hookq-worker and a sample application), sends a signed GitHub webhook, and shows it
# queued (and delivered). Everything lives in a temp folder and stops on Ctrl-C.
#
#   scripts/demo.sh          keep running until Ctrl-C
#   scripts/demo.sh --once   show the sample and stop
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
once=0
[ "${1:-}" = "--once" ] && once=1

scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target ngx_http_hookq_module

work=$(mktemp -d /tmp/hookq-demo.XXXXXX)
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
http_port=$(free_port)
secret="demo-github-secret"
printf '%s\n' "$secret" > "$work/github.secret"

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" --daemonize no &
pids+=($!)

cat > "$work/nginx.conf" <<EOF
load_module $root/build/ngx_module/ngx_http_hookq_module.so;
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/body;
    hookq_redis 127.0.0.1:$redis_port;
    hookq_redis_timeout 200ms;
    server {
        listen 127.0.0.1:$http_port;
        location = /hooks/github {
            hookq github;
            hookq_secret file:$work/github.secret;
        }
        location = /hookq/status { hookq_status; allow 127.0.0.1; deny all; }
    }
}
EOF
/usr/sbin/nginx -t -p "$work" -c "$work/nginx.conf"
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$http_port/hookq/status" && break
  sleep 0.1
done

body='{"zen":"Design for failure.","hook_id":1,"repository":{"full_name":"acme/shop"}}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
delivery=$(cat /proc/sys/kernel/random/uuid)
send() {
  curl -s -i -X POST "http://127.0.0.1:$http_port/hooks/github" \
    -H "Content-Type: application/json" -H "X-GitHub-Event: ping" \
    -H "X-GitHub-Delivery: $delivery" -H "X-Hub-Signature-256: $1" --data-binary "$body" | tr -d '\r'
}

echo; echo "== a signed GitHub webhook"; send "sha256=$sig"
echo "== the same delivery again (a provider retry): answered as a duplicate"; send "sha256=$sig"
echo "== a forged one: refused, never queued"; send "sha256=$(printf '%064d' 0)"

echo "== queued in Redis (hookq:{github}:queue):"
/usr/bin/python3 - "$redis_port" <<'EOF'
import sys
sys.path.insert(0, "tests/integration")
import redis, edge
r = redis.Redis(port=int(sys.argv[1]))
for raw in r.lrange("hookq:{github}:queue", 0, -1):
    e = edge.decode_envelope(raw)
    print(f"  request {e['request_id']}  source={e['source'].decode()}  dedup={e['dedup_key'].decode()}"
          f"  {e['method'].decode()} {e['target'].decode()}  {len(e['headers'])} headers  body={e['body'].decode()}")
EOF
echo "== edge counters (/hookq/status):"
curl -s "http://127.0.0.1:$http_port/hookq/status" | grep -E '^hookq_edge_requests_total' | grep -v ' 0$'

if [ "$once" = 1 ]; then exit 0; fi
echo
echo "hookq is listening on http://127.0.0.1:$http_port/hooks/github (secret: $secret), Redis on $redis_port."
echo "Press Ctrl-C to stop."
wait
