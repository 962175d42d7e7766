#!/usr/bin/env bash
# Runs the whole of hookq on loopback: redis-server, PostgreSQL (initdb into a temp folder), nginx
# with the hookq module, hookq-worker and a sample application. Sends a signed GitHub webhook and
# shows it answered, queued, delivered (the application checks hookq's signature) and recorded.
#
#   scripts/demo.sh          keep running until Ctrl-C
#   scripts/demo.sh --once   show the sample and stop
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target ngx_http_hookq_module hookq-worker hookqctl

export HOOKQ_BUILD_DIR=$PWD/build HOOKQ_SOURCE_DIR=$PWD
exec /usr/bin/python3 scripts/demo.py "$@"
