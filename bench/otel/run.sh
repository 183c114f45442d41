#!/bin/sh
# bench/otel: what exporting traces costs a worker. Figures, not thresholds.
#
#   bench/otel/run.sh [BUILD_DIR]   (default build-bench; `make bench` runs it)
#
# One `durin worker` drives RUNS runs of STEPS steps each (the script
# provider, one update_plan call a step: no sandbox, so the step's own
# cost dominates) on a fresh SQLite store, once with no exporter and once
# exporting every run's trace over OTLP/HTTP to a local receiver
# (tests/js/otlp-receiver.mjs), ROUNDS times each, alternating. It prints
# the worker's CPU time (user + system, from /proc/PID/stat when all runs
# ended and, with the exporter, every cursor caught up) per step, each
# round, and the ratio of the medians.
set -eu
build=${1:-build-bench}
src=$(cd "$(dirname "$0")/../.." && pwd)
durin=$(cd "$build" && pwd)/durin
RUNS=${RUNS:-20} STEPS=${STEPS:-200} ROUNDS=${ROUNDS:-3}
if [ ! -d "$src/tests/js/node_modules" ] || ! command -v node >/dev/null; then
  echo "otel: skipped: needs node and tests/js/node_modules (make npm-deps)"
  exit 0
fi
tmp=$(mktemp -d)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
tick=$(getconf CLK_TCK)

mkdir -p "$tmp/ws"
jq -n --argjson n "$STEPS" --arg ws "$tmp/ws" '{name: "bench", goal: "g", workspace: $ws,
  tools: ["update_plan", "finish"],
  budget: {steps: ($n + 10)},
  model: {provider: "script", turns: ([range($n) | {tool_calls: [{name: "update_plan",
    arguments: {plan: [{step: "go on", status: "in_progress"}]}}],
    usage: {input_tokens: 1000, output_tokens: 20}}]
    + [{tool_calls: [{name: "finish", arguments: {summary: "ok"}}]}])}}' >"$tmp/spec.json"

node "$src/tests/js/otlp-receiver.mjs" --dir "$tmp/got" --port-file "$tmp/port" >/dev/null 2>&1 &
pids="$pids $!"
while [ ! -s "$tmp/port" ]; do sleep 0.05; done

# one MODE: prints the worker's CPU ms per step.
one() {
  d="$tmp/r$1"
  rm -rf "$d" && mkdir -p "$d"
  export DURIN_STORE="sqlite:$d/durin.db" DURIN_DATA_DIR="$d/runs"
  i=0
  while [ $i -lt "$RUNS" ]; do "$durin" submit "$tmp/spec.json" >/dev/null; i=$((i + 1)); done
  if [ "$1" = on ]; then
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$tmp/port")" \
      "$durin" worker --quiet --poll 50ms >"$d/w.log" 2>&1 &
  else
    "$durin" worker --quiet --poll 50ms >"$d/w.log" 2>&1 &
  fi
  w=$!
  q() { sqlite3 -cmd ".timeout 5000" "$d/durin.db" "$1"; }
  while [ "$(q "select count(*) from runs where status = 'succeeded'")" != "$RUNS" ]; do sleep 0.1; done
  if [ "$1" = on ]; then
    while [ "$(q "select count(*) from otel_cursor c join runs r on r.id = c.run_id where c.seq = r.last_seq")" != "$RUNS" ]; do sleep 0.1; done
  fi
  cpu=$(awk '{print $14 + $15}' "/proc/$w/stat")
  kill "$w"; wait "$w" 2>/dev/null || true
  steps=$((RUNS * (STEPS + 1)))
  echo "$cpu $tick $steps" | awk '{printf "%.1f\n", $1 * 1000000 / $2 / $3}'
}

echo "== otel: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs x $STEPS steps, $ROUNDS rounds"
offs="" ons=""
r=1
while [ $r -le "$ROUNDS" ]; do
  off=$(one off)
  on=$(one on)
  echo "round $r: worker CPU per step: exporter off $off us, on $on us"
  offs="$offs $off" ons="$ons $on"
  r=$((r + 1))
done
med() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
mo=$(med "$offs") mn=$(med "$ons")
echo "otel: worker CPU per step, median: off $mo us, on $mn us, on/off $(echo "$mn $mo" | awk '{printf "%.3f", $1 / $2}') (load $(cut -d' ' -f1-3 /proc/loadavg))"
