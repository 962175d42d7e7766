#!/usr/bin/env bash
# The chaos test's long mode: 100,000 webhooks (or $1) through nginx, Redis, PostgreSQL and the
# workers while faults are injected, against an existing build folder (default: build).
#   scripts/chaos.sh [webhooks] [build-dir]
# Replay a failing run with HOOKQ_CHAOS_SEED=<the printed seed>; HOOKQ_CHAOS_RATE sets the pace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${2:-$root/build}" && pwd)
sanitize=0
grep -q '^HOOKQ_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && sanitize=1
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
cd "$root/tests/integration"
HOOKQ_CHAOS_WEBHOOKS=${1:-${HOOKQ_CHAOS_WEBHOOKS:-100000}} \
HOOKQ_BUILD_DIR=$build HOOKQ_SOURCE_DIR=$root HOOKQ_SANITIZE=$sanitize \
HOOKQ_CXX_COMPILER=${compiler:-c++} \
PYTHONDONTWRITEBYTECODE=1 \
  exec /usr/bin/python3 -m pytest -q -s -p no:cacheprovider test_chaos.py
