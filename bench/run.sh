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
# Claims: runs taken and completed per second by 1, 4 and 16 workers.
for w in 1 4 16; do
  "$build/bench/claim" "sqlite:$tmp/q.db" --workers "$w"
done
# Recovery: SIGKILL of a worker to the first new step on another worker.
# (Its own RUNS: the list above must not become its number of runs.)
RUNS=${RECOVERY_RUNS:-4} "$(dirname "$0")/recovery" "$build"
# Git checkpoints: a snapshot per step of 1,000 and 10,000 small files,
# one changed a step, with the private index in memory and in a file.
"$build/bench/git-snapshot" --files 1000 --steps 200
"$build/bench/git-snapshot" --files 10000 --steps 100
# Sandbox start: durin's sandbox against bwrap.
"$build/bench/sandbox-start" "$build"
# MCP call round trip against the reference server's echo tool, over
# stdio (a plain child) and streamable HTTP on loopback (needs `make
# npm-deps`).
mcp_bin="$(dirname "$0")/../tests/js/node_modules/.bin/mcp-server-everything"
if [ -x "$mcp_bin" ]; then
  "$build/bench/mcp-call" --stdio "$mcp_bin stdio" --calls "${MCP_CALLS:-2000}"
  mport=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  PORT=$mport "$mcp_bin" streamableHttp >"$tmp/mcp-http.log" 2>&1 &
  mpid=$!
  while ! grep -q listening "$tmp/mcp-http.log"; do sleep 0.05; done
  "$build/bench/mcp-call" --url "http://127.0.0.1:$mport/mcp" --calls "${MCP_CALLS:-2000}"
  kill $mpid
fi
# The egress proxy per HTTPS request: a tunnel against a granted host
# (TLS terminated, a header added), kept alive and not.
python3 "$(dirname "$0")/egress/bench.py" "$build" "${EGRESS_N:-300}"
# The HTTP API: 1,000 clients on a run's live event stream (events as fast
# as the worker makes them, then one model call of 50 ms a step), and
# 2,000 runs created from 16 clients and 500 from one.
"$build/bench/api" "$build" --only streams
"$build/bench/api" "$build" --only streams --pace-ms 50 --steps 100
"$build/bench/api" "$build" --only create
"$build/bench/api" "$build" --only create --clients 1 --creates 500
# The dashboard in a browser: 10,000 runs in the store, the first page of
# runs and a 2,000-step run's timeline (needs `make npm-deps` and Chromium).
"$(dirname "$0")/dashboard/run.sh" "$build"
# The same on PostgreSQL: DURIN_BENCH_PG names a server's URL whose
# databases durin_b1..durin_b4 the bench may drop; without it, a private
# cluster on loopback if the server is installed (as the tests start).
pg=${DURIN_BENCH_PG:-}
cl=
if [ -z "$pg" ] && ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  cl=$(mktemp -d)
  pg=$("$(dirname "$0")/../tests/helpers/pg-cluster.sh" start "$cl") || pg=
  trap 'kill $model 2>/dev/null; rm -rf "$tmp";
        [ -z "$cl" ] || { "$(dirname "$0")/../tests/helpers/pg-cluster.sh" stop "$cl"; rm -rf "$cl"; }' EXIT
fi
if [ -n "$pg" ]; then
  fresh() {
    psql -X -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null 2>&1
    echo "$pg/$1"
  }
  echo "== PostgreSQL: $pg"
  "$build/bench/step-overhead" --steps "${STEPS:-10000}" --store "$(fresh durin_b1)"
  "$build/bench/step-overhead" --runs 100 --steps 200 --store "$(fresh durin_b1)"
  "$build/bench/concurrency" "$(fresh durin_b2)" "$(cat "$tmp/port")" 1000
  for w in 1 4 16; do
    "$build/bench/claim" "$(fresh durin_b3)" --workers "$w"
  done
  "$build/bench/api" "$build" --store "$(fresh durin_b4)"
  "$build/bench/api" "$build" --store "$(fresh durin_b4)" --only streams \
    --pace-ms 50 --steps 100
fi
