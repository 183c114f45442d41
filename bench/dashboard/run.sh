#!/bin/sh
# bench/dashboard: how fast the dashboard shows a big store, in a real
# browser (headless Chromium driven by playwright-core). Figures, not
# thresholds.
#
#   bench/dashboard/run.sh [BUILD_DIR]     (default build-bench; `make bench` runs it)
#
# Needs BUILD_DIR/durin (the release build: `make bench` makes build-bench/),
# tests/js/node_modules (`make npm-deps`) and Chromium (`make test-deps`;
# DURIN_CHROMIUM names another). It makes a fresh SQLite store in a
# temporary directory and a `durin serve` on it, seeds it (see seed() in
# dashboard.mjs: one real 2,000-step run of the script provider, then
# 10,000 runs in all through POST /v1/runs), and measures, REPS times
# (default 5) each cold (the browser's cache cleared) and warm:
#
#   runs      navigation to / (signed in) -> body[data-ready=runs] with rows
#             in the Runs table
#   timeline  navigation to #/runs/ID of the 2,000-step run -> its Timeline
#             region has data-timeline-ready and 2,000 step items
#
# Times are the page's own performance.now() when the condition first holds
# (polled at each animation frame), i.e. from the navigation's start.
# Printed: median, p90, min and max per figure, with the machine's load.
set -eu
build=${1:-build-bench}
src=$(cd "$(dirname "$0")/../.." && pwd)
durin=$(cd "$build" && pwd)/durin
chromium=${DURIN_CHROMIUM:-/usr/bin/chromium}
if [ ! -d "$src/tests/js/node_modules/playwright-core" ] || [ ! -x "$chromium" ]; then
  echo "dashboard: skipped: needs tests/js/node_modules (make npm-deps) and $chromium (make test-deps)"
  exit 0
fi
tmp=$(mktemp -d)
serve=
cleanup() {
  [ -z "$serve" ] || { kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }
  rm -rf "$tmp"
}
trap cleanup EXIT
export DURIN_STORE="sqlite:$tmp/store/durin.db"
# DURIN_WEB_DIR (pages read from a directory) is left as the caller set it.
token=$("$durin" token create bench --role admin 2>/dev/null)
# --max-runs 1: the seed holds the one slot with a run whose model never
# answers once the 2,000-step run is done, so the worker does not scan the
# queue at each create (see bench/api.c); --api-rate 0: no per-token limit.
: >"$tmp/serve.log"
BENCH_SILENT=unused "$durin" serve --listen 127.0.0.1:0 --api-rate 0 --max-runs 1 --poll 50ms \
  >"$tmp/serve.log" 2>&1 &
serve=$!
i=0
until url=$(sed -n 's|.*serving the API on \(http://[0-9.]*:[0-9]*\)/v1.*|\1|p' "$tmp/serve.log") &&
  [ -n "$url" ]; do
  i=$((i + 1))
  [ $i -lt 300 ] || { echo "dashboard: serve did not start:"; cat "$tmp/serve.log"; exit 1; }
  sleep 0.1
done
echo "== dashboard: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $("$chromium" --version 2>/dev/null | head -n 1)"
DURIN_CHROMIUM="$chromium" \
  node "$src/bench/dashboard/dashboard.mjs" "$url" "$token" "$src/tests/js"
