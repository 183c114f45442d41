#!/bin/sh
# With a master key, a decision that lets a call run is signed (an
# HMAC under a key derived from the master key) and a worker runs only
# signed decisions: whoever can write the store cannot make a call
# approved, nor move a signature to another approval, nor change who
# decided. A decision made without the key, or a signed one met by a
# worker without it, is refused with what to do.
. "$(dirname "$0")/lib-test.sh"

make_project

unset DURIN_MASTER_KEY DURIN_MASTER_KEY_FILE CREDENTIALS_DIRECTORY XDG_CONFIG_HOME
export HOME="$TRASH/home"
KEY=$(head -c 32 /dev/urandom | base64)
OTHER=$(head -c 32 /dev/urandom | base64)

spec() { # spec FILE COMMAND
  cat >"$TRASH/$1" <<JSON
{"goal": "tidy the project", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"text": "removing stale files", "tool_calls": [{"name": "bash", "arguments": {"command": "$2"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"rules": [
   {"name": "ask-rm", "tool": "bash", "command_prefix": "rm", "action": "ask"}]}}
JSON
}

ws_of() { col_of "$1" workspace; }
approval_of() { sql "select id from approvals where run_id = '$1' order by requested_ms desc limit 1"; }
result_of() {
  sql "select json_extract(data, '\$.output') from events where run_id = '$1' and type = 'tool_result' order by seq limit 1"
}
if [ "${DURIN_TEST_STORE:-}" = pg ]; then
  result_of() {
    sql "select data::json->>'output' from events where run_id = '$1' and type = 'tool_result' order by seq limit 1"
  }
fi
run_waiting() {
  test_must_fail_with 2 durin run --no-wait "$1" >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = waiting_approval
}
# What a decision does to the store, done by hand: no key, no signature.
forge() { # forge APPROVAL HASH
  sql "update approvals set state = 'approved', decided_by = 'mallory', decided_ms = 1, args_hash = '$2' where id = '$1'" &&
  sql "update runs set status = 'running', reason = '' where id = '$id'"
}
sha() { printf "%s" "$1" | sha256sum | cut -d" " -f1; }

test_expect_success 'with a master key, an approval is signed and runs' '
  export DURIN_MASTER_KEY="$KEY" &&
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  DURIN_REVIEWER=alice durin approve $a &&
  sql "select args_hash from approvals where id = '"'"'$a'"'"'" >h &&
  grep -q "^hmac-sha256:[0-9a-f]\{64\}$" h &&
  durin resume $id >r.txt &&
  test "$(status_of $id)" = succeeded &&
  test "$(cat "$(ws_of $id)/marker")" = ran &&
  cp h signed_hash && echo $a >signed_id
'

test_expect_success 'a decision written into the store without the key does not run' '
  spec s.json "echo forged > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  args=$(sql "select args from approvals where id = '"'"'$a'"'"'") &&
  forge $a "$(sha "$args")" &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id >res &&
  grep -q "refused: the decision is not signed with this runtime" res
'

test_expect_success 'a signature moved from another approval does not hold' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  forge $a "$(cat signed_hash)" &&
  sql "update approvals set decided_by = '"'"'alice'"'"' where id = '"'"'$a'"'"'" &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "signature does not hold"
'

test_expect_success 'a signed decision moved whole to another run does not hold there' '
  spec s.json "echo moved > marker; rm -f nothing" &&
  run_waiting s.json && first=$id && a1=$(approval_of $first) &&
  DURIN_REVIEWER=alice durin approve $a1 &&
  run_waiting s.json && second=$id && a2=$(approval_of $second) &&
  sql "delete from approvals where id = '"'"'$a2'"'"'" &&
  sql "update approvals set id = '"'"'$a2'"'"', run_id = '"'"'$second'"'"' where id = '"'"'$a1'"'"'" &&
  sql "update runs set status = '"'"'running'"'"', reason = '"'"''"'"' where id = '"'"'$second'"'"'" &&
  durin resume $second >r.txt &&
  test ! -e "$(ws_of $second)/marker" &&
  result_of $second | grep -q "signature does not hold"
'

test_expect_success 'who decided cannot be changed afterwards' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  DURIN_REVIEWER=alice durin approve $a &&
  sql "update approvals set decided_by = '"'"'bob'"'"' where id = '"'"'$a'"'"'" &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "signature does not hold"
'

test_expect_success 'a signature under another master key does not hold' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  DURIN_MASTER_KEY="$OTHER" durin approve $a &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "signature does not hold"
'

test_expect_success 'an edited approval is signed over the edited arguments' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  durin approve $a --args "{\"command\": \"echo edited > marker\"}" &&
  sql "update approvals set args = '"'"'{\"command\":\"echo evil > marker\"}'"'"' where id = '"'"'$a'"'"'" &&
  durin resume $id >r.txt &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "signature does not hold"
'

test_expect_success 'a signed decision and a worker without the key: refused, saying why' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  durin approve $a &&
  (unset DURIN_MASTER_KEY && durin resume $id >r.txt) &&
  test ! -e "$(ws_of $id)/marker" &&
  result_of $id | grep -q "has no master key to check it"
'

test_expect_success 'a key that does not load refuses the decision and records nothing' '
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  DURIN_MASTER_KEY=not-a-key test_must_fail durin approve $a 2>e &&
  grep -q "the decision was not recorded" e &&
  test "$(sql "select state from approvals where id = '"'"'$a'"'"'")" = pending
'

test_expect_success 'without any master key, decisions are unsigned as before' '
  unset DURIN_MASTER_KEY &&
  spec s.json "echo ran > marker; rm -f nothing" &&
  run_waiting s.json &&
  a=$(approval_of $id) &&
  durin approve $a &&
  sql "select args_hash from approvals where id = '"'"'$a'"'"'" | grep -q "^[0-9a-f]\{64\}$" &&
  durin resume $id >r.txt &&
  test "$(cat "$(ws_of $id)/marker")" = ran
'

test_done
