#!/bin/sh
# The anthropic provider against a local server speaking Messages:
# content blocks, tool_use and tool_result, retries, usage and cost.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

make_project

FAKE_KEY_VALUE=sk-ant-test

message() { # message TEXT TOOL INPUT_JSON [USAGE_JSON]
  usage=${4:-'{"input_tokens": 2000, "output_tokens": 100}'}
  cat <<JSON
{"status": 200, "body": {"id": "msg_$2", "type": "message", "role": "assistant",
 "model": "claude-sonnet-4-5-20250929",
 "content": [{"type": "text", "text": "$1"},
             {"type": "tool_use", "id": "toolu_$2", "name": "$2", "input": $3}],
 "stop_reason": "tool_use", "stop_sequence": null,
 "usage": $usage}}
JSON
}

export ANTHROPIC_KEY=sk-ant-test
cat >"$TRASH/replies.json" <<JSON
[$(message "Listing first." bash '{"command": "ls src"}'),
 {"status": 529, "headers": {"retry-after": "0"},
  "body": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}},
 $(message "Done." finish '{"summary": "listed"}')]
JSON

write_spec() {
  cat >"$TRASH/s.json" <<JSON
{"goal": "list the sources", "system": "be brief", "workspace": "project",
 "tools": ["bash", "finish"],
 "model": {"provider": "anthropic", "name": "claude-sonnet-4-5",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "ANTHROPIC_KEY"}}
JSON
}

test_expect_success 'a run on the Messages API' '
  start_fake replies.json && write_spec &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select retries from runs where id = '"'"'$id'"'"'")" = 1 &&
  test "$(wc -l <requests.log)" = 3 &&
  stop_fake
'

want_system='"system":"be brief"'
want_tool='"tools":[{"name":"bash","description":'
want_use='{"type":"tool_use","id":"toolu_bash","name":"bash","input":{"command":"ls src"}}'
want_result='{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_bash","content":"exit code 0\nstats.c\nstats.h\n"}]}'

test_expect_success 'the requests speak the Messages wire format' '
  sed -n 1p requests.log >r1 &&
  grep -qF "$want_system" r1 && grep -qF "$want_tool" r1 &&
  grep -qF "\"max_tokens\":4096" r1 &&
  sed -n 3p requests.log >r3 &&
  grep -qF "$want_use" r3 &&
  grep -qF "$want_result" r3
'

test_expect_success 'usage and cost from the Messages response' '
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "4000|200" &&
  # claude-sonnet-4: $3 in, $15 out per million tokens
  test "$(sql "select printf('"'"'%.4f'"'"', cost_usd) from runs where id = '"'"'$id'"'"'")" = 0.0150
'

test_expect_success 'a wrong key gets the server message' '
  echo "[]" >r0.json && start_fake r0.json && write_spec &&
  ANTHROPIC_KEY=sk-wrong test_must_fail_with 1 "$DURIN" run s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "HTTP 401: invalid x-api-key" &&
  stop_fake
'

cache_usage='{"input_tokens": 30, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200, "output_tokens": 100}'
cat >"$TRASH/r-cache.json" <<JSON
[$(message "Listing." bash '{"command": "true"}' "$cache_usage"),
 $(message "Done." finish '{"summary": "ok"}' "$cache_usage")]
JSON
cat >"$TRASH/r-neg.json" <<JSON
[$(message "Done." finish '{"summary": "ok"}' '{"input_tokens": -10, "output_tokens": 5}')]
JSON

test_expect_success 'prompt cache reads and writes are input, at their prices' '
  start_fake r-cache.json && write_spec &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "2460|200" &&
  # claude-sonnet-4: 30 at $3, 1000 read at $0.30, 200 written at $3.75,
  # 100 out at $15 per million, twice
  test "$(sql "select printf('"'"'%.5f'"'"', cost_usd) from runs where id = '"'"'$id'"'"'")" = 0.00528 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'model_response'"'"' limit 1" >ev &&
  grep_q "\"cache_read_tokens\": *1000" ev && grep_q "\"cache_write_tokens\": *200" ev &&
  stop_fake
'

test_expect_success 'a negative token count fails the run and is not counted' '
  start_fake r-neg.json && write_spec &&
  test_must_fail_with 1 "$DURIN" run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "bad usage.input_tokens: -10" &&
  test "$(sql "select input_tokens from runs where id = '"'"'$id'"'"'")" = 0 &&
  stop_fake
'

# The official SDKs take the bare host and append /v1/messages; so does
# durin, for ANTHROPIC_BASE_URL and model.base_url alike.
cat >"$TRASH/r-host.json" <<JSON
[$(message "Done." finish '{"summary": "reached"}')]
JSON
export FAKE_HEADS="$TRASH/heads.log"

test_expect_success 'ANTHROPIC_BASE_URL is the bare host; api_version is sent' '
  start_fake r-host.json &&
  cat >s-host.json <<JSON &&
{"goal": "say done", "workspace": "project", "tools": ["finish"],
 "model": {"provider": "anthropic", "name": "claude-sonnet-4-5",
           "api_key_env": "ANTHROPIC_KEY", "api_version": "2099-12-31"}}
JSON
  ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT" durin run s-host.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  grep -qF "POST /v1/messages HTTP/1.1 | anthropic-version: 2099-12-31" heads.log &&
  stop_fake
'

test_expect_success 'a model.api_version that is not a token is refused' '
  cat >s-bad.json <<\JSON &&
{"goal": "g", "workspace": "project", "tools": ["finish"],
 "model": {"provider": "anthropic", "name": "claude-sonnet-4-5",
           "api_key_env": "ANTHROPIC_KEY", "api_version": "2023-06-01\r\nx-evil: 1"}}
JSON
  test_must_fail_with 65 "$DURIN" run s-bad.json 2>err &&
  grep_q "model.api_version" err
'

test_expect_success 'anthropic:NAME without a key is refused at submit' '
  test_must_fail_with 65 env -u ANTHROPIC_API_KEY "$DURIN" run --model anthropic:claude-sonnet-4-5 "$SRCDIR/examples/fix-failing-test/agent.json" 2>err &&
  grep_q "needs an API key: set ANTHROPIC_API_KEY" err
'

# One streamed Messages answer: text, then a tool_use whose input arrives
# as partial JSON in two pieces.
sse_message() { # TOOL PART1 PART2
  cat <<JSON
{"status": 200, "sse": [
  {"event": "message_start", "data": {"type": "message_start", "message": {"id": "msg_s", "type": "message",
    "role": "assistant", "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null,
    "usage": {"input_tokens": 500, "output_tokens": 1}}}},
  {"event": "content_block_start", "data": {"type": "content_block_start", "index": 0,
    "content_block": {"type": "text", "text": ""}}},
  {"event": "ping", "data": {"type": "ping"}},
  {"event": "content_block_delta", "data": {"type": "content_block_delta", "index": 0,
    "delta": {"type": "text_delta", "text": "Streaming."}}},
  {"event": "content_block_stop", "data": {"type": "content_block_stop", "index": 0}},
  {"event": "content_block_start", "data": {"type": "content_block_start", "index": 1,
    "content_block": {"type": "tool_use", "id": "toolu_s$1", "name": "$1", "input": {}}}},
  {"event": "content_block_delta", "data": {"type": "content_block_delta", "index": 1,
    "delta": {"type": "input_json_delta", "partial_json": "$2"}}},
  {"event": "content_block_delta", "data": {"type": "content_block_delta", "index": 1,
    "delta": {"type": "input_json_delta", "partial_json": "$3"}}},
  {"event": "content_block_stop", "data": {"type": "content_block_stop", "index": 1}},
  {"event": "message_delta", "data": {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
    "usage": {"output_tokens": 40}}},
  {"event": "message_stop", "data": {"type": "message_stop"}}]}
JSON
}

test_expect_success 'streamed Messages answers (SSE)' '
  cat >rs.json <<JSON &&
[$(sse_message bash "{\\\"command\\\": " "\\\"echo via-sse\\\"}"),
 $(sse_message finish "{\\\"summary\\\": " "\\\"ok\\\"}")]
JSON
  start_fake rs.json && write_spec &&
  sed -i "s/\"api_key_env\": \"ANTHROPIC_KEY\"/\"api_key_env\": \"ANTHROPIC_KEY\", \"stream\": true/" s.json &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  grep_q "exit code 0 via-sse" out.txt &&
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "1000|80" &&
  sed -n 1p requests.log | grep -qF "\"stream\":true" &&
  stop_fake
'

test_done
