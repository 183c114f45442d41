#!/bin/sh
# No secret value leaves a tool in any of its forms: a run reads a planted
# value from its workspace and prints it as it is, in base64 (alone, and
# inside a Basic auth header at another alignment), in hex and URL-encoded,
# and an acceptance check prints it too; the log, durin logs and show,
# the trace with content, the debug bundle and the store itself (the
# SQLite file and its WAL, or a dump of PostgreSQL's rows) hold none of
# them, and [secret:TOKEN] where each was. A model that says the value
# has it scrubbed too, and over serve no API answer, SSE stream, webhook
# body, OTLP payload or line of serve output holds it.
. "$(dirname "$0")/lib-test.sh"
"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

make_project
unset DURIN_MASTER_KEY DURIN_MASTER_KEY_FILE CREDENTIALS_DIRECTORY XDG_CONFIG_HOME
export HOME="$TRASH/home"
export DURIN_MASTER_KEY_FILE="$TRASH/master.key"
V=ghp_Pl4ntedV4lue0123456789abcdefXYZ
printf "%s" "$V" >"$TRASH/project/creds.txt"
b64=$(printf "%s" "$V" | base64 -w0)
hex=$(printf "%s" "$V" | od -An -tx1 | tr -d " \n")

cat >"$TRASH/s.json" <<'JSON'
{"goal": "g", "workspace": "project", "tools": ["bash", "finish"],
 "checks": [{"name": "leak", "run": "echo check sees $(cat creds.txt)"}],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo raw $(cat creds.txt) end"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "base64 -w0 creds.txt; echo; printf user:%s $(cat creds.txt) | base64 -w0"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "od -An -tx1 creds.txt | tr -d ' \\n'; echo; od -An -tx1 creds.txt | tr -d ' \\n' | tr a-f A-F"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "jq -rn --arg v \"$(cat creds.txt)/x y\" '$v|@uri'"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

# Every form a test looks for; none may appear in FILE.
clean() {
  for f in "$V" "$b64" "$hex" "$(printf "%s" "$hex" | tr a-f A-F)" \
    "$(printf "user:%s" "$V" | base64 -w0 | cut -c8-30)"; do
    if grep -a -q -F -- "$f" "$1"; then
      echo "$1 holds a form of the secret: $f" >&2
      return 1
    fi
  done
}

test_expect_success 'a run that prints a secret in every form' '
  durin secret keygen -o "$DURIN_MASTER_KEY_FILE" >/dev/null 2>err.txt &&
  printf "%s" "$V" | durin secret set TOKEN 2>/dev/null &&
  durin run s.json >w.log 2>&1 &&
  id=$(run_id_of w.log) && test -n "$id" &&
  test "$(status_of $id)" = succeeded
'

test_expect_success 'the log has [secret:TOKEN] where each form was' '
  durin logs $id >logs.txt &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"'" >results.txt &&
  grep -q "raw \[secret:TOKEN\] end" results.txt &&
  test "$(grep -o "\[secret:TOKEN\]" results.txt | wc -l)" -ge 6 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'checks'"'"'" >checks.txt &&
  grep -q "check sees \[secret:TOKEN\]" checks.txt
'

test_expect_success 'no form of it in any artefact, nor in the store' '
  durin show $id >show.txt &&
  durin trace --content $id >trace.json &&
  durin bundle $id -o b.tar.zst >/dev/null 2>&1 &&
  mkdir b && tar --zstd -xf b.tar.zst -C b &&
  for f in logs.txt results.txt checks.txt show.txt trace.json w.log $(find b -type f -not -name "*.tar.zst"); do
    clean "$f" || return 1
  done &&
  if [ -n "${PGDB:-}" ]; then
    pg_dump --data-only "$DURIN_STORE" >dump.txt &&
    grep -q "secret:TOKEN" dump.txt &&
    clean dump.txt
  else
    for f in "$TRASH"/store/*; do clean "$f" || return 1; done
  fi
'

# The model's own words: a provider that answers with the value, in its
# text and in a call's arguments. The harness only ever sees
# [secret:TOKEN]: the call runs with it, and nothing written holds the
# value, nor the next request to the model.
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"
FAKE_KEY_VALUE=sk-fake-redaction-0001
export FAKE_KEY="$FAKE_KEY_VALUE"
cat >"$TRASH/m.json" <<JSON
{"goal": "g", "workspace": "project", "tools": ["bash", "finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:PORT/v1", "api_key_env": "FAKE_KEY",
           "max_retries": 0, "timeout_s": 10}}
JSON

test_expect_success 'the model says the value: its text and arguments are scrubbed' '
  cat >replies.json <<JSON &&
[{"status": 200, "body": {"id": "c1", "object": "chat.completion", "created": 1760000000,
  "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant",
  "content": "I found the token $V in creds.txt",
  "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "bash",
    "arguments": "{\"command\": \"echo model says $V\"}"}}]},
  "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}},
 {"status": 200, "body": {"id": "c2", "object": "chat.completion", "created": 1760000000,
  "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
  "tool_calls": [{"id": "call_2", "type": "function", "function": {"name": "finish",
    "arguments": "{\"summary\": \"done\"}"}}]},
  "finish_reason": "tool_calls"}], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}}]
JSON
  start_fake replies.json &&
  sed "s/PORT/$PORT/" m.json >m2.json &&
  durin run m2.json >w2.log 2>&1 &&
  id=$(run_id_of w2.log) &&
  test "$(status_of $id)" = succeeded &&
  stop_fake &&
  sql "select data from events where run_id = '"'"'$id'"'"'" >ev2.txt &&
  grep -q "I found the token \[secret:TOKEN\] in creds.txt" ev2.txt &&
  grep -q "model says \[secret:TOKEN\]" ev2.txt &&
  durin logs $id >logs2.txt &&
  durin show $id >show2.txt &&
  durin trace --content $id >trace2.json &&
  grep -q "secret:TOKEN" trace2.json &&
  sql "select args from ledger where run_id = '"'"'$id'"'"'" >ledger2.txt &&
  for f in ev2.txt logs2.txt show2.txt trace2.json ledger2.txt w2.log; do
    clean "$f" || return 1
  done &&
  test "$(wc -l <requests.log)" = 2 &&
  tail -n 1 requests.log >req2.txt &&
  grep -q "secret:TOKEN" req2.txt &&
  clean req2.txt
'

# Through serve: the same run submitted over the API, with a webhook of
# its own, a collector taking its trace with content, and its stream read
# by an EventSource client. No answer, stream, delivery, OTLP payload or
# line of serve's output holds a form of the value.
JS=$SRCDIR/tests/js
start_receivers() {
  rm -f wh.port otlp.port
  mkdir -p got
  node "$JS/webhook-receiver.mjs" --secret "$WH" --log wh.log --port-file wh.port >/dev/null 2>wh.err &
  bg_pids="$bg_pids $!"
  node "$JS/otlp-receiver.mjs" --dir got --port-file otlp.port >/dev/null 2>&1 &
  bg_pids="$bg_pids $!"
  wait_for 20 "test -s wh.port && test -s otlp.port"
}
test_expect_success 'API answers, SSE, webhook bodies, OTLP payloads and serve output: none' '
  start_fake replies.json &&
  ADMIN=$(durin token create red-admin --role admin 2>/dev/null) &&
  WH=$(durin webhook secret) &&
  start_receivers &&
  OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat otlp.port)" \
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true \
    OTEL_BSP_SCHEDULE_DELAY=100 start_serve --workspace-root "$TRASH" &&
  sed "s/PORT/$PORT/" m.json >m3.json &&
  jq -n --slurpfile s m3.json --arg url "http://127.0.0.1:$(cat wh.port)/hooks" \
    --arg ws "$TRASH/project" \
    "{workspace: {dir: \$ws}, spec: (\$s[0] + {notify: {webhooks: [{url: \$url}]}} | del(.workspace))}" >body.json &&
  test "$(api "$ADMIN" POST /v1/runs -H "Content-Type: application/json" --data-binary @body.json)" = 201 &&
  id=$(body_field .id) &&
  node "$JS/sse-client.mjs" "$API_DIRECT/v1/runs/$id/events/stream" --token "$ADMIN" \
    --out sse.txt --timeout 60 >/dev/null 2>sse.err &&
  test "$(status_of $id)" = succeeded &&
  grep -q "secret:TOKEN" sse.txt &&
  wait_for 30 "grep -q run.finished wh.log" &&
  wait_for 30 "cat got/*.json 2>/dev/null | grep -q secret:TOKEN" &&
  for p in "" /events /timeline; do
    test "$(api "$ADMIN" GET "/v1/runs/$id$p")" = 200 &&
    cp "$TRASH/.body" "api$(echo "$p" | tr / _).json" || return 1
  done &&
  grep -q "secret:TOKEN" api_events.json &&
  curl -sS -H "Authorization: Bearer $ADMIN" -o api.bundle "$API_DIRECT/v1/runs/$id/bundle" &&
  mkdir b2 && tar --zstd -xf api.bundle -C b2 &&
  stop_serve &&
  stop_fake &&
  for f in sse.txt wh.log api*.json "$SERVE_LOG" got/*.json $(find b2 -type f -not -name "*.tar.zst"); do
    clean "$f" || return 1
  done
'

test_done
