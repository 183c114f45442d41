#!/bin/sh
# Fair share at one slot (issue 13, defect 3): with `durin worker
# --max-runs 1`, tenant A's four runs and tenant Z's one (submitted third),
# Z ran last: at every claim both tenants held nothing and the tie went to
# the first name. Ties go to the tenant served least recently, so the
# tenants alternate: Z runs second. Orders are read from started_ms.
. "$(dirname "$0")/lib-test.sh"

make_project
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

unfinished() { sql "select count(*) from runs where status not in ('succeeded', 'failed', 'cancelled')"; }
started_before() { sql "select count(*) from runs where started_ms < (select started_ms from runs where id = '$1')"; }

test_expect_success 'one slot: a tenant with one run is not served after all of another tenant' '
  a1=$(durin submit --tenant A s.json) && a2=$(durin submit --tenant A s.json) &&
  z=$(durin submit --tenant Z s.json) &&
  a3=$(durin submit --tenant A s.json) && a4=$(durin submit --tenant A s.json) ||
    return 1
  "$DURIN" worker --max-runs 1 --poll 20ms --quiet &
  w=$!
  wait_for 60 "test \$(unfinished) = 0"; r=$?
  kill -TERM $w; wait $w
  sql "select tenant, id, started_ms from runs order by started_ms" &&
  test $r = 0 && test "$(started_before $z)" = 1 &&
  test "$(started_before $a1)" = 0
'

test_done
