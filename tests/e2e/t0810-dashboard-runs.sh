#!/bin/sh
# The dashboard in a real browser (headless Chromium, playwright-core):
# sign-in and its refusal (and none on a --no-auth serve), the runs view
# with no run yet, "Load earlier" on a long log, a run submitted
# through the API going live in the runs and run views, the workers view,
# and what the pages say when the server stops answering. Every view is
# checked with axe and photographed (see tests/e2e/lib-dashboard.sh).
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/lib-dashboard.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

# A run of two bash steps, a third that a rule asks a person about, two
# more, then finish; the fourth takes 2 s, so the run view's refreshes,
# slowed by live.mjs, come while others are on their way.
body() {
  cat <<JSON
{"spec": {"name": "live", "goal": "go live",
 "model": {"provider": "script", "turns": [
   {"text": "looking", "tool_calls": [{"name": "bash", "arguments": {"command": "echo one"}}]},
   {"tool_calls": [{"name": "update_plan", "arguments": {"plan": [{"step": "touch", "status": "in_progress"}]}}]},
   {"text": "making the file", "tool_calls": [{"name": "bash", "arguments": {"command": "touch gate"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 2; echo three"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]}}}
JSON
}

test_expect_success 'serve, and an operator' '
  start_serve &&
  op=$(make_token ops-alice operator) && test -n "$op"
'

test_expect_success 'sign-in refuses a bad token; no runs yet; serve gone: "does not answer"' '
  dash_bg signin.out signin.mjs DASH_TOKEN="$op" &&
  at serve-down &&
  stop_serve && go serve-down &&
  dash_wait
'

test_expect_success 'a run submitted through the API goes live in the browser' '
  start_serve &&
  dash_bg live.out live.mjs DASH_TOKEN="$op" &&
  at submit &&
  test "$(api "$op" POST /v1/runs -d "$(body)")" = 201 &&
  id=$(body_field .id) && echo "$id" >sync/run-id && go submit &&
  at approve &&
  test "$(status_of $id)" = waiting_approval &&
  a=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  test "$(api "$op" POST /v1/approvals/$a/approve -d "{}")" = 200 &&
  go approve &&
  dash_wait &&
  test "$(status_of $id)" = succeeded
'

test_expect_success 'a long log: the last 200 events, then "Load earlier" from the keyboard' '
  jq -n "{spec: {goal: \"many steps\", budget: {steps: 200},
    model: {provider: \"script\", turns: ([range(90) | {tool_calls: [{name: \"update_plan\",
      arguments: {plan: [{step: \"go on\", status: \"in_progress\"}]}}]}]
      + [{tool_calls: [{name: \"finish\", arguments: {summary: \"done\"}}]}])}}}" >long.json &&
  test "$(api "$op" POST /v1/runs --data-binary @long.json)" = 201 &&
  long=$(body_field .id) &&
  wait_for 120 "test \"\$(status_of $long)\" = succeeded" &&
  last=$(sql "select last_seq from runs where id = '"'"'$long'"'"'") &&
  test "$last" -gt 200 &&
  dash earlier.mjs DASH_TOKEN="$op" DASH_RUN="$long" DASH_LAST="$last"
'

test_expect_success 'a --no-auth serve: no sign-in, the local admin' '
  stop_serve &&
  start_serve --no-auth &&
  dash noauth.mjs
'

test_expect_success 'screenshots of each view are artefacts' '
  for v in signin signin-refused runs-empty unreachable runs run workers; do
    test -s "$DASH_ARTEFACTS/$v.png" || { echo "no $v.png in $DASH_ARTEFACTS"; return 1; }
  done
'

stop_serve
test_done
