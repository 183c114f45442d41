#!/bin/sh
# Chaos: 200 runs, 3 worker processes; every 2 s a random worker is
# SIGKILLed and a new one started. Every run ends, none is lost, and no
# tool call whose outcome was recorded ever starts again (each execution
# logs its idempotency key and start time, outside the store).
. "$(dirname "$0")/lib-test.sh"

make_project
# The log sits in a directory the spec lets the sandbox write.
L="$TRASH/log"
mkdir -p "$L"
C="$L/exec.log"
: >"$C"
# Five steps of a second each; bash declared idempotent (keyed), so a
# call cut off by a kill is re-run with the same key, not escalated.
cat >"$TRASH/s.json" <<JSON
{"sandbox": {"rw": ["$L"]}, "goal": "g", "workspace": "project",
 "tools": [{"name": "bash", "effect": "idempotent"}, "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY \$(date +%s%3N) >> $C; sleep 1"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY \$(date +%s%3N) >> $C; sleep 1"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY \$(date +%s%3N) >> $C; sleep 1"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY \$(date +%s%3N) >> $C; sleep 1"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

N=200
unfinished() {
  sql "select count(*) from runs where status not in ('succeeded', 'failed', 'cancelled', 'budget_exceeded', 'needs_human')"
}
# Sets $wp. Not called in $(...): the worker must be this shell's child,
# or `wait` returns at once and the checks race its shutdown.
start_worker() {
  "$DURIN" worker --max-runs 40 --lease-ttl 2s --poll 100ms >>workers.log 2>&1 &
  wp=$!
}

test_expect_success "submit $N runs" '
  i=0; while [ $i -lt $N ]; do durin submit s.json >>ids || return 1; i=$((i+1)); done &&
  test "$(wc -l <ids)" = $N
'

test_expect_success 'workers under SIGKILL chaos finish every run' '
  start_worker; w1=$wp; start_worker; w2=$wp; start_worker; w3=$wp
  kills=0; t=0
  while [ $t -lt 240 ]; do
    [ "$(unfinished)" = 0 ] && break
    sleep 2; t=$((t+2))
    if [ $kills -lt 12 ]; then
      case $((t % 3)) in 0) v=$w1;; 1) v=$w2;; *) v=$w3;; esac
      kill -KILL $v 2>/dev/null; wait $v 2>/dev/null; kills=$((kills+1))
      start_worker
      case $v in $w1) w1=$wp;; $w2) w2=$wp;; *) w3=$wp;; esac
    fi
  done
  kill -TERM $w1 $w2 $w3 2>/dev/null; wait $w1 $w2 $w3 2>/dev/null
  echo "kills: $kills, after ${t}s" &&
  sql "select status, count(*) from runs group by status" &&
  test "$(count_status succeeded)" = $N
'

test_expect_success 'the watchdog recovered runs from the killed workers' '
  test "$(count_events lease_expired)" -gt 0
'

test_expect_success 'no completed tool call started again after its outcome' '
  sql "select idem_key, outcome_ms from ledger where done = 1" | tr "|" " " >outcomes &&
  test "$(wc -l <outcomes)" = $((N * 4)) &&
  awk "NR == FNR { done[\$1] = \$2; next } (\$1 in done) && \$2 > done[\$1] { bad++ } END { exit bad > 0 }" outcomes "$C" &&
  # every call ran at least once; re-runs happen only for calls cut off
  awk "{ n[\$1]++ } END { for (k in n) if (n[k] > 1) r++; print r + 0, \"call(s) re-run after a kill\" }" "$C"
'

test_expect_success 'every run has a contiguous log and a valid checkpoint' '
  for id in $(cat ids); do events_contiguous $id && checkpoint_valid $id || return 1; done
'

test_done
