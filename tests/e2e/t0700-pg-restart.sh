#!/bin/sh
# What only PostgreSQL does, on a cluster of this test's own:
# - it restarts while a worker drives runs on it (an immediate stop: every
#   connection cut, in-flight transactions lost). The worker keeps its runs:
#   writes the server could not take are sent again once it is back, within
#   the lease. Every run succeeds, no tool call with a recorded outcome runs
#   again, no step is written twice, and no run is stranded as needs_human;
# - a connection cut right after COMMIT was sent: the writer asks whether
#   it landed (the run row carries the transaction's token) instead of
#   writing the step again;
# - idle workers are woken by NOTIFY when work arrives or an approval is
#   decided, instead of waiting for their next poll.
. "$(dirname "$0")/lib-test.sh"

own_pg_cluster
outcomes() { sql "select count(*) from ledger where done = 1"; }
status_of() { sql "select status from runs where id = '$1'"; }
ended() {
  sql "select count(*) from runs where status in ('succeeded', 'failed', 'needs_human', 'cancelled')"
}

make_project
N=6
STEPS=15
mkdir -p "$TRASH/log"
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project", "sandbox": {"rw": ["$TRASH/log"]},
 "model": {"provider": "script", "turns": [
   {"repeat": $STEPS, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.05; echo \$DURIN_IDEMPOTENCY_KEY >> $TRASH/log/calls"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON

test_expect_success 'a worker keeps its runs through a PostgreSQL restart' '
  for i in $(seq $N); do durin submit s.json >/dev/null || return 1; done
  "$DURIN" worker --poll 50ms --lease-ttl 5s >w.log 2>&1 &
  w=$!
  wait_for 30 "test \$(outcomes) -ge $N" &&
  cluster restart || { kill $w; return 1; }
  wait_for 120 "test \$(ended) = $N"; r=$?
  kill $w; wait $w
  cat w.log
  test $r = 0 &&
  test "$(sql "select count(*) from runs where status = '"'"'succeeded'"'"'")" = $N &&
  ! grep -E "dropping|letting the run go" w.log
'

test_expect_success 'every tool call ran exactly once' '
  test "$(wc -l <log/calls)" = $((N * STEPS)) &&
  test "$(sort log/calls | uniq -d | wc -l)" = 0 &&
  test "$(outcomes)" = $((N * STEPS))
'

# A step written twice would show as two model responses for one step.
twice() {
  sql "select count(*) from (select run_id, step from events where type = 'model_response' group by run_id, step having count(*) > 1) x"
}
gaps() {
  sql "select count(*) from (select run_id from events group by run_id having count(*) <> max(seq)) x"
}

test_expect_success 'no step was written twice, no sequence has a gap' '
  test "$(twice)" = 0 && test "$(gaps)" = 0
'

test_expect_success 'a COMMIT cut off in flight is asked about, not written again' '
  cat >cut.json <<JSON
{"goal": "g", "workspace": "project", "sandbox": {"rw": ["$TRASH/log"]},
 "model": {"provider": "script", "turns": [
   {"repeat": 6, "tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY >> $TRASH/log/cut"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
  before=$(sql "select count(*) from runs where status = '"'"'succeeded'"'"'") &&
  for n in 2 3 4 5; do
    DURIN_CRASH_AT=commit_cut:$n durin run cut.json >cut.out 2>&1 ||
      { cat cut.out; return 1; }
  done &&
  test "$(sql "select count(*) from runs where status = '"'"'succeeded'"'"'")" = $((before + 4)) &&
  test "$(wc -l <log/cut)" = 24 &&
  test "$(sort log/cut | uniq -d | wc -l)" = 0 &&
  test "$(twice)" = 0 && test "$(gaps)" = 0
'

test_expect_success 'an idle worker is woken at once: a submit, then a decision' '
  cat >ask.json <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "true"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"tools": {"bash": "ask"}}}
JSON
  "$DURIN" worker --poll 60s --lease-ttl 5s >w2.log 2>&1 &
  w=$!
  sleep 1
  id=$(durin submit ask.json) &&
  wait_for 10 "test \$(status_of $id) = waiting_approval" &&
  a=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  durin approve $a &&
  wait_for 10 "test \$(status_of $id) = succeeded"; r=$?
  kill $w; wait $w
  test $r = 0
'

test_done
