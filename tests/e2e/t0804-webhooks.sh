#!/bin/sh
# Outbound webhooks from durin serve, judged by a third-party receiver
# (tests/js/webhook-receiver.mjs, on the Standard Webhooks reference
# library): a run's own notify.webhooks signed with the store's secret,
# server-wide subscriptions made over the API (admin, tenant-confined),
# retries with backoff while a receiver is down, and nothing lost when the
# serve delivering is SIGKILLed with deliveries pending or in flight: each
# webhook-id arrives at least once, and exactly the expected ids arrive.
. "$(dirname "$0")/lib-test.sh"

command -v node >/dev/null 2>&1 || test_skip_all "no node (make npm-deps)"
[ -d "$SRCDIR/tests/js/node_modules/standardwebhooks" ] ||
  test_skip_all "tests/js has no node_modules (make npm-deps)"
command -v jq >/dev/null 2>&1 || test_skip_all "no jq"
"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox (serve takes API runs only with it)"

# Retries after 200 ms, 400 ms, 800 ms ... instead of 5 s, 10 s, 20 s.
export DURIN_WEBHOOK_BACKOFF_MS=200

now_ms() { date +%s%3N; }
test_cmp() { diff -u "$1" "$2"; }
# SIGKILL: the serve dies in whatever it was doing.
kill9() { kill -9 "$1"; wait "$1" 2>/dev/null; return 0; }
# post_json TOKEN PATH JSON: api's POST with a JSON body.
post_json() { api "$1" POST "$2" -H 'Content-Type: application/json' -d "$3"; }

# A free loopback port (for a receiver that must listen where a
# subscription made before it points).
free_port() {
  node -e 'const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}

# start_receiver NAME SECRET [ARGS...]: the receiver, logging to
# $TRASH/NAME.log; sets RPORT and NAME_pid in $TRASH/NAME.pid.
start_receiver() {
  _n=$1 _s=$2
  shift 2
  rm -f "$TRASH/$_n.port"
  node "$SRCDIR/tests/js/webhook-receiver.mjs" --secret "$_s" \
    --log "$TRASH/$_n.log" --port-file "$TRASH/$_n.port" "$@" \
    >/dev/null 2>>"$TRASH/$_n.err" &
  echo $! >"$TRASH/$_n.pid"
  bg_pids="$bg_pids $!"
  wait_for 20 "test -s '$TRASH/$_n.port'" || { cat "$TRASH/$_n.err"; return 1; }
  RPORT=$(cat "$TRASH/$_n.port")
  touch "$TRASH/$_n.log"
}
stop_receiver() { kill "$(cat "$TRASH/$1.pid")" 2>/dev/null; wait "$(cat "$TRASH/$1.pid")" 2>/dev/null; return 0; }

# A TCP endpoint that takes connections and never answers: a POST to it
# stays in flight until curl's timeout. Logs "conn" per connection.
start_hang() {
  node -e 'const fs = require("fs");
    require("net").createServer(() => fs.appendFileSync(process.argv[2], "conn\n"))
      .listen(+process.argv[1], "127.0.0.1")' "$1" "$TRASH/hang.log" &
  hang_pid=$!
  bg_pids="$bg_pids $hang_pid"
  wait_for 20 "curl -s -m 0.2 -o /dev/null http://127.0.0.1:$1/; test -s '$TRASH/hang.log'"
}

# run_body FILE URL EVENTS_JSON [approval]: a POST /v1/runs body with an
# inline spec whose own webhook is URL; with "approval" its one bash call
# waits for a person first.
run_body() {
  if [ "${4-}" = approval ]; then
    turns='{"text": "removing", "tool_calls": [{"name": "bash", "arguments": {"command": "rm -f nothing"}}]},'
    policy=', "policy": {"rules": [{"name": "ask-rm", "tool": "bash", "command_prefix": "rm", "action": "ask"}]}'
  else
    turns='' policy=''
  fi
  notify=''
  [ -z "$2" ] || notify=", \"notify\": {\"webhooks\": [{\"url\": \"$2\"${3:+, \"events\": $3}}]}"
  cat >"$TRASH/$1" <<JSON
{"spec": {"goal": "tidy the project", "model": {"provider": "script", "turns": [
   $turns
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}
   $policy $notify}}
JSON
}

# submit FILE: POST /v1/runs; prints the run id.
submit() {
  _c=$(api "$ADMIN" POST /v1/runs -H 'Content-Type: application/json' --data-binary "@$TRASH/$1") &&
    test "$_c" = 201 || { echo "POST /v1/runs: $_c" >&2; cat "$TRASH/.body" >&2; return 1; }
  body_field .id
}

undelivered() { sql "select count(*) from webhook_outbox where run_id = '$1' and delivered_ms is null"; }
outbox_ids() { sql "select id from webhook_outbox where run_id = '$1' order by id"; }
# Ids a receiver answered 204, each once, sorted.
delivered_ids() { jq -r 'select(.status == 204) | .id' "$TRASH/$1.log" | sort -u; }
# How many ids a receiver answered 503 at least N times.
ids_refused() { jq -r 'select(.status == 503) | .id' "$TRASH/$1.log" | sort | uniq -c | awk -v n="$2" '$1 >= n' | wc -l; }
# Lines a receiver logged that did not verify (should be none).
unverified() { jq -c 'select(.verified != true)' "$TRASH/$1.log"; }
# The body of the first 204 of TYPE in a receiver's log.
body_of() { jq -c "select(.status == 204 and .type == \"$2\") | .body" "$TRASH/$1.log" | head -n 1; }
# The ids a subscription must get: its run events of the given types.
expected_ids() { # expected_ids URL_PORT TYPES_SQL
  sql "select 'msg_' || s.id || '_' || e.run_id || '_' || e.seq from events e join webhook_subs s on s.run_id = e.run_id where s.url like '%:$1/%' and e.type in ($2) order by 1" | sort
}

durin token create admin --role admin >"$TRASH/admin.tok" 2>/dev/null
ADMIN=$(cat "$TRASH/admin.tok")

test_expect_success 'durin webhook secret: one store-wide secret, also over the API' '
  s1=$(durin webhook secret) && s2=$(durin webhook secret) &&
  test "$s1" = "$s2" &&
  case "$s1" in whsec_*) ;; *) return 1 ;; esac &&
  test "$(printf %s "${s1#whsec_}" | base64 -d | wc -c)" = 32 &&
  test_must_fail_with 64 durin webhook nonsense &&
  start_serve &&
  test "$(api "$ADMIN" GET /v1/webhooks/secret)" = 200 &&
  test "$(body_field .secret)" = "$s1" &&
  RUN_SECRET=$s1
'

test_expect_success 'a run'"'"'s own notify.webhooks: started, approval, finished, signed' '
  start_receiver a "$RUN_SECRET" && PA=$RPORT &&
  run_body a.json "http://127.0.0.1:$PA/hooks" "" approval &&
  id=$(submit a.json) &&
  wait_for 30 "test \"\$(status_of $id)\" = waiting_approval" &&
  ap=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  DURIN_REVIEWER=alice durin approve "$ap" --comment fine >/dev/null &&
  wait_for 30 "test \"\$(status_of $id)\" = succeeded" &&
  wait_for 30 "test \$(undelivered $id) = 0" &&
  test -z "$(unverified a)" &&
  delivered_ids a >got && outbox_ids $id >want && test_cmp want got &&
  jq -r "select(.status == 204) | .type" "$TRASH/a.log" | sort -u >types &&
  for t in run.started approval.requested approval.decided run.finished; do
    grep -qx "$t" types || { echo "no $t"; return 1; }; done &&
  body_of a run.finished >fin &&
  test "$(jq -r .data.run_id fin)" = "$id" &&
  test "$(jq -r .data.status fin)" = succeeded &&
  test "$(jq -r .data.summary fin)" = done &&
  test "$(jq -r .data.event.status fin)" = succeeded &&
  test "$(jq -r ".data.usage.steps >= 1" fin)" = true &&
  jq -e ".data.cost_usd | numbers" fin >/dev/null &&
  jq -r .timestamp fin | grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$" &&
  body_of a approval.decided >dec &&
  test "$(jq -r .data.approval.id dec)" = "$ap" &&
  test "$(jq -r .data.approval.state dec)" = approved &&
  test "$(jq -r .data.approval.decided_by dec)" = alice &&
  test "$(jq -r .data.approval.tool dec)" = bash &&
  body_of a approval.requested >req &&
  test "$(jq -r .data.approval.state req)" = pending &&
  test "$(jq -r .data.event.tool req)" = bash &&
  seq=$(jq -r .data.seq fin) &&
  grep -qx "msg_wh.*_${id}_$seq" got
'

test_expect_success 'the API: admin only, tenant-confined, the secret shown once' '
  viewer=$(make_token v viewer) && acme=$(make_token acme admin acme) &&
  test "$(post_json "$viewer" /v1/webhooks "{\"url\": \"http://127.0.0.1:9/x\"}")" = 403 &&
  test "$(post_json "$ADMIN" /v1/webhooks "{\"url\": \"ftp://127.0.0.1/x\"}")" = 400 &&
  test "$(body_field .error.field)" = url &&
  test "$(post_json "$ADMIN" /v1/webhooks "{\"url\": \"http://127.0.0.1:9/x\", \"events\": [\"run.exploded\"]}")" = 422 &&
  test "$(post_json "$ADMIN" /v1/webhooks "{\"url\": \"http://127.0.0.1:9/x\", \"evnets\": []}")" = 400 &&
  test "$(body_field .error.code)" = unknown_field &&
  test "$(post_json "$acme" /v1/webhooks "{\"url\": \"http://127.0.0.1:9/x\", \"tenant\": \"other\"}")" = 403 &&
  test "$(post_json "$acme" /v1/webhooks "{\"url\": \"http://127.0.0.1:9/acme\", \"events\": [\"run.finished\", \"run.started\"]}")" = 201 &&
  w_acme=$(body_field .id) &&
  test "$(body_field .tenant)" = acme &&
  test "$(body_field ".events | join(\",\")")" = run.started,run.finished &&
  body_field .secret | grep -Eq "^whsec_[A-Za-z0-9+/]{43}=$" &&
  test "$(post_json "$ADMIN" /v1/webhooks "{\"url\": \"https://example.invalid/all\"}")" = 201 &&
  w_all=$(body_field .id) &&
  test "$(body_field .tenant)" = null &&
  test "$(body_field ".events | length")" = 5 &&
  test "$(api "$acme" GET /v1/webhooks)" = 200 &&
  test "$(body_field "[.webhooks[].id] | join(\",\")")" = "$w_acme" &&
  test "$(api "$ADMIN" GET /v1/webhooks)" = 200 &&
  test "$(body_field ".webhooks | length")" = 2 &&
  test "$(body_field "[.webhooks[] | has(\"secret\")] | any")" = false &&
  test "$(api "$acme" GET /v1/webhooks/$w_all)" = 404 &&
  test "$(api "$acme" GET /v1/webhooks/$w_acme)" = 200 &&
  test "$(api "$acme" GET /v1/webhooks/secret)" = 403 &&
  test "$(api "$viewer" GET /v1/webhooks/secret)" = 403 &&
  test "$(api "$acme" DELETE /v1/webhooks/$w_all)" = 404 &&
  test "$(api "$acme" DELETE /v1/webhooks/$w_acme)" = 204 &&
  test "$(api "$acme" DELETE /v1/webhooks/$w_acme)" = 404 &&
  test "$(api "$ADMIN" DELETE /v1/webhooks/$w_all)" = 204 &&
  test "$(api "$ADMIN" GET /v1/webhooks)" = 200 &&
  test "$(body_field ".webhooks | length")" = 0
'

test_expect_success 'a server-wide subscription gets every run'"'"'s deliveries' '
  PB=$(free_port) &&
  test "$(post_json "$ADMIN" /v1/webhooks "{\"url\": \"http://127.0.0.1:$PB/all\", \"events\": [\"run.started\", \"run.finished\"]}")" = 201 &&
  w_b=$(body_field .id) && sb=$(body_field .secret) &&
  start_receiver b "$sb" --port "$PB" &&
  run_body plain.json "" "" &&
  r1=$(submit plain.json) && r2=$(submit plain.json) &&
  wait_for 30 "test \"\$(status_of $r1)\" = succeeded && test \"\$(status_of $r2)\" = succeeded" &&
  wait_for 30 "test \$(undelivered $r1) = 0 && test \$(undelivered $r2) = 0" &&
  test -z "$(unverified b)" &&
  delivered_ids b >got &&
  sql "select '"'"'msg_$w_b'"'"' || '"'"'_'"'"' || run_id || '"'"'_'"'"' || seq from events where run_id in ('"'"'$r1'"'"', '"'"'$r2'"'"') and type in ('"'"'run_started'"'"', '"'"'run_finished'"'"')" | sort >want &&
  test "$(wc -l <want)" = 4 && test_cmp want got &&
  test "$(jq -r "select(.body.data.run_id == \"$r1\") | .type" "$TRASH/b.log" | sort | paste -sd, -)" = run.finished,run.started &&
  test "$(api "$ADMIN" DELETE /v1/webhooks/$w_b)" = 204
'

test_expect_success 'a receiver down for a while loses nothing; retries show as repeated ids' '
  touch "$TRASH/c.down" &&
  start_receiver c "$RUN_SECRET" --down-until-file "$TRASH/c.down" && PC=$RPORT &&
  run_body c.json "http://127.0.0.1:$PC/c" "[\"run.started\", \"run.finished\"]" &&
  id=$(submit c.json) &&
  wait_for 30 "test \"\$(status_of $id)\" = succeeded" &&
  wait_for 30 "test \$(ids_refused c 3) = 2" &&
  test "$(undelivered $id)" = 2 &&
  sql "select last_error from webhook_outbox where run_id = '"'"'$id'"'"'" | grep -q "HTTP 503" &&
  rm "$TRASH/c.down" &&
  wait_for 30 "test \$(undelivered $id) = 0" &&
  test -z "$(unverified c)" &&
  delivered_ids c >got && expected_ids $PC "'"'"'run_started'"'"', '"'"'run_finished'"'"'" >want &&
  test "$(wc -l <want)" = 2 && test_cmp want got &&
  test "$(jq -r .id "$TRASH/c.log" | sort | uniq -d | wc -l)" = 2 &&
  test "$(sql "select min(attempts) from webhook_outbox where run_id = '"'"'$id'"'"'")" -ge 3
'

test_expect_success 'SIGKILL the serve with deliveries pending: a new serve sends them all' '
  touch "$TRASH/d.down" &&
  start_receiver d "$RUN_SECRET" --down-until-file "$TRASH/d.down" && PD=$RPORT &&
  run_body d.json "http://127.0.0.1:$PD/d" "[\"run.started\", \"approval.requested\", \"approval.decided\", \"run.finished\"]" approval &&
  r1=$(submit d.json) && r2=$(submit d.json) &&
  wait_for 30 "test \"\$(status_of $r1)\" = waiting_approval && test \"\$(status_of $r2)\" = waiting_approval" &&
  for r in $r1 $r2; do
    durin approve "$(sql "select id from approvals where run_id = '"'"'$r'"'"'")" >/dev/null || return 1; done &&
  wait_for 30 "test \"\$(status_of $r1)\" = succeeded && test \"\$(status_of $r2)\" = succeeded" &&
  expected_ids $PD "'"'"'run_started'"'"', '"'"'approval_requested'"'"', '"'"'approval_decided'"'"', '"'"'run_finished'"'"'" >want &&
  test "$(wc -l <want)" = 8 &&
  wait_for 30 "test \$(ids_refused d 1) = 8" &&
  kill9 $SERVE_PID &&
  test "$(sql "select count(*) from webhook_outbox where delivered_ms is not null and run_id in ('"'"'$r1'"'"', '"'"'$r2'"'"')")" = 0 &&
  start_serve &&
  rm "$TRASH/d.down" &&
  wait_for 60 "test \$(undelivered $r1) = 0 && test \$(undelivered $r2) = 0" &&
  test -z "$(unverified d)" &&
  delivered_ids d >got && test_cmp want got
'

test_expect_success 'a POST in flight: SIGTERM ends it at once; after a SIGKILL its lease runs out and it is sent again' '
  PE=$(free_port) && start_hang $PE && : >"$TRASH/hang.log" &&
  run_body e.json "http://127.0.0.1:$PE/e" "[\"run.finished\"]" &&
  id=$(submit e.json) &&
  wait_for 30 "test \"\$(status_of $id)\" = succeeded && test -s $TRASH/hang.log" &&
  t0=$(now_ms) && stop_serve && t1=$(now_ms) &&
  echo "serve stopped in $((t1 - t0)) ms" && test $((t1 - t0)) -lt 5000 &&
  sql "select last_error from webhook_outbox where run_id = '"'"'$id'"'"'" | grep -q "interrupted" &&
  test "$(sql "select lease_until from webhook_outbox where run_id = '"'"'$id'"'"'")" = 0 &&
  : >"$TRASH/hang.log" && start_serve &&
  wait_for 10 "test -s $TRASH/hang.log" &&
  test "$(sql "select count(*) from webhook_outbox where run_id = '"'"'$id'"'"' and lease_until > $(now_ms)")" = 1 &&
  kill9 $SERVE_PID && kill9 $hang_pid &&
  start_receiver e "$RUN_SECRET" --port $PE &&
  start_serve &&
  wait_for 60 "test \$(undelivered $id) = 0" &&
  test -z "$(unverified e)" &&
  delivered_ids e >got && expected_ids $PE "'"'"'run_finished'"'"'" >want &&
  test "$(wc -l <want)" = 1 && test_cmp want got &&
  test "$(sql "select attempts from webhook_outbox where run_id = '"'"'$id'"'"'")" = 3
'

test_expect_success 'no serve reported a sanitizer error or a leak' '
  stop_serve &&
  ! grep -l -e Sanitizer -e "runtime error" "$TRASH"/serve.*.log
'

test_done
