#!/bin/sh
# Fencing across workers: worker A is SIGSTOPped inside a tool call until
# its lease expires; worker B takes the run and finishes it. When A is
# continued, its writes are refused and it drops the run.
. "$(dirname "$0")/lib-test.sh"

make_project
# The log sits in a directory the spec lets the sandbox write.
L="$TRASH/log"
mkdir -p "$L"
C="$L/exec.log"
: >"$C"
cat >"$TRASH/s.json" <<JSON
{"sandbox": {"rw": ["$L"]}, "goal": "g", "workspace": "project",
 "tools": [{"name": "bash", "effect": "idempotent"}, "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY >> $C; sleep 2"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY >> $C"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON


test_expect_success 'a paused worker loses its run and cannot write for it' '
  id=$(durin submit s.json) || return 1
  "$DURIN" worker --lease-ttl 2s --poll 50ms >a.log 2>&1 &
  a=$!; bg_pids="$bg_pids $a"
  wait_for 20 "in_tool $id" || return 1
  epoch_a=$(col_of $id lease_epoch)
  kill -STOP $a || return 1
  "$DURIN" worker --lease-ttl 2s --poll 50ms >b.log 2>&1 &
  b=$!; bg_pids="$bg_pids $b"
  wait_for 30 "test \$(status_of $id) = succeeded" &&
  test "$(col_of $id lease_epoch)" -gt "$epoch_a" &&
  kill -CONT $a &&
  wait_for 10 "grep -q \"run $id: lease lost\" a.log" &&
  kill -TERM $a $b && wait $a && wait $b &&
  test "$(status_of $id)" = succeeded &&
  events_contiguous $id &&
  test "$(count_events lease_expired)" = 1
'

test_expect_success 'each call ran once, except the one cut off (idempotent, same key)' '
  test "$(sort "$C" | uniq | wc -l)" = 2 &&
  test "$(wc -l <"$C")" = 3 &&
  test "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 1")" = 2
'

test_done
