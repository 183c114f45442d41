#!/bin/sh
# Budgets end a run as budget_exceeded, with the partial result and reason.
. "$(dirname "$0")/lib-test.sh"

make_project
# A model that never finishes: it keeps listing files.
loop_turn='{"repeat": 1000, "tool_calls": [{"name": "list_files", "arguments": {}}], "usage": {"input_tokens": 1000, "output_tokens": 100}}'

spec() {
  cat >"$TRASH/s.json" <<JSON
{"goal": "loop", "workspace": "project",
 "model": {"provider": "script", "turns": [$loop_turn],
           "price": {"input_per_mtok": 10, "output_per_mtok": 10}},
 "budget": {$1}}
JSON
}

check_budget() {
  spec "$1" &&
  test_must_fail_with 1 durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = budget_exceeded &&
  sql "select reason from runs where id = '$id'" | grep_q "$2" &&
  events_contiguous $id && checkpoint_valid $id
}

test_expect_success 'step budget' '
  check_budget "\"steps\": 3" "step budget of 3" &&
  test "$(sql "select steps from runs where id = '"'"'$id'"'"'")" = 3
'

test_expect_success 'tool-call budget is checked before the call' '
  check_budget "\"steps\": 0, \"tool_calls\": 2" "tool-call budget of 2" &&
  test "$(sql "select tool_calls from runs where id = '"'"'$id'"'"'")" = 2
'

# A call that could cross the budget (what it sends plus max_tokens, 4096
# when unset) is refused before it is made: the budget is never overshot.
test_expect_success 'token budget is never overshot' '
  check_budget "\"steps\": 0, \"tokens\": 5000" "token budget of 5000" &&
  test "$(sql "select input_tokens + output_tokens <= 5000 from runs where id = '"'"'$id'"'"'")" = 1
'

test_expect_success 'dollar budget is never overshot' '
  check_budget "\"steps\": 0, \"dollars\": 0.05" "dollar budget of" &&
  test "$(sql "select cost_usd <= 0.05 from runs where id = '"'"'$id'"'"'")" = 1
'

# Runs s.json, which the wall-clock budget must end: exit 1, status
# budget_exceeded, the reason names the budget. With SLOW_MS, the call it
# cuts would have taken that long: the run must end before it would have.
ends_on_wall_clock() {
  t0=$(date +%s%N) &&
  test_must_fail_with 1 durin run s.json >out.txt 2>err.txt &&
  t1=$(date +%s%N) &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = budget_exceeded &&
  sql "select reason from runs where id = '$id'" | grep_q "wall-clock" &&
  ms=$(( (t1 - t0) / 1000000 )) &&
  echo "run took $ms ms" &&
  test "$ms" -lt "${1:-999999999}"
}

test_expect_success 'wall-clock budget' '
  cat >s.json <<JSON &&
{"goal": "slow", "workspace": "project",
 "model": {"provider": "script", "turns": [{"repeat": 100, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.4"}}]}]},
 "budget": {"steps": 0, "wall_clock_s": 1}}
JSON
  ends_on_wall_clock
'

# The budget holds inside a tool call: the command is killed when it ends.
test_expect_success 'wall-clock budget holds inside a tool call' '
  cat >s.json <<JSON &&
{"goal": "slow", "workspace": "project",
 "model": {"provider": "script", "turns": [{"repeat": 100, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 8"}}]}]},
 "budget": {"steps": 0, "wall_clock_s": 2}}
JSON
  ends_on_wall_clock 8000
'

# And inside a model call: a model that answers after 8 s, and 5 s more
# after each retry, is cut at the budget; the run ends for its budget,
# not as a failure, and no retry waits past it.
FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test
test_expect_success 'wall-clock budget holds inside a model call' '
  echo "[{\"delay_ms\": 8000, \"status\": 500, \"body\": {}},
         {\"delay_ms\": 8000, \"status\": 500, \"body\": {}}]" >replies.json &&
  start_fake replies.json &&
  cat >s.json <<JSON &&
{"goal": "slow model", "workspace": "project",
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY",
           "timeout_s": 30},
 "budget": {"steps": 0, "wall_clock_s": 2}}
JSON
  ends_on_wall_clock 8000 &&
  stop_fake
'

test_done
