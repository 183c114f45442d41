#!/bin/sh
# Schedules: refusals that say what is wrong, then two serve processes on
# one store firing a minutely schedule on a test clock
# (DURIN_TEST_NOW_FILE, moved by the test, so nothing waits for real
# minutes): each tick one run. A serve SIGKILLed in the tick's
# transaction leaves the tick to the next serve; one killed just after
# its commit leaves the run, which is not made twice. A clock jump with
# --catchup 2 runs exactly 2 of the missed ticks; overlap skip and
# cancel-previous; pause and resume; the API; and Europe/Berlin's
# changes to and from summer time.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

export DURIN_TEST_NOW_FILE="$TRASH/now"
# 2030-01-01T00:00:30Z: half a minute before a minutely tick.
T0=1893456030000
set_clock() { echo $((T0 + $1)) >"$DURIN_TEST_NOW_FILE"; }
set_clock 0

mkdir -p "$TRASH/ws" && echo hello >"$TRASH/ws/a.txt"
cat >"$TRASH/quick.json" <<'JSON'
{"name": "tick", "goal": "say done", "workspace": "ws", "tools": ["finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
# A run that waits for a person: it stays not ended, holding no worker.
cat >"$TRASH/waits.json" <<'JSON'
{"name": "waits", "goal": "wait", "workspace": "ws", "tools": ["bash", "finish"],
 "policy": {"rules": [{"name": "ask", "tool": "bash", "command_prefix": "touch", "action": "ask"}]},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "touch x"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON

# runs_of NAME: how many runs the schedule made; ticks_of NAME OUTCOME.
runs_of() { sql "select count(*) from runs where dedupe_key like 'schedule:$1:%'"; }
ticks_of() {
  sql "select count(*) from schedule_ticks where name = '$1' and outcome = '$2'"
}
# Every run of the schedule has a tick of its own, and every fired tick
# one run.
one_run_per_tick() {
  test "$(sql "select count(distinct dedupe_key) from runs where dedupe_key like 'schedule:$1:%'")" = "$(runs_of "$1")" &&
  test "$(ticks_of "$1" fired)" = "$(runs_of "$1")" &&
  test "$(sql "select count(*) from schedule_ticks t where name = '$1' and outcome = 'fired' and not exists (select 1 from runs r where r.id = t.run_id and r.dedupe_key = 'schedule:$1:' || t.tick_ms)")" = 0
}
alive() { kill -0 "$1" 2>/dev/null; }

test_expect_success 'bad cron, zone, spec and options are refused saying what is wrong' '
  test_must_fail_with 65 durin schedule add x --cron "0 24 * * *" quick.json 2>err &&
  grep_q "field 2 (hour): 24 is out of range 0-23" err &&
  test_must_fail_with 65 durin schedule add x --cron "0 3 30 2 *" quick.json 2>err &&
  grep_q "never fires" err &&
  test_must_fail_with 65 durin schedule add x --cron "0 3 * * *" --tz Europe/Nowhere quick.json 2>err &&
  grep_q "unknown time zone .Europe/Nowhere." err &&
  test_must_fail_with 65 durin schedule add x --cron "* * *" quick.json 2>err &&
  grep_q "fewer than 5 fields" err &&
  echo "{" >broken.json &&
  test_must_fail_with 65 durin schedule add x --cron "@daily" broken.json 2>err &&
  grep_q "bad spec" err &&
  test_must_fail_with 64 durin schedule add x --cron "@daily" --overlap maybe quick.json 2>err &&
  grep_q "skip, queue or cancel-previous" err &&
  test_must_fail_with 65 durin schedule add "a b" --cron "@daily" quick.json 2>err &&
  grep_q "bad schedule name" err &&
  test_must_fail_with 5 durin schedule pause nosuch 2>err &&
  grep_q "no schedule .nosuch." err &&
  test "$(sql "select count(*) from schedules")" = 0
'

test_expect_success 'add prints the next ticks in the zone; ls shows them' '
  durin schedule add every --cron "* * * * *" --overlap queue quick.json >out &&
  grep_q "2030-01-01 00:01 UTC" out &&
  durin schedule add berlin --cron "30 2 * * *" --tz Europe/Berlin quick.json >out &&
  grep_q "2030-01-01 02:30 Europe/Berlin (UTC+01:00)" out &&
  test_must_fail durin schedule add every --cron "@daily" quick.json 2>err &&
  grep_q "already exists" err &&
  durin schedule pause berlin &&
  durin schedule ls >ls.txt && grep_q "^every .*active" ls.txt &&
  grep_q "^berlin .*paused" ls.txt &&
  durin schedule ls every --json >ls.json &&
  test "$(jq -r .next_fire ls.json)" = 2030-01-01T00:01:00Z
'

test_expect_success 'two serves on one store: each tick makes one run' '
  start_serve && A=$SERVE_PID && start_serve && B=$SERVE_PID &&
  for i in 1 2 3 4 5; do
    set_clock $((i * 60000)) &&
    wait_for 30 "test \"\$(runs_of every)\" = $i" || return 1
  done &&
  one_run_per_tick every &&
  test "$(ticks_of every fired)" = 5 &&
  wait_for 60 "test \"\$(sql \"select count(*) from runs where dedupe_key like '"'"'schedule:every:%'"'"' and status = '"'"'succeeded'"'"'\")\" = 5" &&
  durin schedule history every >h.txt && test "$(grep -c fired h.txt)" = 5 &&
  durin schedule ls every --json | jq -e ".last_fire == \"2030-01-01T00:05:00Z\""
'

test_expect_success 'a serve killed inside the tick transaction: the next one fires it, once' '
  stop_serve $A && stop_serve $B &&
  DURIN_CRASH_AT=schedule_fire start_serve && C=$SERVE_PID &&
  set_clock $((6 * 60000)) &&
  wait_for 30 "! alive $C" &&
  test "$(runs_of every)" = 5 && test "$(ticks_of every fired)" = 5 &&
  start_serve && D=$SERVE_PID &&
  wait_for 30 "test \"\$(runs_of every)\" = 6" &&
  one_run_per_tick every
'

test_expect_success 'a serve killed just after the commit: the run is not made twice' '
  stop_serve $D &&
  DURIN_CRASH_AT=schedule_fired start_serve && C=$SERVE_PID &&
  set_clock $((7 * 60000)) &&
  wait_for 30 "! alive $C" &&
  test "$(runs_of every)" = 7 &&
  start_serve && D=$SERVE_PID && start_serve && E=$SERVE_PID &&
  set_clock $((8 * 60000)) &&
  wait_for 30 "test \"\$(runs_of every)\" = 8" &&
  one_run_per_tick every &&
  test "$(sql "select count(*) from schedule_ticks where name = '"'"'every'"'"' and tick_ms = $((T0 + 7 * 60000 - 30000))")" = 1
'

test_expect_success 'a clock jump with --catchup 2 runs exactly the 2 latest missed ticks' '
  durin schedule rm every &&
  test "$(sql "select count(*) from schedule_ticks where name = '"'"'every'"'"'")" = 0 &&
  durin schedule add catch --cron "* * * * *" --overlap skip --catchup 2 quick.json &&
  set_clock $((18 * 60000)) &&
  wait_for 30 "test \"\$(runs_of catch)\" = 2" &&
  wait_for 30 "test \"\$(ticks_of catch missed)\" = 1" &&
  test "$(sql "select missed from schedule_ticks where name = '"'"'catch'"'"' and outcome = '"'"'missed'"'"'")" = 8 &&
  test "$(sql "select min(tick_ms) from schedule_ticks where name = '"'"'catch'"'"' and outcome = '"'"'fired'"'"'")" = $((T0 + 17 * 60000 - 30000)) &&
  one_run_per_tick catch &&
  durin schedule ls catch --json | jq -e ".next_fire == \"2030-01-01T00:19:00Z\""
'

test_expect_success 'pause: no ticks; resume: from the next tick, the paused ones not caught up' '
  durin schedule pause catch &&
  set_clock $((25 * 60000)) &&
  sleep 1.5 && test "$(runs_of catch)" = 2 &&
  durin schedule resume catch &&
  durin schedule ls catch --json | jq -e ".next_fire == \"2030-01-01T00:26:00Z\"" &&
  set_clock $((26 * 60000)) &&
  wait_for 30 "test \"\$(runs_of catch)\" = 3" &&
  test "$(ticks_of catch missed)" = 1 &&
  durin schedule rm catch
'

test_expect_success 'overlap skip: a tick while the last run waits is recorded skipped' '
  durin schedule add held --cron "* * * * *" waits.json &&
  set_clock $((27 * 60000)) &&
  wait_for 30 "test \"\$(runs_of held)\" = 1" &&
  first=$(sql "select id from runs where dedupe_key like '"'"'schedule:held:%'"'"'") &&
  wait_for 60 "test \"\$(status_of $first)\" = waiting_approval" &&
  set_clock $((28 * 60000)) &&
  wait_for 30 "test \"\$(ticks_of held skipped)\" = 1" &&
  test "$(runs_of held)" = 1 &&
  durin schedule history held >h.txt && grep_q "skipped.*run $first has not ended" h.txt &&
  durin schedule rm held
'

test_expect_success 'overlap cancel-previous: the waiting run is cancelled, a new one made' '
  durin schedule add replace --cron "* * * * *" --overlap cancel-previous waits.json &&
  set_clock $((29 * 60000)) &&
  wait_for 30 "test \"\$(runs_of replace)\" = 1" &&
  old=$(sql "select id from runs where dedupe_key like '"'"'schedule:replace:%'"'"'") &&
  wait_for 60 "test \"\$(status_of $old)\" = waiting_approval" &&
  set_clock $((30 * 60000)) &&
  wait_for 30 "test \"\$(runs_of replace)\" = 2" &&
  wait_for 60 "test \"\$(status_of $old)\" = cancelled" &&
  one_run_per_tick replace
'

test_expect_success 'the runs name their schedule and tick' '
  id=$(sql "select id from runs where dedupe_key = '"'"'schedule:replace:$((T0 + 30 * 60000 - 30000))'"'"'") &&
  test -n "$id" &&
  test "$(sql "select value from run_labels where run_id = '"'"'$id'"'"' and key = '"'"'schedule'"'"'")" = replace &&
  test "$(sql "select value from run_labels where run_id = '"'"'$id'"'"' and key = '"'"'schedule_tick'"'"'")" = 2030-01-01T00:30:00Z &&
  durin show "$id" >show.txt &&
  grep_q "^schedule  replace, tick 2030-01-01T00:30:00Z" show.txt
'

J='Content-Type: application/json'
api_body() {
  cat <<JSON
{"name": "$1", "cron": "$2", "tz": "${3:-UTC}", "overlap": "queue",
 "spec": {"goal": "api tick", "tools": ["finish"], "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}}
JSON
}

test_expect_success 'the API refuses a bad expression or zone naming the field' '
  OP=$(make_token ops operator) && VIEW=$(make_token eyes viewer) &&
  test -n "$OP" &&
  test "$(api "$OP" POST /v1/schedules -H "$J" -d "$(api_body a "0 24 * * *")")" = 400 &&
  test "$(body_field .error.field)" = cron &&
  body_field .error.message | grep_q "field 2 (hour): 24 is out of range 0-23" &&
  test "$(api "$OP" POST /v1/schedules -H "$J" -d "$(api_body a "@daily" Mars/X)")" = 400 &&
  test "$(body_field .error.field)" = tz &&
  body_field .error.message | grep_q "unknown time zone" &&
  test "$(api "$VIEW" POST /v1/schedules -H "$J" -d "$(api_body a "@daily")")" = 403
'

test_expect_success 'the API adds, lists, pauses, resumes and removes; its ticks fire' '
  test "$(api "$OP" POST /v1/schedules -H "$J" -d "$(api_body viaapi "* * * * *")")" = 201 &&
  test "$(body_field .next_fire)" = 2030-01-01T00:31:00Z &&
  test "$(api "$OP" POST /v1/schedules -H "$J" -d "$(api_body viaapi "@daily")")" = 409 &&
  set_clock $((31 * 60000)) &&
  wait_for 30 "test \"\$(runs_of viaapi)\" = 1" &&
  test "$(api "$VIEW" GET /v1/schedules/viaapi)" = 200 &&
  test "$(body_field ".ticks[0].outcome")" = fired &&
  test "$(body_field ".ticks[0].run")" = "$(body_field .last_run)" &&
  test "$(api "$VIEW" GET /v1/schedules)" = 200 &&
  test "$(body_field ".schedules | map(.name) | index(\"viaapi\") != null")" = true &&
  test "$(api "$OP" POST /v1/schedules/viaapi/pause)" = 200 &&
  test "$(body_field .paused)" = true &&
  test "$(api "$OP" POST /v1/schedules/viaapi/resume)" = 200 &&
  test "$(body_field .paused)" = false &&
  test "$(api "$OP" DELETE /v1/schedules/viaapi)" = 204 &&
  test "$(api "$VIEW" GET /v1/schedules/viaapi)" = 404
'

# fired_ticks NAME: the schedule's fired ticks' instants, oldest first.
fired_ticks() {
  sql "select tick_ms from schedule_ticks where name = '$1' and outcome = 'fired' order by tick_ms" | tr '\n' ' '
}

test_expect_success 'Europe/Berlin: 02:30 fires once when it is skipped, once when it repeats' '
  durin schedule rm replace && durin schedule rm berlin &&
  echo 1901149140000 >"$DURIN_TEST_NOW_FILE" &&
  durin schedule add dst --cron "30 2 * * *" --tz Europe/Berlin --overlap queue quick.json >out &&
  grep_q "2030-03-31 03:00 Europe/Berlin (UTC+02:00)" out &&
  echo 1901149230000 >"$DURIN_TEST_NOW_FILE" &&
  wait_for 30 "test \"\$(runs_of dst)\" = 1" &&
  test "$(fired_ticks dst)" = "1901149200000 " &&
  echo 1919291430000 >"$DURIN_TEST_NOW_FILE" &&
  wait_for 30 "test \"\$(runs_of dst)\" = 2" &&
  test "$(fired_ticks dst)" = "1901149200000 1919291400000 " &&
  # The second 02:30 (01:30 UTC): nothing; the last check below would
  # list its tick had it fired.
  echo 1919295030000 >"$DURIN_TEST_NOW_FILE" &&
  wait_for 30 "durin schedule ls dst --json | jq -e \".next_fire == \\\"2030-10-28T01:30:00Z\\\"\"" &&
  echo 1919381430000 >"$DURIN_TEST_NOW_FILE" &&
  wait_for 30 "test \"\$(runs_of dst)\" = 3" &&
  test "$(fired_ticks dst)" = "1901149200000 1919291400000 1919381400000 " &&
  one_run_per_tick dst
'

stop_serve $D
stop_serve $E
test_done
