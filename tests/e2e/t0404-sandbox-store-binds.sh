#!/bin/sh
# A spec's sandbox.ro / sandbox.rw binds can never expose the store or the
# data directory (issue 13, defect 6: "rw": [".durin"] let the agent read
# the ledger and plant a file on the host as root). Equal, containing and
# contained binds are refused, also through a symlink; the call fails
# naming the field and saying why, and nothing reaches the host.
. "$(dirname "$0")/lib-test.sh"

if ! "$DURIN" sandbox -- true 2>"$TRASH/why"; then
  test_skip_all "this host cannot build the sandbox: $(cat "$TRASH/why")"
fi

make_project
mkdir -p "$TRASH/shared"

# $1 as a JSON string.
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# A run whose one bash call runs $1, with the sandbox object $2.
spec() {
  cat >"$TRASH/s.json" <<JSON
{"goal": "probe", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": $(json_str "$1")}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "sandbox": $2}
JSON
}

result_of() {
  sql "select json_extract(data, '\$.output') from events where run_id = '$1' and type = 'tool_result' order by seq limit 1"
}

# Submits s.json and waits for the worker to finish it; sets $id.
work() {
  id=$(durin submit s.json) &&
    wait_for 60 "test \"\$(status_of $id)\" = succeeded" &&
    result_of $id >r
}

# Submits s.json and waits for the worker to refuse it: the run fails
# before any call with the reason (or, when a bind changed under a running
# run, the call fails with it). Sets $id; the words go to r.
refused() {
  id=$(durin submit s.json) &&
    wait_for 60 "test \"\$(status_of $id)\" = failed || test \"\$(status_of $id)\" = succeeded" &&
    { col_of $id reason; result_of $id; } >r
}

# The agent tries to read the store and plant a file beside it.
PROBE="ls $TRASH/store; echo planted > $TRASH/store/planted; echo planted > $TRASH/store/runs/planted; echo reached"
nothing_planted() {
  test ! -e "$TRASH/store/planted" && test ! -e "$TRASH/store/runs/planted" &&
    ! grep -q reached r && ! grep -q durin.db r
}

"$DURIN" worker --max-runs 1 --poll 50ms >"$TRASH/wlog" 2>&1 &
wpid=$!
bg_pids="$bg_pids $wpid"

test_expect_success 'a bind outside the store and the data directory is granted' '
  spec "echo yes > $TRASH/shared/y" "{\"rw\": [\"$TRASH/shared\"]}" &&
  work && test "$(cat "$TRASH/shared/y")" = yes
'

test_expect_success 'rw of the store directory is refused, naming the field' '
  spec "$PROBE" "{\"rw\": [\"store\"]}" &&
  refused && cat r &&
  grep -q "field .sandbox.rw\[0\]." r && grep -q "may never expose the store" r &&
  nothing_planted
'

test_expect_success 'a bind that contains the store is refused' '
  spec "$PROBE" "{\"ro\": [\"$TRASH/project\", \"$TRASH\"]}" &&
  refused && cat r &&
  grep -q "field .sandbox.ro\[1\]..*contains" r && nothing_planted
'

test_expect_success 'a bind inside the data directory is refused' '
  spec "$PROBE" "{\"rw\": [\"$TRASH/store/runs\"]}" &&
  refused && cat r &&
  grep -q "field .sandbox.rw\[0\]." r && grep -q "may never expose" r &&
  nothing_planted
'

test_expect_success 'a symlink to the store is resolved and refused' '
  ln -s "$TRASH/store" "$TRASH/innocent" &&
  spec "$PROBE; ls $TRASH/innocent" "{\"rw\": [\"$TRASH/innocent\"]}" &&
  refused && cat r &&
  grep -q "field .sandbox.rw\[0\]." r && nothing_planted
'

test_expect_success 'a bind that becomes a symlink to the store after submit is refused at the call' '
  mkdir -p "$TRASH/later" &&
  spec "$PROBE" "{\"rw\": [\"$TRASH/later\"]}" &&
  kill -STOP $wpid &&
  id=$(durin submit s.json) &&
  rmdir "$TRASH/later" && ln -s "$TRASH/store" "$TRASH/later" &&
  kill -CONT $wpid &&
  wait_for 60 "test \"\$(status_of $id)\" = failed" &&
  { col_of $id reason; result_of $id; } >r && cat r &&
  grep -q "may never expose" r && nothing_planted
'

test_expect_success 'durin run refuses such a bind too, before any call' '
  spec "$PROBE" "{\"rw\": [\"store\"]}" &&
  test_must_fail_with 1 durin run s.json >out 2>&1 &&
  cat out &&
  grep -q "may never expose the store" out && {
    result_of "$(run_id_of out)" >r; nothing_planted; }
'

kill -TERM $wpid 2>/dev/null
wait $wpid 2>/dev/null
test_done
