#!/bin/sh
# The dashboard controls a live run in a real browser (see
# tests/e2e/lib-dashboard.sh): "Cancel run" during a `sleep 300` tool
# call ends the run cancelled at once; the run view's event stream
# reconnects after a serve restart on the same port and shows what was
# committed while no serve ran, with no gap and nothing twice; the
# Resume choice of a run that stopped for a person survives the refreshes
# live events bring, and is the one sent.
. "$(dirname "$0")/lib-test.sh"
. "$(dirname "$0")/lib-dashboard.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

test_expect_success 'serve, and an operator' '
  start_serve --lease-ttl 2s &&
  op=$(make_token ops-alice operator) && test -n "$op"
'

test_expect_success '"Cancel run" during a sleep 300 call: cancelled at once' '
  test "$(api "$op" POST /v1/runs -d "{\"spec\": {\"goal\": \"wait\",
    \"model\": {\"provider\": \"script\", \"turns\": [
      {\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"sleep 300 # t0810-cancel\"}}]},
      {\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"done\"}}]}]}}}")" = 201 &&
  id=$(body_field .id) &&
  wait_for 60 "in_tool $id" &&
  dash cancel.mjs DASH_TOKEN="$op" DASH_RUN="$id" &&
  test "$(status_of $id)" = cancelled &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'run_finished'"'"'")" = 1 &&
  events_contiguous "$id"
'

test_expect_success "the run view's stream across a serve restart: no gap, nothing twice" '
  test "$(api "$op" POST /v1/runs -d "{\"spec\": {\"goal\": \"make the file\",
    \"model\": {\"provider\": \"script\", \"turns\": [
      {\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"echo before\"}}]},
      {\"text\": \"making the file\", \"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"touch a\"}}]},
      {\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"echo after\"}}]},
      {\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"done\"}}]}]},
    \"policy\": {\"rules\": [{\"name\": \"ask-touch\", \"tool\": \"bash\", \"command_prefix\": \"touch\", \"action\": \"ask\"}]}}}")" = 201 &&
  id=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $id)\" = waiting_approval" &&
  a=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  port=${API_DIRECT##*:} &&
  dash_bg restart.out restart.mjs DASH_TOKEN="$op" DASH_RUN="$id" &&
  at restart &&
  stop_serve &&
  down=$(sql "select last_seq from runs where id = '"'"'$id'"'"'") &&
  durin approve "$a" &&
  test "$(sql "select last_seq from runs where id = '"'"'$id'"'"'")" -gt "$down" &&
  start_serve_on "$port" --lease-ttl 2s &&
  test "${API_DIRECT##*:}" = "$port" &&
  go restart &&
  dash_wait &&
  test "$(status_of $id)" = succeeded && events_contiguous "$id"
'

test_expect_success 'a needs_human run: the Resume choice survives refreshes and is the one sent' '
  test "$(api "$op" POST /v1/runs -d "{\"spec\": {\"goal\": \"stop for a person\",
    \"model\": {\"provider\": \"script\", \"turns\": [
      {\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"touch gate\"}}]},
      {\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"done\"}}]}]},
    \"approvals\": {\"timeout_s\": 1, \"on_expiry\": \"needs_human\"},
    \"policy\": {\"rules\": [{\"name\": \"ask-touch\", \"tool\": \"bash\", \"command_prefix\": \"touch\", \"action\": \"ask\"}]}}}")" = 201 &&
  id=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $id)\" = needs_human" &&
  dash resume.mjs DASH_TOKEN="$op" DASH_RUN="$id" &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded"
'

stop_serve
test_done
