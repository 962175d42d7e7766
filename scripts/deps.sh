#!/usr/bin/env bash
# Installs what hookq needs to build, test and run on Debian 12. Idempotent and quick when done.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  nginx-core nginx-dev libpcre2-dev zlib1g-dev libnginx-mod-nchan
  libhiredis-dev libssl-dev libpq-dev libcurl4-openssl-dev libtomlplusplus-dev nlohmann-json3-dev
  libspdlog-dev libfmt-dev libcli11-dev libsystemd-dev libmicrohttpd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server postgresql postgresql-contrib wrk curl
  python3 python3-pytest python3-redis python3-psycopg2 python3-requests python3-jsonschema
  prometheus python3-prometheus-client
  python3-aiosmtpd  # the alert email tests: a real SMTP server on loopback
  openssl  # the PayPal tests: a local test CA issues and signs
  chromium python3-websocket  # the dashboard test: headless chromium over DevTools
  libjs-chart.js  # the dashboard's charts, embedded into the worker at build time (HOOKQ_CHARTJS)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Node.js only signs test requests with the providers' SDKs: any node >= 18 will do, Debian's or not.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The providers' official SDKs, used by the tests to sign requests exactly as the providers do.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$here/tests/sdk/node_modules" ] || [ "$here/tests/sdk/package-lock.json" -nt "$here/tests/sdk/node_modules" ]; then
  (cd "$here/tests/sdk" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
fi
