#!/bin/sh
# Runs the benchmarks and prints their figures. Never used by tests.
set -eu
build=${1:-build-bench}
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
"$build/bench/step-overhead" --steps "${STEPS:-10000}" --sync full
"$build/bench/step-overhead" --steps "${STEPS:-10000}" --sync normal
