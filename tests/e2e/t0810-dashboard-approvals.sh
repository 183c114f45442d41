#!/bin/sh
# The dashboard's approvals inbox in a real browser (see
# tests/e2e/lib-dashboard.sh): a viewer sees no button that decides (and
# the API refuses it); an operator approves from the keyboard and sees the
# run finish; rejects with a reason typed on the keyboard, which reaches
# the model (an OpenAI-compatible fake that logs its requests); edits the
# arguments, sees each refusal in place, fixes them, and the edited call
# is the one that ran.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/lib-dashboard.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

RULES='"policy": {"rules": [
   {"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"},
   {"name": "no-curl", "tool": "bash", "command_prefix": "curl", "action": "deny"}]}'

# body COMMAND: a run that makes one bash call of COMMAND (asked about when
# it starts with touch), then finishes.
body() {
  cat <<JSON
{"spec": {"goal": "make the file",
 "model": {"provider": "script", "turns": [
   {"text": "making the file", "tool_calls": [{"name": "bash", "arguments": {"command": "$1"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 $RULES}}
JSON
}

# waiting JSON: creates a run and waits for its approval request; sets
# $id and $a.
waiting() {
  test "$(api "$op" POST /v1/runs -d "$1")" = 201 &&
  id=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $id)\" = waiting_approval" &&
  a=$(sql "select id from approvals where run_id = '$id'") &&
  test -n "$a"
}

FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test

test_expect_success 'serve; an operator and a viewer' '
  start_serve &&
  op=$(make_token ops-alice operator) && viewer=$(make_token watcher viewer) &&
  test -n "$op" && test -n "$viewer"
'

test_expect_success 'a viewer sees no decision button; an operator approves from the keyboard' '
  waiting "$(body "touch a")" &&
  dash approvals.mjs DASH_TOKEN="$op" DASH_VIEWER="$viewer" DASH_RUN="$id" DASH_APPROVAL="$a" &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select decided_by from approvals where id = '"'"'$a'"'"'")" = ops-alice
'

test_expect_success 'and the API refuses a viewer that tries anyway' '
  waiting "$(body "touch v")" &&
  test "$(api "$viewer" POST /v1/approvals/$a/approve -H "Content-Type: application/json" -d "{}")" = 403 &&
  test "$(api "$viewer" POST /v1/approvals/$a/reject -H "Content-Type: application/json" -d "{\"reason\": \"no\"}")" = 403 &&
  test "$(api "$op" POST /v1/approvals/$a/approve -H "Content-Type: application/json" -d "{}")" = 200
'

reason="the workspace must stay empty, list it instead"
test_expect_success 'a rejection typed on the keyboard reaches the model with its reason' '
  { echo "[" &&
    chat_completion 1 bash "\"{\\\"command\\\": \\\"touch b\\\"}\"" && echo , &&
    chat_completion 2 finish "\"{\\\"summary\\\": \\\"left it empty\\\"}\"" &&
    echo "]"; } >replies.json &&
  start_fake replies.json &&
  waiting "{\"spec\": {\"goal\": \"make the file\", \"tools\": [\"bash\", \"finish\"],
    \"model\": {\"provider\": \"openai\", \"name\": \"gpt-4o-mini\",
      \"base_url\": \"http://127.0.0.1:$PORT/v1\", \"api_key_env\": \"FAKE_KEY\"},
    $RULES}}" &&
  test "$(wc -l <requests.log)" = 1 &&
  dash reject.mjs DASH_TOKEN="$op" DASH_RUN="$id" DASH_APPROVAL="$a" DASH_REASON="$reason" &&
  test "$(status_of $id)" = succeeded &&
  test "$(wc -l <requests.log)" = 2 &&
  sed -n 2p requests.log | grep -qF "$reason" &&
  ! sed -n 1p requests.log | grep -qF "$reason" &&
  stop_fake
'

test_expect_success 'an edit refused in place, then fixed: the edited call is what ran' '
  waiting "$(body "touch c")" &&
  dash edit.mjs DASH_TOKEN="$op" DASH_RUN="$id" DASH_APPROVAL="$a" \
    DASH_BAD1="{\"cmd\": \"echo x > d\"}" DASH_BAD1_SAYS="has no argument .cmd." \
    DASH_BAD2="{\"command\": \"curl http://example.com\"}" DASH_BAD2_SAYS="no-curl" \
    DASH_GOOD="{\"command\": \"echo edited > d\"}" &&
  test "$(status_of $id)" = succeeded &&
  test "$(api "$op" GET /v1/approvals/$a)" = 200 &&
  test "$(body_field .state)" = edited &&
  test "$(body_field .approved_arguments.command)" = "echo edited > d" &&
  test "$(api "$op" GET /v1/runs/$id/diff)" = 200 &&
  grep -qx "+edited" .body && ! grep -q "b/c" .body
'

stop_serve
test_done
