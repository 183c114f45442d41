#!/bin/sh
# The approvals API of durin serve: a viewer lists what waits and sees
# what a reviewer needs (the shape of `durin approvals ID --json`); an
# operator approves (edited arguments checked as the CLI checks them),
# or rejects with a reason; the token's name is who decided; a decision
# is made once; another tenant learns nothing. GET /v1/runs/ID/diff is
# `durin diff` over HTTP.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

# body COMMAND [EXTRA]: a POST /v1/runs body whose spec makes one bash
# call of COMMAND (asked about when it starts with touch), then finishes.
# The run's workspace is an empty directory.
body() {
  cat <<JSON
{"spec": {"goal": "make the file", ${2-}
 "model": {"provider": "script", "turns": [
   {"text": "making the file", "tool_calls": [{"name": "bash", "arguments": {"command": "$1"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"rules": [
   {"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"},
   {"name": "no-curl", "tool": "bash", "command_prefix": "curl", "action": "deny"}]}}}
JSON
}

# post TOKEN PATH JSON: a POST with a JSON body; prints the status.
post() { api "$1" POST "$2" -H 'Content-Type: application/json' -d "$3"; }

# waiting COMMAND [EXTRA]: creates a run and waits for its approval
# request; sets $id (the run) and $a (its approval).
waiting() {
  test "$(post $op /v1/runs "$(body "$@")")" = 201 &&
  id=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $id)\" = waiting_approval" &&
  a=$(sql "select id from approvals where run_id = '$id'") &&
  test -n "$a"
}

test_expect_success 'serve with the sandbox; tokens of each role' '
  start_serve &&
  op=$(make_token ops-alice operator) &&
  viewer=$(make_token watcher viewer) &&
  acme=$(make_token acme-viewer viewer acme) &&
  acme_op=$(make_token acme-ops operator acme) &&
  test -n "$op" && test -n "$viewer" && test -n "$acme" && test -n "$acme_op"
'

test_expect_success 'a viewer lists the waiting call and sees what to decide' '
  waiting "touch a; echo approved > a" &&
  test "$(api $viewer GET /v1/approvals)" = 200 &&
  test "$(body_field ".approvals[] | select(.run == \"$id\") | .id")" = "$a" &&
  test "$(body_field ".approvals[] | select(.id == \"$a\") | .state")" = pending &&
  test "$(body_field ".approvals[] | select(.id == \"$a\") | .run_name")" = "$(sql "select name from runs where id = '"'"'$id'"'"'")" &&
  test "$(api $viewer GET "/v1/approvals?run=$id&state=all")" = 200 &&
  test "$(body_field ".approvals | length")" = 1 &&
  test "$(api $viewer GET /v1/approvals/$a)" = 200 &&
  test "$(body_field .goal)" = "make the file" &&
  test "$(body_field .reason)" = "making the file" &&
  test "$(body_field .rule)" = spec:ask-touch &&
  test "$(body_field .tool)" = bash &&
  test "$(body_field .arguments.command)" = "touch a; echo approved > a" &&
  test "$(body_field .call_hash)" = "$(sql "select call_hash from approvals where id = '"'"'$a'"'"'")" &&
  test "$(body_field ".expires_in_ms > 0")" = true &&
  test "$(body_field .run_status)" = waiting_approval &&
  test "$(body_field .spent.steps)" -ge 0 &&
  test "$(body_field .diff)" = "" &&
  test "$(body_field .state)" = pending
'

test_expect_success 'the API review is `durin approvals ID --json`' '
  api $viewer GET /v1/approvals/$a >/dev/null &&
  jq -S "del(.expires_in_ms)" .body >api.json &&
  durin approvals --json $a >cli.raw &&
  jq -S "del(.expires_in_ms)" cli.raw >cli.json &&
  diff -u api.json cli.json
'

test_expect_success 'bad queries are 400' '
  test "$(api $viewer GET "/v1/approvals?state=done")" = 400 &&
  test "$(body_field .error.field)" = state
'

test_expect_success 'a viewer cannot decide' '
  test "$(post $viewer /v1/approvals/$a/approve "{}")" = 403 &&
  test "$(post $viewer /v1/approvals/$a/reject "{\"reason\": \"no\"}")" = 403
'

test_expect_success 'another tenant sees nothing of it' '
  test "$(api $acme GET /v1/approvals/$a)" = 404 &&
  test "$(api $acme GET "/v1/approvals?state=all")" = 200 &&
  test "$(body_field ".approvals | length")" = 0 &&
  test "$(post $acme_op /v1/approvals/$a/approve "{}")" = 404 &&
  test "$(body_field .error.code)" = not_found &&
  test "$(api $acme GET /v1/runs/$id/diff)" = 404 &&
  test "$(sql "select state from approvals where id = '"'"'$a'"'"'")" = pending
'

test_expect_success 'an edit that does not fit is 422, and nothing is decided' '
  test "$(post $op /v1/approvals/$a/approve "{\"args\": {\"cmd\": \"x\"}}")" = 422 &&
  test "$(body_field .error.field)" = args &&
  body_field .error.message | grep -q "has no argument .cmd." &&
  body_field .error.message | grep -q "command" &&
  test "$(post $op /v1/approvals/$a/approve "{\"args\": {\"command\": \"curl http://x\"}}")" = 422 &&
  test "$(body_field .error.code)" = policy_denied &&
  body_field .error.message | grep -q "no-curl" &&
  test "$(post $op /v1/approvals/$a/approve "{\"comment\": 1}")" = 400 &&
  test "$(post $op /v1/approvals/$a/approve "{\"coment\": \"x\"}")" = 400 &&
  test "$(sql "select state from approvals where id = '"'"'$a'"'"'")" = pending
'

test_expect_success 'an operator approves: the run goes on now, the token decided' '
  test "$(post $op /v1/approvals/$a/approve "{\"comment\": \"fine\"}")" = 200 &&
  test "$(body_field .state)" = approved &&
  test "$(body_field .decided_by)" = ops-alice &&
  test "$(body_field .comment)" = fine &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded" &&
  test "$(sql "select decided_by from approvals where id = '"'"'$a'"'"'")" = ops-alice &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'approval_decided'"'"'" | grep -q ops-alice
'

test_expect_success 'a second decision is 409 and says what it is' '
  test "$(post $op /v1/approvals/$a/reject "{\"reason\": \"too late\"}")" = 409 &&
  test "$(body_field .error.code)" = already_decided &&
  body_field .error.message | grep -q "already approved" &&
  test "$(post $op /v1/approvals/$a/approve "{\"args\": {\"cmd\": 1}}")" = 409 &&
  test "$(sql "select state from approvals where id = '"'"'$a'"'"'")" = approved
'

test_expect_success 'the run diff shows what the approved call made' '
  test "$(api $viewer GET /v1/runs/$id/diff)" = 200 &&
  grep -qx "diff --git a/a b/a" .body &&
  grep -qx "+approved" .body &&
  durin diff $id >cli.diff &&
  cmp .body cli.diff &&
  test "$(api $viewer GET "/v1/runs/$id/diff?stat=1")" = 200 &&
  grep -q "^ a | 1 +$" .body &&
  grep -q "1 file changed, 1 insertion(+)" .body &&
  curl -s -o /dev/null -w "%{content_type}" -H "Authorization: Bearer $viewer" \
    "$API/v1/runs/$id/diff" | grep -q "^text/x-diff" &&
  test "$(api $viewer GET "/v1/runs/$id/diff?stat=2")" = 400 &&
  test "$(api $viewer GET /v1/runs/rnope/diff)" = 404
'

test_expect_success 'reject needs a reason; with one the agent is told it' '
  waiting "touch b" &&
  test "$(post $op /v1/approvals/$a/reject "{}")" = 400 &&
  test "$(body_field .error.field)" = reason &&
  test "$(post $op /v1/approvals/$a/reject "{\"reason\": \"\"}")" = 400 &&
  test "$(post $op /v1/approvals/$a/reject "{\"reason\": \"keep it empty\"}")" = 200 &&
  test "$(body_field .state)" = rejected &&
  test "$(body_field .decided_by)" = ops-alice &&
  test "$(body_field .comment)" = "keep it empty" &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded" &&
  sql "select json_extract(data, '"'"'$.output'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"'" |
    grep -q "rejected by ops-alice: keep it empty" &&
  test "$(post $op /v1/approvals/$a/approve "{}")" = 409 &&
  test "$(body_field .error.code)" = already_decided &&
  body_field .error.message | grep -q "already rejected" &&
  test "$(api $viewer GET /v1/runs/$id/diff)" = 200 && test ! -s .body
'

test_expect_success 'an edit that fits runs instead of the call' '
  waiting "touch c" &&
  test "$(post $op /v1/approvals/$a/approve "{\"args\": {\"command\": \"echo edited > d\"}}")" = 200 &&
  test "$(body_field .state)" = edited &&
  test "$(body_field .approved_arguments.command)" = "echo edited > d" &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded" &&
  test "$(api $viewer GET /v1/runs/$id/diff)" = 200 &&
  grep -qx "+edited" .body && ! grep -q "b/c" .body
'

test_expect_success 'a request past its deadline is 409 expired' '
  waiting "touch e" "\"approvals\": {\"timeout_s\": 1}," &&
  sleep 1.2 &&
  test "$(post $op /v1/approvals/$a/approve "{}")" = 409 &&
  test "$(body_field .error.code)" = expired &&
  body_field .error.message | grep -q expired &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded"
'

# A template run's diff mounts views of the workspace and its start; the
# server makes it in a `durin diff` of its own, so none stays mounted in
# serve's namespace, where the worker mounts that workspace for its calls.
if [ "$(id -u)" = 0 ]; then
  test_expect_success 'a template run diff: only the run changes, nothing left mounted' '
    mkdir -p tmpl/deps && echo "lib v1" >tmpl/deps/lib.txt &&
    printf "{\"template_roots\": [\"%s\"]}" "$TRASH/tmpl" >policy.json &&
    stop_serve && start_serve --spec-policy policy.json &&
    test "$(post $op /v1/runs "{\"spec\": {\"goal\": \"g\",
      \"sandbox\": {\"template\": \"$TRASH/tmpl\"},
      \"model\": {\"provider\": \"script\", \"turns\": [
        {\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"echo changed > deps/lib.txt\"}}]},
        {\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"d\"}}]}]}}}")" = 201 &&
    id=$(body_field .id) &&
    wait_for 60 "test \"\$(status_of $id)\" = succeeded" &&
    test "$(api $viewer GET /v1/runs/$id/diff)" = 200 &&
    grep -qx "+changed" .body && grep -qx -- "-lib v1" .body &&
    durin diff $id >cli.diff && cmp .body cli.diff &&
    test "$(api $viewer GET "/v1/runs/$id/diff?stat=1")" = 200 &&
    grep -q "^ deps/lib.txt | 2 +-$" .body &&
    ! grep -q "$TRASH" /proc/$SERVE_PID/mountinfo
  '
else
  test_skip 'a template run diff: only the run changes, nothing left mounted' \
    'template workspaces mount overlayfs: root only'
fi

stop_serve
test_done
