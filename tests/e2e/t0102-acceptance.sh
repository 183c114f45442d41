#!/bin/sh
# Acceptance checks decide "done"; a failure goes back to the model.
. "$(dirname "$0")/lib-test.sh"

make_project
FIX='{"name": "edit_file", "arguments": {"path": "src/stats.c", "old_string": "sum / (n - 1)", "new_string": "sum / n"}}'
FINISH='{"name": "finish", "arguments": {"summary": "done"}}'

write_spec() {
  cat >"$TRASH/s.json" <<JSON
{"goal": "fix it", "workspace": "project",
 "model": {"provider": "script", "turns": [$1]},
 "checks": [{"name": "tests", "run": "${3:-make -s clean test}", "timeout_s": ${4:-60}}],
 "max_eval_attempts": $2}
JSON
}

test_expect_success 'a failed check is fed back and the agent tries again' '
  write_spec "{\"tool_calls\": [$FINISH]}, {\"tool_calls\": [$FIX]}, {\"tool_calls\": [$FINISH]}" 3 &&
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'checks'"'"'")" = 2 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and step = 1" >r1 &&
  grep_q "not accepted (attempt 1 of 3)" r1 &&
  grep_q "FAIL mean of 2 4 6 8" r1
'

test_expect_success 'max_eval_attempts ends the run as failed' '
  write_spec "{\"tool_calls\": [$FINISH]}, {\"tool_calls\": [$FINISH]}" 2 &&
  test_must_fail_with 1 durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "max_eval_attempts"
'

test_expect_success 'a check that times out fails (default FAIL)' '
  write_spec "{\"tool_calls\": [$FINISH]}" 1 "sleep 30" 1 &&
  test_must_fail_with 1 durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'checks'"'"'" | grep_q "\"timed_out\":true"
'

test_expect_success 'without checks, finish ends the run and says so' '
  cat >s.json <<JSON &&
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [{"tool_calls": [$FINISH]}]}}
JSON
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "no acceptance checks"
'

test_done
