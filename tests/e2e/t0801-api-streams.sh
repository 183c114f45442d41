#!/bin/sh
# Live event streams (SSE), read by the `eventsource` npm package: a run's
# stream replays the log after Last-Event-ID and then goes live, ends after
# the run's terminal event, and across a serve SIGKILL and restart a client
# receives every event exactly once, in order. The all-runs stream is
# tenant-scoped. Live streams are read from the serve itself ($API_DIRECT):
# prism, in front of it at $API, passes a stream on only once it has ended.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"
command -v curl >/dev/null && command -v jq >/dev/null ||
  test_skip_all "curl and jq are needed (make test installs them)"
JS="$SRCDIR/tests/js"
[ -d "$JS/node_modules/eventsource" ] ||
  test_skip_all "the npm checkers are not installed (make npm-deps)"

# body N SLEEP: a run of N bash steps of SLEEP seconds each, then finish.
body() {
  turns=""
  i=0
  while [ $i -lt "$1" ]; do
    turns="$turns{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"sleep $2; echo step $i\"}}]},"
    i=$((i + 1))
  done
  cat <<JSON
{"spec": {"name": "stream", "goal": "steps", "tools": ["bash", "finish"],
  "model": {"provider": "script", "turns": [$turns
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}${3:+, $3}}
JSON
}

# sse URL OUT [ARGS...]: the eventsource client in the background; sets
# sse_pid.
sse() {
  _url=$1 _out=$2
  shift 2
  node "$JS/sse-client.mjs" "$_url" --token "$ADMIN" --out "$_out" \
    --timeout 120 "$@" >"$_out.stdout" 2>"$_out.stderr" &
  sse_pid=$!
  bg_pids="$bg_pids $sse_pid"
}

# ids_exactly FILE RUN: FILE's message ids are 1..last_seq of RUN, each
# once, in order, and the last message is the end of the stream.
ids_exactly() {
  last=$(sql "select last_seq from runs where id = '$2'")
  jq -r 'select(.event == "message") | .id' "$1" >got.ids &&
  seq 1 "$last" >want.ids &&
  cmp want.ids got.ids &&
  test "$(tail -n 1 "$1" | jq -r .event)" = end
}

test_expect_success 'a finished run streams its whole log, then the end' '
  ADMIN=$(make_token root admin) &&
  start_serve --lease-ttl 2s &&
  test "$(api "$ADMIN" POST /v1/runs -d "$(body 3 0)")" = 201 && id=$(body_field .id) &&
  wait_for 30 "test \"\$(status_of $id)\" = succeeded" &&
  sse "$API_DIRECT/v1/runs/$id/events/stream" done.jsonl &&
  wait "$sse_pid" && ids_exactly done.jsonl "$id" &&
  test "$(jq -r "select(.event == \"message\") | .data | fromjson | .type" done.jsonl | tail -n 1)" = run_finished
'

test_expect_success 'Last-Event-ID and ?after= replay only what came after' '
  sse "$API_DIRECT/v1/runs/$id/events/stream" after.jsonl --last-event-id 4 &&
  wait "$sse_pid" &&
  test "$(jq -r "select(.event == \"message\") | .id" after.jsonl | head -n 1)" = 5 &&
  curl -sN -H "Authorization: Bearer $ADMIN" "$API_DIRECT/v1/runs/$id/events/stream?after=6" >raw.txt &&
  test "$(sed -n "s/^id: //p" raw.txt | head -n 1)" = 7 &&
  grep_q "^event: end" raw.txt &&
  test "$(api "$ADMIN" GET "/v1/runs/$id/events/stream?after=x")" = 400
'

test_expect_success 'a live run: events arrive as they commit (the client runs beside it)' '
  test "$(api "$ADMIN" POST /v1/runs -d "$(body 8 0.2)")" = 201 && live=$(body_field .id) &&
  sse "$API_DIRECT/v1/runs/$live/events/stream" live.jsonl &&
  wait_for 30 "test -s live.jsonl" &&
  test "$(status_of $live)" = running &&
  wait "$sse_pid" && ids_exactly live.jsonl "$live"
'

test_expect_success 'across a serve SIGKILL and restart, every event exactly once, in order' '
  test "$(api "$ADMIN" POST /v1/runs -d "$(body 16 0.25)")" = 201 && k=$(body_field .id) &&
  port=${API_DIRECT##*:} &&
  sse "$API_DIRECT/v1/runs/$k/events/stream" kill.jsonl --verbose &&
  wait_for 30 "test \$(wc -l <kill.jsonl) -ge 6" &&
  kill -9 "$SERVE_PID" && stop_serve;
  before=$(wc -l <kill.jsonl) &&
  start_serve --lease-ttl 2s --listen "127.0.0.1:$port" &&
  wait "$sse_pid" &&
  test "$(wc -l <kill.jsonl)" -gt "$before" &&
  ids_exactly kill.jsonl "$k" &&
  test "$(status_of $k)" = succeeded &&
  grep_q "Last-Event-ID" kill.jsonl.stderr
'

test_expect_success 'the all-runs stream is live, and a tenant token sees its tenant only' '
  acme=$(make_token acme viewer acme) && acme_op=$(make_token acme-op operator acme) ||
    return 1
  curl -sN -m 20 -H "Authorization: Bearer $acme" "$API_DIRECT/v1/events/stream" >acme.txt &
  c1=$!
  curl -sN -m 20 -H "Authorization: Bearer $ADMIN" "$API_DIRECT/v1/events/stream?types=run_finished" >all.txt &
  c2=$!
  bg_pids="$bg_pids $c1 $c2"
  sleep 1 &&
  test "$(api "$ADMIN" POST /v1/runs -d "$(body 1 0)")" = 201 && d=$(body_field .id) &&
  test "$(api "$acme_op" POST /v1/runs -d "$(body 1 0)")" = 201 && a=$(body_field .id) &&
  wait_for 30 "grep -q $d all.txt && grep -q $a all.txt && grep -q run_finished acme.txt" &&
  ! grep_q "$d" acme.txt && grep_q "$a" acme.txt &&
  test "$(sed -n "s/^data: //p" all.txt | jq -r .type | sort -u)" = run_finished &&
  kill $c1 $c2
'

test_expect_success 'a stream of another tenant is 404; a viewer without a token is 401' '
  test "$(api "$acme" GET "/v1/runs/$k/events/stream")" = 404 &&
  test "$(api - GET "/v1/runs/$k/events/stream")" = 401
'

test_expect_success 'serve stops cleanly with streams open (they end)' '
  test "$(api "$ADMIN" POST /v1/runs -d "$(body 40 0.25)")" = 201 && s=$(body_field .id) ||
    return 1
  curl -sN -H "Authorization: Bearer $ADMIN" "$API_DIRECT/v1/runs/$s/events/stream" >stop.txt &
  c3=$! &&
  wait_for 30 "grep -q ^id: stop.txt" &&
  kill "$SERVE_PID" && wait "$SERVE_PID" &&
  wait "$c3" && grep_q "^event: closing" stop.txt && grep_q "server stopping" stop.txt &&
  ! grep_q "^event: end" stop.txt
'

test_done
