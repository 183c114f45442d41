#!/bin/sh
# Cancellation through a worker: `durin cancel` reaches the worker holding
# the run, kills the tool's whole process tree (or drops the in-flight
# model request), and the run ends cancelled with a final event. The time
# from cancel to the cancelled status is printed (never asserted).
. "$(dirname "$0")/lib-test.sh"

make_project
# The tool starts a tree of sleeps with an argument nothing else uses, and
# says when they are all up; the host then looks for that argument in
# every process's command line (the tool's pids are its own namespace's).
M=30017
mkdir -p "$TRASH/log"
P="$TRASH/log/started"
cat >"$TRASH/tool.json" <<JSON
{"goal": "g", "workspace": "project", "sandbox": {"rw": ["$TRASH/log"]},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep $M & echo a >> $P; (sleep $M & echo b >> $P; wait) & sleep $M"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "never"}}]}]}}
JSON

export FAKE_KEY=sk-test
FAKE_KEY_VALUE=sk-test

"$DURIN" worker --poll 50ms >"$TRASH/w.log" 2>&1 &
w=$!
bg_pids="$bg_pids $w"

ms() { date +%s%3N; }
marked() { count_cmdline "sleep $M"; }
finished_status() {
  sql "select json_extract(data, '\$.status') from events where run_id = '$1' and type = 'run_finished'"
}

test_expect_success 'cancel during a tool kills its process tree' '
  : >"$P"
  id=$(durin submit tool.json) || return 1
  wait_for 20 "in_tool $id && test \$(wc -l <$P) = 2 && test \$(marked) = 3" || return 1
  t0=$(ms)
  durin cancel $id || return 1
  wait_for 10 "test \$(status_of $id) = cancelled" || return 1
  echo "cancel to cancelled: $(( $(ms) - t0 )) ms"
  # killed processes are zombies until init reaps them: allow it a moment
  wait_for 5 "test \$(marked) = 0" || return 1
  test "$(finished_status $id)" = cancelled
'

test_expect_success 'cancel during a model call drops the request' '
  echo "[{\"delay_ms\": 30000, \"status\": 200, \"body\": {}}]" >replies.json &&
  start_fake replies.json || return 1
  cat >model.json <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"}}
JSON
  id=$(durin submit model.json) || return 1
  wait_for 20 "test -s requests.log" || return 1
  t0=$(ms)
  durin cancel $id || return 1
  wait_for 10 "test \$(status_of $id) = cancelled" || return 1
  echo "cancel to cancelled: $(( $(ms) - t0 )) ms"
  stop_fake
'

test_expect_success 'pause lets go at a step boundary; unpause continues' '
  cat >slow.json <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 1"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 1"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON
  id=$(durin submit slow.json) || return 1
  wait_for 20 "in_tool $id" || return 1
  durin pause $id || return 1
  wait_for 10 "test \$(status_of $id) = paused" || return 1
  test -z "$(col_of $id lease_owner)" &&
  sleep 1 && test "$(status_of $id)" = paused &&
  durin unpause $id &&
  wait_for 20 "test \$(status_of $id) = succeeded" &&
  events_contiguous $id
'

test_expect_success 'SIGTERM: the worker lets in-flight steps commit and releases' '
  id=$(durin submit slow.json) || return 1
  wait_for 20 "in_tool $id" || return 1
  kill -TERM $w && wait $w || return 1
  test -z "$(col_of $id lease_owner)" &&
  test "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 0")" = 0 &&
  grep_q "stopping: no new claims" w.log
'

test_done
