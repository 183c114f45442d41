#!/bin/sh
# bench/otel: what exporting traces costs a worker. Figures, not thresholds.
#
#   bench/otel/run.sh [BUILD_DIR]   (default build-bench; `make bench` runs it)
#
# One `durin worker` drives RUNS runs of STEPS steps each (the script
# provider) on a fresh SQLite store, once with no exporter and once
# exporting every run's trace over OTLP/HTTP to a local receiver
# (tests/js/otlp-receiver.mjs), ROUNDS times each, alternating, for two
# kinds of step:
#   plan  one update_plan call a step: no sandbox, the cheapest step
#         there is, so the exporter's share is as large as it gets;
#   bash  one sandboxed `bash -c true` a step: what a coding agent's
#         steps cost at the least.
# It prints, per step: the worker's CPU time (user + system, from
# /proc/PID/stat) when all runs ended, plus, with the exporter, what its
# thread (named durin-otel) spent from then until every cursor caught up;
# and the exporter thread's own CPU over the whole round (from its
# schedstat, in ns). Then the ratio of the medians.
set -eu
build=${1:-build-bench}
src=$(cd "$(dirname "$0")/../.." && pwd)
durin=$(cd "$build" && pwd)/durin
RUNS=${RUNS:-20} STEPS=${STEPS:-200} ROUNDS=${ROUNDS:-3} KINDS=${KINDS:-plan bash}
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
spec() {
  case $1 in
  plan) call='{name: "update_plan", arguments: {plan: [{step: "go on", status: "in_progress"}]}}' ;;
  bash) call='{name: "bash", arguments: {command: "true"}}' ;;
  esac
  jq -n --argjson n "$STEPS" --arg ws "$tmp/ws" "{name: \"bench\", goal: \"g\", workspace: \$ws,
    tools: [\"update_plan\", \"bash\", \"finish\"],
    budget: {steps: (\$n + 10), tool_calls: (\$n + 10)},
    model: {provider: \"script\", turns: [{repeat: \$n, tool_calls: [$call],
      usage: {input_tokens: 1000, output_tokens: 20}},
      {tool_calls: [{name: \"finish\", arguments: {summary: \"ok\"}}]}]}}"
}

node "$src/tests/js/otlp-receiver.mjs" --dir "$tmp/got" --port-file "$tmp/port" >/dev/null 2>&1 &
pids="$pids $!"
while [ ! -s "$tmp/port" ]; do sleep 0.05; done

# one KIND MODE: prints "worker-us-per-step exporter-us-per-step".
one() {
  d="$tmp/r$2"
  rm -rf "$d" && mkdir -p "$d"
  export DURIN_STORE="sqlite:$d/durin.db" DURIN_DATA_DIR="$d/runs"
  i=0
  while [ $i -lt "$RUNS" ]; do "$durin" submit "$tmp/$1.json" >/dev/null; i=$((i + 1)); done
  if [ "$2" = on ]; then
    OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$tmp/port")" \
      "$durin" worker --quiet --poll 50ms >"$d/w.log" 2>&1 &
  else
    "$durin" worker --quiet --poll 50ms >"$d/w.log" 2>&1 &
  fi
  w=$!
  q() { sqlite3 -cmd ".timeout 5000" "$d/durin.db" "$1"; }
  # The exporter's thread names itself: its CPU is read apart, in clock
  # ticks (stat) and in ns (schedstat).
  otel() {
    for t in /proc/$w/task/*; do
      if [ "$(cat "$t/comm" 2>/dev/null)" = durin-otel ]; then
        if [ "$1" = ticks ]; then awk '{print $14 + $15}' "$t/stat"; else awk '{print $1}' "$t/schedstat"; fi
      fi
    done | awk '{s += $1} END {printf "%d\n", s}'
  }
  while [ "$(q "select count(*) from runs where status = 'succeeded'")" != "$RUNS" ]; do sleep 0.1; done
  cpu=$(awk '{print $14 + $15}' "/proc/$w/stat")
  ns=0
  if [ "$2" = on ]; then
    # What the exporter still had to send when the runs ended counts;
    # the idle worker polling its queue meanwhile does not.
    o0=$(otel ticks)
    while [ "$(q "select count(*) from otel_cursor c join runs r on r.id = c.run_id where c.seq = r.last_seq")" != "$RUNS" ]; do sleep 0.1; done
    cpu=$((cpu + $(otel ticks) - o0))
    ns=$(otel ns)
  fi
  kill "$w"; wait "$w" 2>/dev/null || true
  steps=$((RUNS * (STEPS + 1)))
  echo "$cpu $tick $steps $ns" | awk '{printf "%.1f %.1f\n", $1 * 1000000 / $2 / $3, $4 / 1000 / $3}'
}

med() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }

echo "== otel: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $RUNS runs x $STEPS steps, $ROUNDS rounds"
for kind in $KINDS; do
  spec "$kind" >"$tmp/$kind.json"
  offs="" ons="" xs=""
  r=1
  while [ $r -le "$ROUNDS" ]; do
    off=$(one "$kind" off | cut -d' ' -f1)
    set -- $(one "$kind" on)
    on=$1 x=$2
    echo "$kind round $r: worker CPU per step: exporter off $off us, on $on us (its thread $x us)"
    offs="$offs $off" ons="$ons $on" xs="$xs $x"
    r=$((r + 1))
  done
  mo=$(med "$offs") mn=$(med "$ons") mx=$(med "$xs")
  echo "otel $kind: worker CPU per step, median: off $mo us, on $mn us, on/off $(echo "$mn $mo" | awk '{printf "%.3f", $1 / $2}'); exporter thread $mx us a step, $(echo "$mx $mo" | awk '{printf "%.1f", 100 * $1 / $2}')% of off (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
