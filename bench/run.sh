#!/bin/sh
# Runs the benchmarks and prints their figures. Never used by tests.
set -eu
build=${1:-build-bench}
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
"$build/bench/step-overhead" --steps "${STEPS:-10000}" --sync full
"$build/bench/step-overhead" --steps "${STEPS:-10000}" --sync normal
# 100 runs at once in one worker: group commit.
"$build/bench/step-overhead" --runs 100 --steps 1000 --sync full
# Concurrency: one worker, N runs of three 1 s model calls each.
tmp=$(mktemp -d)
"$build/bench/slow-model" --port-file "$tmp/port" &
model=$!
trap 'kill $model 2>/dev/null; rm -rf "$tmp"' EXIT
while [ ! -s "$tmp/port" ]; do sleep 0.05; done
for n in ${RUNS:-1000 5000 10000}; do
  rm -f "$tmp"/c.db*
  "$build/bench/concurrency" "sqlite:$tmp/c.db" "$(cat "$tmp/port")" "$n"
done
# Recovery: SIGKILL of a worker to the first new step on another worker.
"$(dirname "$0")/recovery" "$build"
# Sandbox start: durin's sandbox against bwrap.
"$build/bench/sandbox-start" "$build"
