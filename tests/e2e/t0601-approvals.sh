#!/bin/sh
# The policy runs before every tool call and is in the log; "ask" parks the
# run (no lease, no worker) until a person approves, rejects or edits the
# call, or the request expires. Decisions survive killed workers, are
# picked up by whichever worker runs later, and a call only ever runs with
# the arguments that were approved.
. "$(dirname "$0")/lib-test.sh"

make_project

# spec FILE COMMAND [EXTRA]: one bash call of COMMAND (asked about by the
# policy when it starts with rm or touch), then finish.
spec() {
  cat >"$TRASH/$1" <<JSON
{"goal": "tidy the project", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"text": "removing stale files", "tool_calls": [{"name": "bash", "arguments": {"command": "$2"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"rules": [
   {"name": "ask-rm", "tool": "bash", "command_prefix": "rm", "action": "ask"},
   {"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"},
   {"name": "no-curl", "tool": "bash", "command_prefix": "curl", "action": "deny"}]}
 ${3-}}
JSON
}

ws_of() { col_of "$1" workspace; }
approval_of() { sql "select id from approvals where run_id = '$1' order by requested_ms desc limit 1"; }
approval_state() { sql "select state from approvals where id = '$1'"; }
result_of() {
  sql "select json_extract(data, '\$.output') from events where run_id = '$1' and type = 'tool_result' order by seq limit 1"
}
# Submits FILE with `durin run --no-wait`; the run must stop waiting.
run_waiting() {
  test_must_fail_with 2 durin run --no-wait "$1" >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = waiting_approval
}

test_expect_success 'every call has a policy decision in the log, with its rule' '
  spec s.json "echo hello" &&
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  sql "select json_extract(data, '"'"'$.decision'"'"') || '"'"' '"'"' || json_extract(data, '"'"'$.rule'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'policy'"'"'" >p &&
  grep -qx "allow default" p
'

test_expect_success 'ask: the run waits holding no lease; approve runs the call' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  grep -q "waiting for approval" err.txt &&
  test -z "$(col_of $id lease_owner)" &&
  test ! -e "$(ws_of $id)/marker" &&
  durin approvals >list && grep -q "$id" list && grep -q "rm -f nothing" list &&
  a=$(approval_of $id) &&
  durin approvals $a >view &&
  grep -q "tidy the project" view && grep -q "removing stale files" view &&
  grep -q "ask-rm" view && grep -q "workspace diff so far" view &&
  DURIN_REVIEWER=alice durin approve $a --comment "fine" >d &&
  test "$(status_of $id)" = running &&
  test "$(approval_state $a)" = approved &&
  durin resume $id >r.txt &&
  test "$(status_of $id)" = succeeded &&
  test "$(cat "$(ws_of $id)/marker")" = ran &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'approval_decided'"'"'" | grep -q alice &&
  test "$(count_events approval_requested)" -ge 1 &&
  events_contiguous $id
'

test_expect_success 'a decision cannot be made twice' '
  a=$(sql "select id from approvals where state = '"'"'approved'"'"' limit 1") &&
  test_must_fail_with 2 durin reject $a --reason no 2>e &&
  grep -q "already approved" e
'

test_expect_success 'reject: the call does not run and the model gets the reason' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  test_must_fail_with 64 durin reject $a 2>e &&
  DURIN_REVIEWER=bob durin reject $a --reason "keep those files" &&
  durin resume $id >r.txt &&
  test "$(status_of $id)" = succeeded &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id >res &&
  grep -q "rejected by bob: keep those files" res
'

test_expect_success 'edit: the call runs with the edited arguments, checked first' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  test_must_fail_with 64 durin approve $a --args "{\"cmd\": \"x\"}" 2>e &&
  grep -q "its arguments: command" e &&
  test_must_fail_with 64 durin approve $a --args "{\"command\": \"curl http://x\"}" 2>e &&
  grep -q "denies" e &&
  test "$(approval_state $a)" = pending &&
  durin approve $a --args "{\"command\": \"echo edited > marker\"}" &&
  test "$(approval_state $a)" = edited &&
  durin resume $id >r.txt &&
  test "$(cat "$(ws_of $id)/marker")" = edited &&
  result_of $id >res && grep -q "a reviewer edited this call" res &&
  sql "select args from ledger where run_id = '"'"'$id'"'"'" >/dev/null
'

test_expect_success 'arguments changed in the store after approval are refused' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  durin approve $a &&
  sql "update approvals set args = '"'"'{\"command\":\"echo evil > marker\"}'"'"' where id = '"'"'$a'"'"'" &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "refused: the approved arguments were changed" &&
  test "$(count_events approval_refused)" = 1
'

test_expect_success 'a call changed in the stored step after approval is refused' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  durin approve $a &&
  sql "update pending set response = replace(response, '"'"'echo ran'"'"', '"'"'echo evil'"'"') where run_id = '"'"'$id'"'"'" &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "refused: the call to run is not the call that was approved"
'

test_expect_success 'expired: approving late is refused and the model is told' '
  spec s.json "echo ran > marker; rm -f nothing" "" &&
  sed "s/\"policy\"/\"approvals\": {\"timeout_s\": 1}, \"policy\"/" s.json >e.json &&
  run_waiting e.json &&
  a=$(approval_of $id) &&
  sleep 1.2 &&
  test_must_fail_with 2 durin approve $a 2>e &&
  grep -q "expired" e &&
  test "$(approval_state $a)" = expired &&
  test "$(status_of $id)" = running &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "expired without a decision" &&
  test "$(status_of $id)" = succeeded
'

test_expect_success 'with no worker, a request past its deadline lists as expired' '
  sed "s/\"timeout_s\": 1/\"timeout_s\": 3/" e.json >e3.json &&
  run_waiting e3.json &&
  a=$(approval_of $id) &&
  durin approvals >list && grep -q "^$a .* pending " list &&
  wait_for 10 "durin approvals | grep -q \"^$a .* expired \"" &&
  durin approvals >list &&
  grep -q "^$a .* expired .* ago " list && ! grep -q "^$a .* pending " list &&
  durin approvals --json >j &&
  grep -q "\"id\":\"$a\".*\"state\":\"expired\"" j &&
  durin approvals $a >view &&
  grep -q "^approval  $a  expired (deadline passed" view &&
  ! grep -q "^decide:" view &&
  test "$(approval_state $a)" = pending &&
  test_must_fail_with 2 durin approve $a 2>e && grep -q "expired" e
'

test_expect_success 'without USER the reviewer is the account, not "uid N"' '
  spec r.json "rm -f nothing" &&
  run_waiting r.json &&
  a=$(approval_of $id) &&
  env -u USER -u DURIN_REVIEWER "$DURIN" approve $a >d &&
  test "$(sql "select decided_by from approvals where id = '"'"'$a'"'"'")" = "$(id -un)"
'

test_expect_success 'expired with on_expiry needs_human: the run stops for a person' '
  sed "s/\"policy\"/\"approvals\": {\"timeout_s\": 1, \"on_expiry\": \"needs_human\"}, \"policy\"/" s.json >h.json &&
  run_waiting h.json &&
  sleep 1.2 || return 1
  "$DURIN" serve --poll 50ms >w.log 2>&1 &
  w=$!
  wait_for 20 "test \$(status_of $id) = needs_human"; r=$?
  kill $w; wait $w
  test $r = 0 && grep -q "expired" w.log &&
  test ! -e "$(ws_of $id)/marker"
'

test_expect_success 'the same call rejected twice ends the run as needs_human' '
  cat >loop.json <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "rm -rf src"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "rm -rf src"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "rm -rf src"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "x"}}]}]},
 "policy": {"tools": {"bash": "ask"}}}
JSON
  run_waiting loop.json &&
  durin reject $(approval_of $id) --reason "no" &&
  test_must_fail_with 2 durin resume --no-wait $id >r.txt &&
  test "$(status_of $id)" = waiting_approval &&
  durin reject $(approval_of $id) --reason "still no" &&
  test_must_fail_with 2 durin resume --no-wait $id >r.txt &&
  test "$(status_of $id)" = needs_human &&
  col_of $id reason | grep -q "max_rejections" &&
  test -d "$(ws_of $id)/src"
'

test_expect_success 'a waiting run holds no worker; a SIGKILLed worker loses nothing' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  spec free.json "echo free" || return 1
  "$DURIN" worker --max-runs 1 --poll 50ms --lease-ttl 2s >w1.log 2>&1 &
  w=$!
  id=$(durin submit s.json) &&
  wait_for 20 "test \$(status_of $id) = waiting_approval" &&
  f=$(durin submit free.json) &&
  wait_for 20 "test \$(status_of $f) = succeeded"; r=$?
  kill -9 $w; wait $w 2>/dev/null
  test $r = 0 &&
  test "$(status_of $id)" = waiting_approval &&
  test "$(sql "select count(*) from approvals where run_id = '"'"'$id'"'"' and state = '"'"'pending'"'"'")" = 1 &&
  durin approve $(approval_of $id) || return 1
  "$DURIN" worker --poll 50ms >w2.log 2>&1 &
  w=$!
  wait_for 20 "test \$(status_of $id) = succeeded"; r=$?
  kill $w; wait $w
  test $r = 0 && test "$(cat "$(ws_of $id)/marker")" = ran
'

test_expect_success 'a decision made while no worker runs is picked up later' '
  "$DURIN" worker --poll 50ms >w3.log 2>&1 &
  w=$!
  id=$(durin submit s.json) &&
  wait_for 20 "test \$(status_of $id) = waiting_approval"; r=$?
  kill $w; wait $w
  test $r = 0 &&
  durin approve $(approval_of $id) || return 1
  "$DURIN" serve --poll 50ms >w4.log 2>&1 &
  w=$!
  wait_for 20 "test \$(status_of $id) = succeeded"; r=$?
  kill $w; wait $w
  test $r = 0 && test -e "$(ws_of $id)/marker"
'

test_expect_success 'durin run waits for the decision and goes on in place' '
  spec s.json "echo ran > marker; touch x" || return 1
  "$DURIN" run s.json >out.txt 2>err.txt &
  p=$!
  wait_for 20 "test -n \"\$(run_id_of out.txt)\" && test \$(status_of \$(run_id_of out.txt)) = waiting_approval" &&
  id=$(run_id_of out.txt) &&
  durin approve $(approval_of $id); r=$?
  wait $p; rc=$?
  test $r = 0 && test $rc = 0 && test "$(status_of $id)" = succeeded &&
  grep -q "waiting here for the decision" err.txt
'

test_expect_success 'a foreground run keeps the deadline without a serve' '
  spec s.json "echo ran > marker; touch x" "" &&
  sed "s/\"policy\"/\"approvals\": {\"timeout_s\": 1}, \"policy\"/" s.json >e.json &&
  timeout 30 "$DURIN" run e.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "expired without a decision"
'

test_expect_success 'cancelling a waiting run cancels its approval' '
  spec s.json "rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  durin cancel $id &&
  test "$(status_of $id)" = cancelled &&
  test "$(approval_state $a)" = cancelled
'

test_expect_success 'command tricks: sh -c, env and quoting reach the deny rule' '
  spec t.json "env X=1 sh -c \\\"c'"'"''"'"'url http://example.com\\\"" &&
  durin run t.json >out.txt &&
  id=$(run_id_of out.txt) &&
  result_of $id | grep -q "denied by policy (spec no-curl)"
'

test_expect_success 'path tricks: ../, absolute paths and links out are denied' '
  ln -s /etc project/etc-link &&
  cat >paths.json <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [
     {"name": "read_file", "arguments": {"path": "src/../../../etc/passwd"}},
     {"name": "read_file", "arguments": {"path": "/etc/passwd"}},
     {"name": "write_file", "arguments": {"path": "etc-link/durin-test", "content": "x"}},
     {"name": "write_file", "arguments": {"path": "src/../notes.txt", "content": "x"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "x"}}]}]},
 "policy": {"rules": [{"name": "src-only", "tool": "write_file", "path": "src/**", "action": "allow"},
                      {"name": "other-writes", "tool": "write_file", "action": "deny"}]}}
JSON
  durin run paths.json >out.txt &&
  id=$(run_id_of out.txt) &&
  sql "select json_extract(data, '"'"'$.decision'"'"') || '"'"' '"'"' || json_extract(data, '"'"'$.rule'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'policy'"'"' order by seq" >p &&
  test "$(sed -n 1p p)" = "deny outside the workspace" &&
  test "$(sed -n 2p p)" = "deny outside the workspace" &&
  test "$(sed -n 3p p)" = "deny outside the workspace" &&
  test "$(sed -n 4p p)" = "deny other-writes" &&
  test ! -e /etc/durin-test
'

test_expect_success 'a server policy (--policy) tightens what the spec allows' '
  spec s.json "echo hello" &&
  echo "{\"rules\": [{\"name\": \"no-echo\", \"tool\": \"bash\", \"command_prefix\": \"echo\", \"action\": \"deny\"}]}" >server.json &&
  durin run --policy server.json s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  result_of $id | grep -q "denied by policy (server no-echo)" &&
  echo "{\"rules\": [" >bad.json &&
  test_must_fail_with 65 durin run --policy bad.json s.json 2>e &&
  grep -q "bad.json" e
'

test_done
