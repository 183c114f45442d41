#!/bin/sh
# The example runs to success; its log, checkpoint, diff and JSON output.
. "$(dirname "$0")/lib-test.sh"

EX="$SRCDIR/examples/fix-failing-test"

test_expect_success 'the example run succeeds' '
  durin run "$EX/agent.json" >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) && test -n "$id" &&
  echo "$id" >id &&
  test "$(status_of $id)" = succeeded &&
  grep_q "acceptance checks PASSED" out.txt
'
id=$(cat "$TRASH/id" 2>/dev/null)

test_expect_success 'the source project was not touched' '
  grep_q "sum / (n - 1)" "$EX/project/src/stats.c"
'

test_expect_success 'diff shows the fix' '
  durin diff $id >diff.txt &&
  grep_q "^-  return sum / (n - 1);" diff.txt &&
  grep_q "^+  return sum / n;" diff.txt
'

test_expect_success 'events are contiguous and the checkpoint is valid' '
  events_contiguous $id && checkpoint_valid $id &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'run_finished'"'"'")" = 1
'

test_expect_success 'one transaction per step: no pending step is left' '
  test "$(sql "select count(*) from pending")" = 0 &&
  test "$(sql "select count(*) from ledger where done = 0")" = 0
'

test_expect_success 'show and ls report the run' '
  durin show $id >show.txt &&
  grep_q "status    succeeded" show.txt &&
  grep_q "steps     6" show.txt &&
  grep_q "cost      .0.0422" show.txt &&
  grep_q "0 failure(s)" show.txt &&
  grep_q "^evaluator 2 steps, 3370 tokens (3230 in, 140 out), .0.0118" show.txt &&
  grep_q "^verdict   pass (attempt 1, evaluator)" show.txt &&
  durin ls >ls.txt && grep_q "$id *succeeded" ls.txt &&
  durin show --json $id >show.json &&
  grep_q "\"status\": \"succeeded\"" show.json
'

test_expect_success 'ls filters by status; diff --stat names files' '
  durin ls --status succeeded >ok.txt && grep_q "$id" ok.txt &&
  durin ls --status failed >bad.txt && ! grep -q "$id" bad.txt &&
  test_must_fail_with 64 durin ls --status happy 2>err &&
  grep_q "unknown status" err &&
  durin ls --json >ls.json && grep_q "\"id\":\"$id\",\"name\":\"fix-failing-test\"" ls.json &&
  durin diff --stat $id >stat.txt && grep_q "src/stats.c" stat.txt
'

test_expect_success 'a short id prefix works' '
  short=$(echo $id | cut -c1-18) &&
  durin show $short | grep_q "$id"
'

test_expect_success 'logs prints every event; --json is one object a line' '
  durin logs $id >logs.txt &&
  grep_q "run succeeded" logs.txt &&
  durin logs --json $id >logs.json &&
  n=$(sql "select count(*) from events where run_id = '"'"'$id'"'"'") &&
  test "$(wc -l <logs.json)" = "$n" &&
  head -n 1 logs.json | grep_q "\"type\":\"run_started\""
'

test_expect_success 'logs -f ends when the run has ended' '
  timeout 10 "$DURIN" logs -f $id >f.txt && grep_q "run succeeded" f.txt
'

test_expect_success 'run --json streams events and a summary' '
  durin run --json "$EX/agent.json" >j.txt &&
  tail -n 1 j.txt | grep_q "\"status\":\"succeeded\"" &&
  grep_q "\"type\":\"model_response\"" j.txt
'

test_expect_success 'closed standard descriptors harm neither run nor store' '
  "$DURIN" run "$EX/agent.json" <&- >&- 2>&-
  test $? = 0 &&
  last=$(sql "select id from runs order by created_ms desc, id desc limit 1") &&
  test "$(status_of $last)" = succeeded &&
  test "$(store_intact)" = ok &&
  sql "select data from events where run_id = '"'"'$last'"'"' and type = '"'"'tool_result'"'"'" | grep_q "FAIL mean of 2 4 6 8"
'

test_expect_success 'resume of an ended run changes nothing' '
  durin resume $id 2>err; test $? = 0 && grep_q "already ended" err
'

test_done
