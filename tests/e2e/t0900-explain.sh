#!/bin/sh
# durin explain: a run's postmortem from its log alone. Where the tokens,
# dollars and time went, the retry loop it was stuck in and what failed
# first, its checks, the time it waited for a person, and why it stopped;
# the JSON's figures add up to its totals.
. "$(dirname "$0")/lib-test.sh"

make_project

# bash_turn COMMAND [ARGS]: a scripted turn with one bash call of COMMAND
# (ARGS, when given, is the arguments' JSON text as the model wrote it).
bash_turn() {
  args=${2:-$(jq -cn --arg c "$1" '{command: $c}')}
  jq -cn --arg a "$args" \
    '{tool_calls: [{name: "bash", arguments: $a}], usage: {input_tokens: 2000, output_tokens: 40}}'
}

# The first failure's error is its line that says so, not its first line.
NPM_FAIL="sh -c 'echo \"npm WARN old lockfile\" >&2; echo \"npm ERR! ERESOLVE unable to resolve dependency tree\" >&2; exit 1'"
PEER="sh -c 'echo \"npm ERR! peer dep conflict\" >&2; exit 1'"
CLEAN="rm -rf node_modules"
FORCE="sh -c 'echo \"npm ERR! code ERESOLVE\" >&2; exit 1'"

# The loop's run: a plan, the failing install, then three commands
# alternating (one of them written with its keys in another order and
# other spacing each time round) until the dollar budget stops it (the
# loop and storm breakers off: they would stop it first, t1400).
loop_spec() {
  {
    echo '{"tool_calls": [{"name": "update_plan", "arguments": {"plan": [{"step": "install dependencies", "status": "in_progress"}, {"step": "run the tests", "status": "pending"}]}}], "usage": {"input_tokens": 500, "output_tokens": 50}}'
    bash_turn "$NPM_FAIL"
    i=0
    while [ $i -lt 30 ]; do
      bash_turn "$PEER"
      bash_turn "$CLEAN"
      if [ $((i % 2)) = 0 ]; then
        bash_turn "$FORCE" "$(jq -cn --arg c "$FORCE" '{command: $c, timeout_s: 30}')"
      else
        bash_turn "$FORCE" "$(jq -n --arg c "$FORCE" '{timeout_s: 30, command: $c}')"
      fi
      i=$((i + 1))
    done
  } | jq -s '{goal: "install the dependencies and run the tests",
              workspace: "project",
              model: {provider: "script", turns: .,
                      price: {input_per_mtok: 10, output_per_mtok: 30}},
              budget: {steps: 0, dollars: 0.5},
              breakers: {repeat: 0, failures: 0}}' >loop.json
}

test_expect_success 'a retry loop: the headline names it, its share and what failed first' '
  loop_spec &&
  test_must_fail_with 1 durin run loop.json >out.txt 2>err.txt &&
  loop=$(run_id_of out.txt) &&
  test "$(status_of $loop)" = budget_exceeded &&
  durin explain $loop >x.txt &&
  cat x.txt &&
  grep_q "^budget exceeded: dollar budget" x.txt &&
  tr "\n" " " <x.txt >x1.txt &&
  grep_q "in a 3-command retry loop (steps 3-" x1.txt &&
  grep_q "after \`sh -c .echo \"npm WARN old lockfile\" >&2; echo \"npm ERR! ERESOLVE unable to resolve dependency tree\" >&2; exit 1.\` failed (step 2) with .npm ERR! ERESOLVE unable to resolve dependency tree." x1.txt &&
  grep_q "^retry loops" x.txt &&
  grep_q "^  [0-9]*x bash \`sh -c .echo \"npm ERR! code ERESOLVE\"" x.txt &&
  grep_q "^install dependencies " x.txt
'

test_expect_success 'the loop in JSON: its share, its first failure, normalized calls' '
  durin explain --json $loop >x.json &&
  jq -e ".loops | length == 1" x.json &&
  jq -e ".loops[0].distinct_calls == 3 and .loops[0].first_step == 3" x.json &&
  jq -e ".loops[0].token_share > 80 and .loops[0].token_share <= 100" x.json &&
  jq -e ".loops[0].first_failure.step == 2" x.json &&
  jq -e ".loops[0].first_failure.error == \"npm ERR! ERESOLVE unable to resolve dependency tree\"" x.json &&
  jq -e --arg c "$FORCE" ".loops[0].commands | index(\$c) != null" x.json &&
  n=$(jq ".loops[0].calls" x.json) &&
  forced=$(jq --arg c "$FORCE" "[.repeated_failures[] | select(.command == \$c)][0].failures" x.json) &&
  peer=$(jq --arg c "$PEER" "[.repeated_failures[] | select(.command == \$c)][0].failures" x.json) &&
  echo "loop $n calls, $forced of FORCE, $peer of PEER" &&
  test $((forced + peer)) = "$(jq ".loops[0].failed" x.json)" &&
  test "$forced" -ge 2 && test $((peer - forced)) -le 1 &&
  jq -e ".status == \"budget_exceeded\" and .outcome.stopped_by == \"budget_exceeded\"" x.json
'

test_expect_success 'the figures add up: tools and phases to the totals, shares in 0..100' '
  jq -e "([.tools[].tokens] | add) == .totals.tokens" x.json &&
  jq -e "([.phases[].tokens] | add) == .totals.tokens" x.json &&
  jq -e "(([.tools[].cost_usd] | add) - .totals.cost_usd | fabs) < 0.000001" x.json &&
  jq -e "(([.phases[].cost_usd] | add) - .totals.cost_usd | fabs) < 0.000001" x.json &&
  jq -e "([.tools[].calls] | add) == .totals.tool_calls" x.json &&
  jq -e "([.tools[].failed] | add) == .totals.failed_calls" x.json &&
  jq -e "[.tools[].token_share, .tools[].cost_share, .phases[].token_share, .loops[].token_share, .loops[].cost_share] | all(. >= 0 and . <= 100)" x.json &&
  jq -e ".totals.input_tokens + .totals.output_tokens == .totals.tokens" x.json &&
  test "$(jq .totals.tokens x.json)" = "$(sql "select input_tokens + output_tokens from runs where id = '"'"'$loop'"'"'")" &&
  test "$(jq .totals.steps x.json)" = "$(sql "select steps from runs where id = '"'"'$loop'"'"'")" &&
  jq -e ".totals.model_ms + .totals.tools_ms + .totals.waiting_human_ms + .totals.other_ms >= .totals.wall_ms" x.json &&
  jq -e "[.last_errors[] | .tail | test(\"npm ERR!\")] | length == 3 and all" x.json &&
  jq -e ".tools[0].name == \"bash\" and .tools[0].p50_ms <= .tools[0].max_ms" x.json
'

test_expect_success 'a succeeded run: the headline says so and finds no loop' '
  durin run "$SRCDIR/examples/fix-failing-test/agent.json" >out.txt 2>err.txt &&
  ok=$(run_id_of out.txt) &&
  durin explain $ok >x.txt &&
  cat x.txt &&
  head -n 3 x.txt | grep_q "^succeeded" &&
  tr "\n" " " <x.txt | grep_q "Most of its tokens went to .run the failing tests. (" &&
  ! grep_q "retry loop" x.txt &&
  durin explain --json $ok >ok.json &&
  jq -e ".loops == [] and .repeated_failures == []" ok.json &&
  jq -e ".checks[-1].passed" ok.json &&
  jq -e "[.phases[].name] == [\"before any plan\", \"run the failing tests\", \"fix it and re-run the tests\", \"evaluation\"] or [.phases[].name] == [\"run the failing tests\", \"fix it and re-run the tests\", \"evaluation\"]" ok.json &&
  jq -e "([.phases[].tokens] | add) == .totals.tokens" ok.json &&
  jq -e ".outcome.summary | test(\"stats_mean\")" ok.json
'

test_expect_success 'a run that failed its checks: the check and its failing line' '
  cat >checks.json <<JSON &&
{"goal": "fix it", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done, really"}}]}]},
 "checks": [{"name": "tests", "run": "make -s clean test", "timeout_s": 60}],
 "max_eval_attempts": 2}
JSON
  test_must_fail_with 1 durin run checks.json >out.txt 2>err.txt &&
  bad=$(run_id_of out.txt) &&
  durin explain $bad >x.txt &&
  cat x.txt &&
  tr "\n" " " <x.txt | grep_q "Its checks failed on attempt 2: .tests. said .FAIL" &&
  grep_q "^  attempt 1 (step 1): failed" x.txt &&
  grep_q "^    tests failed (exit [1-9][0-9]*): FAIL" x.txt &&
  durin explain --json $bad >b.json &&
  jq -e ".checks | length == 2 and all(.passed == false)" b.json &&
  jq -e ".checks[1].failed[0].name == \"tests\" and (.checks[1].failed[0].line | startswith(\"FAIL\"))" b.json &&
  jq -e ".status == \"failed\" and (.reason | test(\"max_eval_attempts\"))" b.json
'

test_expect_success 'an approval: the time waiting for a person is counted, before and after' '
  cat >ask.json <<JSON &&
{"goal": "tidy", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "touch marker"}}], "usage": {"input_tokens": 100, "output_tokens": 10}},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "tidied"}}], "usage": {"input_tokens": 100, "output_tokens": 10}}]},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]}}
JSON
  test_must_fail_with 2 durin run --no-wait ask.json >out.txt 2>err.txt &&
  wait_id=$(run_id_of out.txt) &&
  test "$(status_of $wait_id)" = waiting_approval &&
  sleep 1.2 &&
  durin explain --json $wait_id >w.json &&
  jq -e ".status == \"waiting_approval\" and .approvals[0].state == \"pending\"" w.json &&
  jq -e ".totals.waiting_human_ms >= 1000 and .approvals[0].wait_ms == .totals.waiting_human_ms" w.json &&
  durin explain $wait_id >x.txt &&
  tr "\n" " " <x.txt | grep_q "It waited [0-9.]*s for a person to decide on 1 approval." &&
  a=$(jq -r ".approvals[0].id" w.json) &&
  durin approve $a >/dev/null &&
  durin resume $wait_id >r.txt &&
  test "$(status_of $wait_id)" = succeeded &&
  durin explain --json $wait_id >w2.json &&
  jq -e ".approvals[0].state == \"approved\" and .approvals[0].wait_ms >= 1000" w2.json &&
  jq -e ".totals.waiting_human_ms >= 1000 and .totals.waiting_human_ms <= .totals.wall_ms" w2.json &&
  jq -e ".totals.other_ms < .totals.wall_ms" w2.json
'

test_expect_success 'a run that keeps making the same call that works: the headline says so' '
  cat >same.json <<JSON &&
{"goal": "look around", "workspace": "project",
 "model": {"provider": "script", "turns": [{"repeat": 100, "tool_calls": [{"name": "list_files", "arguments": {}}], "usage": {"input_tokens": 1000, "output_tokens": 100}}]},
 "budget": {"steps": 6}}
JSON
  test_must_fail_with 1 durin run same.json >out.txt 2>err.txt &&
  same=$(run_id_of out.txt) &&
  durin explain $same >x.txt &&
  tr "\n" " " <x.txt | grep_q "It made the same call, list_files .{}., 6 times (steps 1-6): 100% of its tokens." &&
  durin explain --json $same >s.json &&
  jq -e ".loops == [] and .most_repeated.calls == 6 and .most_repeated.tokens == 6600" s.json
'

test_expect_success 'no such run: exit 5 and a message; a run with no events says so' '
  test_must_fail_with 5 durin explain rdoesnotexist 2>e.txt &&
  grep_q "rdoesnotexist" e.txt &&
  test_must_fail_with 64 durin explain 2>e.txt &&
  test_must_fail_with 64 durin explain --bogus $loop 2>e.txt &&
  grep_q "unknown option" e.txt &&
  durin help explain >h.txt && grep_q "usage: durin explain" h.txt &&
  q=$(durin submit loop.json) &&
  test -n "$q" &&
  if [ "$(sql "select count(*) from events where run_id = '"'"'$q'"'"'")" = 0 ]; then
    durin explain $q >x.txt && grep_q "has no events yet" x.txt &&
    durin explain --json $q >q.json && jq -e ".events == 0 and .totals.steps == 0" q.json
  else
    durin explain --json $q >q.json && jq -e ".totals.steps == 0" q.json
  fi
'

test_done
