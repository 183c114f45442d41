#!/bin/sh
# The loop and storm breakers (docs/internals/breakers.md) and run_status.
# The same failing `npm install` three times, other commands between,
# stops the run as needs_human with the loop named, and `durin resume`
# goes on; eight failures in ten calls pause it, and `durin resume` goes
# on; run_status answers the agent with the true figures of its own run
# and refuses another run.
. "$(dirname "$0")/lib-test.sh"

make_project
# A stand-in for npm without the network: the same error each time, with
# a pid and a time that differ.
cat >"$TRASH/project/npm.sh" <<'SH'
echo "npm ERR! code E404"
echo "npm ERR! 404 Not Found - GET https://registry.npmjs.org/left-padd"
echo "npm ERR! A complete log of this run can be found in: /tmp/npm-$$-$(date +%s%N).log"
exit 1
SH

call() { # call TOOL ARGS_JSON
  echo "{\"name\": \"$1\", \"arguments\": $2}"
}
NPM=$(call bash '{"command": "sh npm.sh install"}')
# The same call: other whitespace.
NPM2=$(call bash '{"command": "  sh   npm.sh  install "}')

# Each turn reports its usage (the script provider counts none by itself).
U() { echo "\"usage\": {\"input_tokens\": $((1000 + $1 * 100)), \"output_tokens\": 50}"; }
cat >"$TRASH/loop.json" <<JSON
{"goal": "install the dependencies", "workspace": "project",
 "model": {"provider": "script",
  "price": {"input_per_mtok": 3, "output_per_mtok": 15}, "turns": [
   {$(U 1), "tool_calls": [$NPM]},
   {$(U 2), "tool_calls": [$(call bash '{"command": "ls"}')]},
   {$(U 3), "tool_calls": [$NPM2]},
   {$(U 4), "tool_calls": [$(call read_file '{"path": "Makefile"}')]},
   {$(U 5), "tool_calls": [$NPM]},
   {$(U 6), "tool_calls": [$(call run_status '{}'), $(call run_status '{"run_id": "other"}')]},
   {$(U 7), "tool_calls": [$(call finish '{"summary": "gave up on npm"}')]}]}}
JSON

ev() { # ev ID TYPE JQ: the JQ of each event of TYPE, one per line
  sql "select data from events where run_id = '$1' and type = '$2' order by seq" |
    jq -r "$3"
}

test_expect_success 'the same failing npm install three times stops the run, the loop named' '
  test_must_fail_with 2 durin run loop.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = needs_human &&
  grep_q "the same bash call failed the same way 3 times" err.txt &&
  test "$(ev $id loop_detected .tool)" = bash &&
  test "$(ev $id loop_detected .times)" = 3 &&
  test "$(ev $id loop_detected .exit_code)" = 1 &&
  test "$(ev $id loop_detected .arguments)" = "{\"command\":\"sh npm.sh install\"}" &&
  test "$(ev $id loop_detected "[.first_step, .last_step] | @csv")" = "1,5" &&
  ev $id loop_detected .error | grep_q "npm ERR! A complete log" &&
  # The tokens and dollars the three calls took: all of their steps.
  test "$(ev $id loop_detected .input_tokens)" = 3900 &&
  test "$(ev $id loop_detected .output_tokens)" = 150 &&
  test "$(ev $id loop_detected "(.cost_usd * 1e6 | round)")" = \
    "$(sql "select data from events where run_id = '\''$id'\'' and type = '\''model_response'\'' and step in (1, 3, 5)" |
      jq -s "map(.cost_usd) | add * 1e6 | round")" &&
  grep_q "using 3900 input and 150 output tokens (\$0.0140)" err.txt &&
  durin show $id >show.txt &&
  grep_q "loop: the same bash call failed the same way 3 times" show.txt &&
  grep_q "durin resume $id" show.txt &&
  durin logs $id >logs.txt &&
  grep_q "loop: bash {\"command\":\"sh npm.sh install\"} failed the same way 3 times (exit code 1)" logs.txt &&
  grep_q "npm ERR! A complete log" logs.txt &&
  events_contiguous $id && checkpoint_valid $id
'

test_expect_success 'durin resume goes on from the loop' '
  durin resume $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  test "$(ev $id resumed .from_step)" = 5
'

test_expect_success 'run_status answers with the true figures of this run' '
  sql "select data from events where run_id = '\''$id'\'' and type = '\''tool_result'\'' and step = 6 order by seq" >st.txt &&
  head -n 1 st.txt | jq -r .output >status.json &&
  jq -e .run status.json >/dev/null &&
  test "$(jq -r .run status.json)" = $id &&
  test "$(jq -r .budget.steps.used status.json)" = 5 &&
  test "$(jq -r .budget.steps.limit status.json)" = 100 &&
  test "$(jq -r .budget.tool_calls.used status.json)" = 5 &&
  # Tokens: every model call through this step, as the log has them.
  want=$(sql "select data from events where run_id = '\''$id'\'' and type = '\''model_response'\'' and step <= 6" |
    jq -s "map(.input_tokens + .output_tokens) | add") &&
  test "$(jq -r .budget.tokens.used status.json)" = "$want" &&
  test "$(jq -r .tools.bash.calls status.json)" = 4 &&
  test "$(jq -r .tools.bash.failed status.json)" = 3 &&
  test "$(jq -r .tools.read_file.calls status.json)" = 1 &&
  test "$(jq -r ".failures | length" status.json)" = 3 &&
  jq -r ".failures[2].tail" status.json | grep_q "npm ERR! code E404" &&
  test "$(jq -r .evaluation.attempts_left status.json)" = 3 &&
  test "$(jq -r .breakers.repeat.stopped status.json)" = 1 &&
  test "$(jq -r .budget.wall_clock_s.limit status.json)" = null &&
  # The final figures agree: show --json counts the same calls.
  durin show --json $id >show.json &&
  test "$(jq -r .tool_calls show.json)" = 5
'

test_expect_success 'run_status refuses another run' '
  sed -n 2p st.txt | jq -e ".ok == false" >/dev/null &&
  sed -n 2p st.txt | jq -r .output | grep_q "run_status answers about this run only"
'

test_expect_success 'eight failures in ten calls pause the run; durin resume goes on' '
  cat >storm.json <<JSON &&
{"goal": "probe", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [$(call bash '\''{"command": "true"}'\''), $(call bash '\''{"command": "ls"}'\''),
     $(call bash '\''{"command": "cat m1"}'\''), $(call bash '\''{"command": "cat m2"}'\''),
     $(call bash '\''{"command": "cat m3"}'\'')]},
   {"tool_calls": [$(call bash '\''{"command": "cat m4"}'\''), $(call bash '\''{"command": "cat m5"}'\''),
     $(call bash '\''{"command": "cat m6"}'\''), $(call bash '\''{"command": "cat m7"}'\''),
     $(call bash '\''{"command": "cat m8"}'\'')]},
   {"tool_calls": [$(call finish '\''{"summary": "probed"}'\'')]}]}}
JSON
  test_must_fail_with 2 durin run storm.json >out2.txt 2>err2.txt &&
  id2=$(run_id_of out2.txt) &&
  test "$(status_of $id2)" = paused &&
  test "$(col_of $id2 lease_owner)" = "" &&
  grep_q "run paused: storm: 8 of the last 10 tool calls failed" err2.txt &&
  test "$(ev $id2 storm_detected .failures)" = 8 &&
  test "$(ev $id2 storm_detected .window)" = 10 &&
  test "$(ev $id2 storm_detected ".recent | length")" = 10 &&
  ev $id2 storm_detected .reason | grep_q "durin resume $id2" &&
  durin logs $id2 | grep_q "storm: 8 of the last 10" &&
  durin resume $id2 >res2.txt 2>&1 &&
  test "$(status_of $id2)" = succeeded &&
  events_contiguous $id2 && checkpoint_valid $id2
'

test_expect_success 'a paused run can also go back to the queue' '
  durin run storm.json >out3.txt 2>&1; test $? = 2 &&
  id3=$(run_id_of out3.txt) &&
  test "$(status_of $id3)" = paused &&
  durin unpause $id3 >u.txt &&
  test "$(status_of $id3)" = running
'

test_expect_success 'breakers are validated in the spec' '
  sed "s/\"workspace\": \"project\",/\"workspace\": \"project\", \"breakers\": {\"failures\": 11},/" storm.json >bad.json &&
  test_must_fail_with 65 durin run bad.json >out4.txt 2>err4.txt &&
  grep_q "breakers.failures. (11) must be at most .breakers.window. (10)" err4.txt
'

test_done
