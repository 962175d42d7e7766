#!/usr/bin/env bash
# The one test command: installs dependencies, builds, and runs every test twice — a normal build
# (gcc) and an ASan/UBSan build (clang, which also builds and runs the libFuzzer targets).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j 1

if [ "${HOOKQ_SKIP_ASAN:-0}" != 1 ]; then
  CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DHOOKQ_SANITIZE=ON -DHOOKQ_FUZZ=ON -DHOOKQ_BENCH=OFF
  cmake --build build-asan -j "$jobs"
  ctest --test-dir build-asan --output-on-failure -j 1
fi
