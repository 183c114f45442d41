#!/bin/sh
# Many serve processes on one PostgreSQL: any of them answers for any run.
# A run submitted on one is streamed live from the other (woken by NOTIFY,
# across processes), its approval is decided on the other, and when the
# serve that runs it is SIGKILLed the other one recovers it while the
# stream, reconnected, gets every event exactly once. Streams are read
# from the serves themselves ($API_DIRECT): prism, in front of each at
# $API, passes a stream on only once it has ended.
. "$(dirname "$0")/lib-test.sh"

command -v curl >/dev/null && command -v jq >/dev/null ||
  test_skip_all "curl and jq are needed (make test installs them)"
JS="$SRCDIR/tests/js"
[ -d "$JS/node_modules/eventsource" ] ||
  test_skip_all "the npm checkers are not installed (make npm-deps)"
own_pg_cluster

# body N SLEEP [EXTRA]: N bash steps of SLEEP seconds, an asked `touch`,
# then finish.
body() {
  turns=""
  i=0
  while [ $i -lt "$1" ]; do
    turns="$turns{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"sleep $2\"}}]},"
    i=$((i + 1))
  done
  cat <<JSON
{"spec": {"name": "pg", "goal": "steps", "tools": ["bash", "finish"],
  "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]},
  "model": {"provider": "script", "turns": [$turns
   {"tool_calls": [{"name": "bash", "arguments": {"command": "touch approved.txt"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}${3:+, $3}}
JSON
}

pg() { psql -X -q -A -t "$DURIN_STORE" -c "$1"; }
pg_status() { pg "select status from runs where id = '$1'"; }

ids_exactly() {
  last=$(pg "select last_seq from runs where id = '$2'")
  jq -r 'select(.event == "message") | .id' "$1" >got.ids &&
  seq 1 "$last" >want.ids &&
  cmp want.ids got.ids &&
  test "$(tail -n 1 "$1" | jq -r .event)" = end
}

test_expect_success 'two serves on one PostgreSQL' '
  ADMIN=$(make_token root admin) && test -n "$ADMIN" &&
  start_serve --lease-ttl 2s && A=$API A_DIRECT=$API_DIRECT A_PID=$SERVE_PID &&
  start_serve --lease-ttl 2s && B=$API B_DIRECT=$API_DIRECT B_PID=$SERVE_PID &&
  test "$A" != "$B"
'

test_expect_success 'submitted on one, streamed live from the other' '
  API=$A && test "$(api "$ADMIN" POST /v1/runs -d "$(body 3 0.2)")" = 201 &&
  id=$(body_field .id) || return 1
  node "$JS/sse-client.mjs" "$B_DIRECT/v1/runs/$id/events/stream" --token "$ADMIN" \
    --out live.jsonl --timeout 120 >/dev/null 2>live.err &
  sse=$!
  bg_pids="$bg_pids $sse"
  wait_for 60 "test \"\$(pg_status $id)\" = waiting_approval" &&
  API=$B && test "$(api "$ADMIN" GET "/v1/approvals?run=$id")" = 200 &&
  ap=$(body_field ".approvals[0].id") && test -n "$ap" && test "$ap" != null &&
  test "$(api "$ADMIN" POST "/v1/approvals/$ap/approve" -d "{\"comment\": \"ok from B\"}")" = 200 &&
  wait "$sse" && ids_exactly live.jsonl "$id" &&
  test "$(pg_status $id)" = succeeded &&
  test "$(pg "select decided_by from approvals where id = '\''$ap'\''")" = root
'

test_expect_success 'the serve running a run is SIGKILLed: the other finishes it; the stream misses nothing' '
  API=$A && test "$(api "$ADMIN" POST /v1/runs -d "$(body 40 0.1)")" = 201 &&
  k=$(body_field .id) || return 1
  node "$JS/sse-client.mjs" "$B_DIRECT/v1/runs/$k/events/stream" --token "$ADMIN" \
    --out kill.jsonl --timeout 120 >/dev/null 2>kill.err &
  sse=$!
  bg_pids="$bg_pids $sse"
  wait_for 60 "test \$(wc -l <kill.jsonl) -ge 8" &&
  holder=$(pg "select lease_owner from runs where id = '\''$k'\''") &&
  case $holder in *:$A_PID) victim=$A_PID ;; *) victim=$B_PID ;; esac &&
  kill -9 "$victim" && {
    if [ "$victim" = "$B_PID" ]; then
      # The stream was on the victim too: reconnect it to the survivor.
      kill "$sse"; wait "$sse" 2>/dev/null
      last=$(jq -r "select(.event == \"message\") | .id" kill.jsonl | tail -n 1)
      node "$JS/sse-client.mjs" "$A_DIRECT/v1/runs/$k/events/stream" --token "$ADMIN" \
        --out kill.jsonl --last-event-id "$last" --timeout 120 >/dev/null 2>>kill.err &
      sse=$!
      bg_pids="$bg_pids $sse"
      API=$A
    else
      API=$B
    fi
  } &&
  wait_for 90 "test \"\$(pg_status $k)\" = waiting_approval" &&
  api "$ADMIN" GET "/v1/approvals?run=$k" >/dev/null && ap=$(body_field ".approvals[0].id") &&
  test "$(api "$ADMIN" POST "/v1/approvals/$ap/approve")" = 200 &&
  wait "$sse" && ids_exactly kill.jsonl "$k" &&
  test "$(pg_status $k)" = succeeded &&
  test "$(pg "select count(*) from events where run_id = '\''$k'\'' and type = '\''lease_expired'\''")" -ge 1
'

test_done
