#!/bin/sh
# Queue semantics through the CLI and a real worker: priority, fair share
# between tenants, dedupe keys, concurrency keys, tenant limits, delayed
# start. Orders are read from started_ms in the store.
. "$(dirname "$0")/lib-test.sh"

make_project
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.3"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

unfinished() { sql "select count(*) from runs where status not in ('succeeded', 'failed', 'cancelled')"; }
drain() { # drain MAX_RUNS: one worker until the queue is empty
  "$DURIN" worker --max-runs "$1" --poll 50ms --quiet &
  _wp=$!
  wait_for 60 "test \$(unfinished) = 0"; _r=$?
  kill -TERM $_wp; wait $_wp
  return $_r
}
# Runs whose [started, finished] intervals overlap, among ids in file $1.
overlaps() {
  ids=$(sed "s/.*/'&'/" "$1" | paste -sd, -)
  sql "select count(*) from runs a, runs b where a.id in ($ids) and b.id in ($ids) and a.id < b.id and a.started_ms < b.finished_ms and b.started_ms < a.finished_ms"
}
break_spec() { sql "update run_specs set spec = '{\"goal\": 1}' where run_id = '$1'"; }
started_rank() { sql "select count(*) from runs where tenant in ('big', 'small') and started_ms < (select started_ms from runs where id = '$1')"; }

test_expect_success 'submit prints the id; bad options are refused' '
  id=$(durin submit s.json) && test -n "$id" &&
  test "$(status_of $id)" = queued &&
  test_must_fail_with 64 durin submit --priority x s.json &&
  test_must_fail_with 64 durin submit --not-before tomorrow s.json &&
  test_must_fail_with 65 durin submit nope.json &&
  drain 4
'

test_expect_success 'higher priority first within a tenant' '
  lo=$(durin submit s.json) && hi=$(durin submit --priority 9 s.json) &&
  drain 1 &&
  test "$(col_of $hi started_ms)" -lt "$(col_of $lo started_ms)"
'

test_expect_success 'fair share: a big backlog does not starve a small tenant' '
  i=0; while [ $i -lt 12 ]; do durin submit --tenant big --priority 5 s.json >/dev/null || return 1; i=$((i+1)); done
  small=$(durin submit --tenant small s.json) &&
  drain 2 &&
  test "$(started_rank $small)" -le 2
'

test_expect_success 'dedupe key: an active run is returned, not duplicated' '
  a=$(durin submit --dedupe-key nightly s.json) &&
  b=$(durin submit --dedupe-key nightly --json s.json) &&
  test "$b" = "{\"run\":\"$a\",\"deduplicated\":true}" &&
  c=$(durin submit --dedupe-key nightly --tenant other s.json) &&
  test "$c" != "$a" &&
  drain 4 &&
  d=$(durin submit --dedupe-key nightly s.json) && test "$d" != "$a" &&
  drain 4
'

test_expect_success 'a concurrency key runs one at a time (or as the limit says)' '
  : >k1; for i in 1 2 3; do durin submit --concurrency-key repo s.json >>k1 || return 1; done
  drain 8 && test "$(overlaps k1)" = 0 &&
  durin limits set key:repo2 2 &&
  durin limits | grep_q "key:repo2 *2" &&
  : >k2; for i in 1 2 3 4; do durin submit --concurrency-key repo2 s.json >>k2 || return 1; done
  drain 8 && test "$(overlaps k2)" -gt 0
'

test_expect_success 'tenant limits' '
  durin limits set tenant:t 1 &&
  : >t1; for i in 1 2 3; do durin submit --tenant t s.json >>t1 || return 1; done
  drain 8 && test "$(overlaps t1)" = 0 &&
  durin limits rm tenant:t && test -z "$(durin limits | grep tenant:t)" &&
  test_must_fail_with 64 durin limits set bogus 1
'

test_expect_success 'delayed start' '
  id=$(durin submit --not-before +2s s.json) &&
  drain 4 &&
  # not before its not_before (set at submit, a moment before created_ms)
  test "$(col_of $id started_ms)" -ge "$(col_of $id not_before_ms)" &&
  test $(( $(col_of $id not_before_ms) - $(col_of $id created_ms) )) -ge 1500
'

test_expect_success 'a run whose stored spec is unusable ends failed, once' '
  id=$(durin submit s.json) && break_spec $id &&
  drain 4 &&
  test "$(status_of $id)" = failed &&
  col_of $id reason | grep "cannot restore the run" &&
  test "$(col_of $id attempt)" = 1 &&
  test "$(sql "select count(*) from events where run_id = '\''$id'\'' and type = '\''run_finished'\''")" = 1 &&
  test -z "$(col_of $id lease_owner)"
'

test_done
