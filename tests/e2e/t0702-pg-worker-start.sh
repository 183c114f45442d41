#!/bin/sh
# A worker started while PostgreSQL is down waits for it with backoff, a
# line per try saying why, as a running worker waits for a server that went
# away (issue 13, defect 8: it exited 4). A signal during the wait exits 0;
# a server that answers and refuses (no such database) still exits 4 at
# once. On a cluster of this test's own.
. "$(dirname "$0")/lib-test.sh"

own_pg_cluster
tries() { grep -c "waiting for the store to accept connections" "$1"; }

make_project
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo ran"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON

test_expect_success 'a worker started while PostgreSQL is down waits, then runs work' '
  cluster stop &&
  "$DURIN" worker --poll 50ms >w.log 2>&1 &
  w=$!
  bg_pids="$bg_pids $w"
  wait_for 30 "test \$(tries w.log) -ge 3" &&
  kill -0 $w &&
  grep -q "cannot reach store" w.log &&
  cluster restart &&
  id=$(durin submit s.json) &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded"; r=$?
  kill -TERM $w; wait $w; rc=$?
  cat w.log
  test $r = 0 && test $rc = 0 &&
  grep -q "store reached after" w.log
'

test_expect_success 'SIGTERM while it waits exits 0 at once' '
  cluster stop &&
  "$DURIN" worker --poll 50ms >w2.log 2>&1 &
  w=$!
  bg_pids="$bg_pids $w"
  wait_for 30 "test \$(tries w2.log) -ge 1" &&
  kill -TERM $w &&
  wait_for 3 "! kill -0 $w" &&
  wait $w; rc=$?
  cat w2.log
  test $rc = 0 && grep -q "stopped before the store answered" w2.log
'

test_expect_success 'a server that answers and refuses is not waited for: exit 4' '
  cluster restart &&
  DURIN_STORE="$url/no_such_db" test_must_fail_with 4 timeout 20 "$DURIN" worker >w3.log 2>&1;
  r=$?; cat w3.log
  test $r = 0 && test "$(tries w3.log)" = 0 && grep -q "no_such_db" w3.log
'

test_done
