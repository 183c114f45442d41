#!/bin/sh
# Chaos: 200 runs on 3 worker processes; every 1-3 s a random worker is
# SIGKILLed and a new one started. Each step's bash call appends its
# idempotency key to a file in the workspace, then sleeps; bash keeps its
# default effect (unsafe). Every call runs in a layer of its own that
# reaches the workspace only once its outcome is durable, so a call cut
# by a kill left no trace and is simply run again: every run succeeds,
# none needs a human, and every key is in its run's workspace exactly once.
. "$(dirname "$0")/lib-test.sh"

[ -e /proc/self/ns/user ] || test_skip_all "no user namespaces (calls run in the sandbox)"
make_project
STEPS=4
turn='{"tool_calls": [{"name": "bash", "arguments": {"command": "echo $DURIN_IDEMPOTENCY_KEY >> keys.txt; sleep 1"}}]}'
turns=""
i=0
while [ $i -lt $STEPS ]; do turns="$turns$turn, "; i=$((i + 1)); done
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project", "tools": ["bash", "finish"],
 "model": {"provider": "script", "turns": [$turns
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

N=${CHAOS_RUNS:-200}
unfinished() {
  sql "select count(*) from runs where status not in ('succeeded', 'failed', 'cancelled', 'budget_exceeded', 'needs_human')"
}
# Sets $wp. Not called in $(...): the worker must be this shell's child,
# or `wait` returns at once and the checks race its shutdown.
start_worker() {
  "$DURIN" worker --max-runs 40 --lease-ttl 2s --poll 100ms >>workers.log 2>&1 &
  wp=$!
}
# A pseudo-random number in [0, $1), from the shell's own state.
rnd() { echo $(( $(od -An -N2 -tu2 /dev/urandom) % $1 )); }

test_expect_success "submit $N runs" '
  i=0; while [ $i -lt $N ]; do durin submit s.json >>ids || return 1; i=$((i+1)); done &&
  test "$(wc -l <ids)" = $N
'

test_expect_success 'workers under SIGKILL chaos finish every run' '
  start_worker; w1=$wp; start_worker; w2=$wp; start_worker; w3=$wp
  kills=0; t0=$(date +%s)
  while [ $(( $(date +%s) - t0 )) -lt 400 ]; do
    [ "$(unfinished)" = 0 ] && break
    # Every 1-3 s for the first 60 s, then let the rest finish.
    sleep $((1 + $(rnd 3)))
    [ $(( $(date +%s) - t0 )) -lt 60 ] || continue
    case $(rnd 3) in 0) v=$w1;; 1) v=$w2;; *) v=$w3;; esac
    kill -KILL $v 2>/dev/null; wait $v 2>/dev/null; kills=$((kills+1))
    start_worker
    case $v in $w1) w1=$wp;; $w2) w2=$wp;; *) w3=$wp;; esac
  done
  kill -TERM $w1 $w2 $w3 2>/dev/null; wait $w1 $w2 $w3 2>/dev/null
  echo "kills: $kills, after $(( $(date +%s) - t0 ))s" &&
  sql "select status, count(*) from runs group by status" &&
  test $kills -ge 5 &&
  test "$(count_status needs_human)" = 0 &&
  test "$(count_status succeeded)" = $N
'

test_expect_success 'the watchdog recovered runs from the killed workers' '
  test "$(count_events lease_expired)" -gt 0
'

test_expect_success 'every key is in its workspace exactly once' '
  repeated=0 &&
  for id in $(cat ids); do
    ws=$(find store -maxdepth 4 -type d -name workspace -path "*/$id/*" | head -n 1)
    test -n "$ws" || { echo "no workspace for $id"; return 1; }
    s=1; while [ $s -le $STEPS ]; do echo "$id:$s:0"; s=$((s+1)); done >want
    sort "$ws/keys.txt" >got &&
    cmp want got || { echo "run $id:"; diff want got; return 1; }
  done &&
  repeated=$(count_events call_repeated) &&
  echo "$repeated call(s) cut by a kill were run again from a clean layer"
'

test_expect_success 'nothing is left in the runs layers' '
  test -z "$(find store -path "*/calls/*" | head -n 5)"
'

test_expect_success 'every run has a contiguous log and a valid checkpoint' '
  for id in $(cat ids); do events_contiguous $id && checkpoint_valid $id || return 1; done
'

test_done
