#!/bin/sh
# Fencing: a process that lost its run can never write for it again. A is
# inside a tool call when B takes the run over with --force; A's next
# write is refused, and the call A was running is never run twice.
. "$(dirname "$0")/lib-test.sh"

make_project
C="$TRASH/counters"
mkdir -p "$C"
cat >"$TRASH/s.json" <<JSON
{"sandbox": {"rw": ["$C"]}, "goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 3; echo x >> $C/t1"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo y >> $C/t2"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

test_expect_success 'the old holder is fenced off; nothing runs twice' '
  ( "$DURIN" run s.json >a.txt 2>a.err; echo $? >a.rc ) &
  i=0; while [ -z "$(run_id_of a.txt)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  id=$(run_id_of a.txt) &&
  # A is inside the tool once its intent is durable and has no outcome.
  i=0; while [ "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 0" 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  epoch_a=$(sql "select lease_epoch from runs where id = '"'"'$id'"'"'") &&
  test_must_fail_with 2 durin resume --force $id >b.txt 2>b.err &&
  grep_q "outcome is unknown" b.err &&
  test "$(sql "select lease_epoch from runs where id = '"'"'$id'"'"'")" -gt "$epoch_a" &&
  i=0; while [ ! -s a.rc ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
  test "$(cat a.rc)" = 3 &&
  grep_q "lease on run .* lost" a.err &&
  test "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 1")" = 0 &&
  durin resume --skip-call $id >c.txt &&
  test "$(status_of $id)" = succeeded &&
  test "$(wc -l <"$C/t1")" = 1 &&
  test "$(wc -l <"$C/t2")" = 1 &&
  events_contiguous $id
'

test_done
