#!/bin/sh
# durin cancel: a driven run stops at its next step; an orphan at once.
. "$(dirname "$0")/lib-test.sh"

make_project
cat >"$TRASH/s.json" <<JSON
{"goal": "slow", "workspace": "project", "budget": {"steps": 0},
 "model": {"provider": "script", "turns": [
   {"repeat": 1000, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.2"}}]}]}}
JSON

test_expect_success 'cancel stops a run another process is driving' '
  ( durin run s.json >out.txt 2>&1; echo $? >rc ) &
  i=0; while ! grep_q "step 2" out.txt 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
  id=$(run_id_of out.txt) &&
  test_must_fail_with 3 durin resume $id 2>r.txt &&
  grep_q "is being driven by" r.txt &&
  durin cancel $id >c.txt && grep_q "cancellation requested" c.txt &&
  i=0; while [ ! -s rc ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
  test "$(cat rc)" = 1 &&
  test "$(status_of $id)" = cancelled &&
  events_contiguous $id && checkpoint_valid $id
'

test_expect_success 'cancel ends a run nobody is driving' '
  env DURIN_CRASH_AT=after_commit:3 "$DURIN" run s.json >out2.txt 2>&1;
  id=$(run_id_of out2.txt) &&
  test "$(status_of $id)" = running &&
  durin cancel $id >c.txt && grep_q "cancelled" c.txt &&
  test "$(status_of $id)" = cancelled &&
  events_contiguous $id &&
  test_must_fail_with 1 durin resume $id
'

test_expect_success 'SIGTERM lets go of the run; resume continues it' '
  cat >t.json <<JSON || return 1
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"repeat": 6, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.2"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON
  "$DURIN" run t.json >out3.txt 2>&1 &
  pid=$! &&
  i=0; while ! grep -q "step 2" out3.txt 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
  kill -TERM $pid && { wait $pid; rc=$?; } &&
  test $rc = 130 &&
  id=$(run_id_of out3.txt) &&
  test "$(status_of $id)" = running &&
  test -z "$(sql "select lease_owner from runs where id = '"'"'$id'"'"'")" &&
  durin resume $id >res3.txt &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select steps from runs where id = '"'"'$id'"'"'")" = 7
'

test_expect_success 'cancel reaches a tool call in flight and stops it' '
  cat >long.json <<JSON || return 1
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 60"}},
                   {"name": "bash", "arguments": {"command": "echo never >> never.txt"}}]}]}}
JSON
  ( "$DURIN" run long.json >out4.txt 2>&1; echo $? >rc4 ) &
  i=0; while [ -z "$(run_id_of out4.txt)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  id=$(run_id_of out4.txt) &&
  i=0; while [ "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 0" 2>/dev/null)" != 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  t0=$(date +%s) &&
  durin cancel $id >c4.txt &&
  i=0; while [ ! -s rc4 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done &&
  # Far sooner than the 60 s the command would take: it was stopped.
  test $(( $(date +%s) - t0 )) -lt 30 &&
  test "$(cat rc4)" = 1 &&
  test "$(status_of $id)" = cancelled &&
  grep_q "process group was killed" out4.txt &&
  ! test -e "$(sql "select workspace from runs where id = '"'"'$id'"'"'")/never.txt" &&
  events_contiguous $id
'

test_done
