#!/bin/sh
# The evaluator: once the agent calls finish and the checks pass, a
# session that never saw the agent's messages reads the workspace and
# gives a verdict. pass ends the run succeeded; fail sends the agent back
# with the reasons, until max_eval_attempts; a malformed or missing
# verdict, a timeout or a spent evaluator budget is a fail. Its commands
# see the workspace read-only and no network. A crash in the middle of an
# evaluation resumes it: one evaluation, one verdict.
. "$(dirname "$0")/lib-test.sh"

make_project

FIX='{"name": "edit_file", "arguments": {"path": "src/stats.c", "old_string": "  return sum / (n - 1);", "new_string": "  return sum / n;"}}'
FINISH='{"name": "finish", "arguments": {"summary": "stats_mean divides by n now"}}'

# spec FILE EVALUATOR_TURNS [MORE_TOP_LEVEL_FIELDS] [EVALUATOR_FIELDS]
# The agent: "AGENT-MONOLOGUE" text with the fix, then finish, and finish
# again for a second attempt.
spec() {
  cat >"$TRASH/$1" <<JSON
{"goal": "make the tests pass", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"text": "AGENT-MONOLOGUE: the divisor looks wrong", "tool_calls": [$FIX]},
   {"tool_calls": [$FINISH]},
   {"tool_calls": [$FINISH]}]},
 "checks": [{"name": "tests", "run": "make -s clean test"}]${3:-},
 "evaluator": {"model": {"provider": "script", "turns": $2},
   "criteria": ["stats_mean is right for every n"]${4:-}}}
JSON
}

verdict_turn() { # verdict_turn VERDICT [REASON]
  if [ -n "${2:-}" ]; then
    echo "{\"tool_calls\": [{\"name\": \"verdict\", \"arguments\": {\"verdict\": \"$1\", \"reasons\": [\"$2\"]}}]}"
  else
    echo "{\"tool_calls\": [{\"name\": \"verdict\", \"arguments\": {\"verdict\": \"$1\"}}]}"
  fi
}

ev() { # ev ID TYPE JQ: the JQ of each event of TYPE, one per line
  sql "select data from events where run_id = '$1' and type = '$2' order by seq" |
    jq -r "$3"
}
# crash_run SPEC POINT: durin run is killed at POINT; sets $id.
crash_run() {
  env DURIN_CRASH_AT="$2" "$DURIN" run "$1" >out.txt 2>&1
  rc=$?
  [ $rc = 137 ] || { echo "durin exited $rc at $2, not killed"; cat out.txt; return 1; }
  id=$(run_id_of out.txt)
}

count_of() { sql "select count(*) from events where run_id = '$1' and type = '$2'"; }
# The evaluator's events of TYPE, one JSON per line.
eval_events() {
  sql "select data from events where run_id = '$1' and type = '$2' order by seq" |
    jq -c 'select(.role == "evaluator")'
}
eval_steps() { eval_events "$1" model_response | wc -l | tr -d " "; }

test_expect_success 'pass: the evaluator reads the files, starts from the goal, criteria and diff, never the agent' '
  spec pass.json "[{\"text\": \"reading\", \"tool_calls\": [{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/stats.c\"}}]}, $(verdict_turn pass)]" &&
  durin run pass.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  ev $id evaluation_started .context >ctx.txt &&
  grep_q "make the tests pass" ctx.txt &&
  grep_q "stats_mean is right for every n" ctx.txt &&
  grep_q "stats_mean divides by n now" ctx.txt &&
  grep_q "+  return sum / n;" ctx.txt &&
  grep_q "## tests: passed" ctx.txt &&
  ! grep_q AGENT-MONOLOGUE ctx.txt &&
  test "$(ev $id verdict ".verdict + \" \" + .source")" = "pass evaluator" &&
  test "$(eval_steps $id)" = 2 &&
  test "$(col_of $id reason)" = "the acceptance checks passed and the evaluator accepted the work" &&
  durin show $id >show.txt &&
  grep_q "^evaluator .*2 steps" show.txt &&
  grep_q "verdict   pass" show.txt
'

test_expect_success 'fail then pass: the agent gets the reasons and tries again' '
  spec failpass.json "[$(verdict_turn fail "no test covers n = 1"), $(verdict_turn pass)]" &&
  durin run failpass.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(ev $id verdict .verdict | tr "\n" " ")" = "fail pass " &&
  test "$(ev $id verdict .attempt | tr "\n" " ")" = "1 2 " &&
  ev $id user_message .content >msg.txt &&
  grep_q "no test covers n = 1" msg.txt &&
  grep_q "attempt 1 of 3" msg.txt &&
  test "$(count_of $id checks)" = 2
'

test_expect_success 'a malformed verdict is a fail; at max_eval_attempts the run fails with it' '
  spec bad.json "[{\"tool_calls\": [{\"name\": \"verdict\", \"arguments\": {\"verdict\": \"lgtm\"}}]}]" \
    ",\"max_eval_attempts\": 1" &&
  test_must_fail_with 1 durin run bad.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  test "$(ev $id verdict ".verdict + \" \" + .source")" = "fail malformed" &&
  col_of $id reason | grep_q "did not accept the work after 1 attempt" &&
  col_of $id reason | grep_q "malformed"
'

test_expect_success 'an answer without a verdict, and a spent evaluator budget, are fails' '
  spec missing.json "[{\"text\": \"looks fine to me\"}]" ",\"max_eval_attempts\": 1" &&
  test_must_fail_with 1 durin run missing.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(ev $id verdict ".verdict + \" \" + .source")" = "fail missing" &&
  spec budget.json "[{\"tool_calls\": [{\"name\": \"list_files\", \"arguments\": {}}]}, $(verdict_turn pass)]" \
    ",\"max_eval_attempts\": 1" ",\"budget\": {\"steps\": 1}" &&
  test_must_fail_with 1 durin run budget.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(ev $id verdict ".verdict + \" \" + .source")" = "fail budget" &&
  test "$(eval_steps $id)" = 1
'

test_expect_success 'an evaluator that runs out of time fails the evaluation' '
  spec slow.json "[{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"sleep 30\"}}]}, $(verdict_turn pass)]" \
    ",\"max_eval_attempts\": 1" ",\"timeout_s\": 2" &&
  test_must_fail_with 1 durin run slow.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(ev $id verdict ".verdict + \" \" + .source")" = "fail timeout" &&
  test "$(eval_events $id tool_result | jq -r .timed_out)" = true
'

test_expect_success 'an evaluator that tries to write or to reach the network is refused' '
  python3 -u -m http.server --bind 127.0.0.1 0 >http.log 2>&1 &
  srv=$! && bg_pids="$bg_pids $srv" &&
  wait_for 10 "grep -q \"port\" http.log" &&
  port=$(sed -n "s/.*port \([0-9]*\).*/\1/p" http.log | head -n 1) &&
  cat >try.sh <<-EOF &&
	touch NEW-FILE; echo "touch: \$?"
	echo broken >>src/stats.c; echo "append: \$?"
	rm -f Makefile; echo "rm: \$?"
	(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; echo "tcp: \$?"
	echo "proxy: \${HTTPS_PROXY:-none}"
	EOF
  cmd=$(jq -Rs . try.sh) &&
  spec write.json "[{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": $cmd}}, {\"name\": \"write_file\", \"arguments\": {\"path\": \"x\", \"content\": \"y\"}}]}, $(verdict_turn pass)]" \
    ",\"sandbox\": {\"network\": \"proxy\", \"allow_hosts\": [\"example.com\"]}" &&
  durin run write.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  ws=$(col_of $id workspace) &&
  eval_events $id tool_result | jq -r .output >outs.txt &&
  grep_q "touch: 1" outs.txt &&
  grep_q "append: 1" outs.txt &&
  grep_q "rm: 1" outs.txt &&
  grep_q "tcp: 1" outs.txt &&
  grep_q "proxy: none" outs.txt &&
  grep_q "Read-only file system" outs.txt &&
  grep_q "no tool named .write_file." outs.txt &&
  test ! -e "$ws/NEW-FILE" && test ! -e "$ws/x" && test -f "$ws/Makefile" &&
  ! grep_q broken "$ws/src/stats.c" &&
  kill $srv
'

test_expect_success 'without the sandbox the evaluator gets no shell at all' '
  spec nosb.json "[{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"touch NOSB\"}}]}, $(verdict_turn pass)]" &&
  durin run --sandbox none nosb.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test ! -e "$(col_of $id workspace)/NOSB" &&
  sql "select data from events where run_id = '\''$id'\'' and type = '\''tool_result'\''" | grep_q "run only in the sandbox"
'

test_expect_success 'a crash in the middle of an evaluation resumes it: one evaluation, one verdict' '
  spec crash.json "[{\"tool_calls\": [{\"name\": \"read_file\", \"arguments\": {\"path\": \"src/stats.c\"}}]}, $(verdict_turn pass)]" &&
  # commits: the opening, the fix, the finish (evaluation opens), the
  # evaluator reading: the process dies just after that one.
  crash_run crash.json after_commit:4 &&
  test "$(count_of $id evaluation_started)" = 1 &&
  test "$(count_of $id verdict)" = 0 &&
  test "$(eval_steps $id)" = 1 &&
  durin resume $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  test "$(count_of $id evaluation_started)" = 1 &&
  test "$(count_of $id verdict)" = 1 &&
  test "$(eval_steps $id)" = 2 &&
  test "$(count_of $id checks)" = 1 &&
  events_contiguous $id
'

test_expect_success 'a crash before the verdict is committed gives one verdict, not two' '
  spec crash2.json "[$(verdict_turn pass)]" &&
  crash_run crash2.json before_commit:4 &&
  test "$(count_of $id verdict)" = 0 &&
  durin resume $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  test "$(count_of $id verdict)" = 1 &&
  test "$(count_of $id evaluation_started)" = 1
'

test_expect_success 'needs_human from the evaluator stops the run for a person' '
  spec human.json "[$(verdict_turn needs_human "the goal does not say which rounding to use")]" &&
  test_must_fail_with 2 durin run human.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = needs_human &&
  col_of $id reason | grep_q "which rounding"
'

test_expect_success 'a bad evaluator spec is refused with what to do' '
  spec badtools.json "[]" "" ",\"tools\": [\"read_file\", \"write_file\"]" &&
  test_must_fail_with 65 durin run badtools.json >out.txt 2>err.txt &&
  grep_q "evaluator.tools\[1\]" err.txt &&
  grep_q "an evaluator only reads" err.txt &&
  cat >nomodel.json <<-EOF &&
	{"goal": "g", "workspace": "project", "model": {"provider": "script", "turns": []},
	 "evaluator": {"criteria": ["x"]}}
	EOF
  test_must_fail_with 65 durin run nomodel.json >out.txt 2>err.txt &&
  grep_q "evaluator.model. is required" err.txt
'

test_done
