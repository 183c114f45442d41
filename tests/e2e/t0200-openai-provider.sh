#!/bin/sh
# The openai provider against a local server that speaks Chat Completions:
# tool calls, usage and cost, retries with Retry-After, the retry budget,
# errors, and the model pinned at submit.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

make_project

FAKE_KEY_VALUE=sk-test

completion() { chat_completion "$1" "$1" "$2" "${3:-}"; } # completion TOOL ARGS_JSON_STRING [USAGE_JSON]
error_reply() { # error_reply STATUS MESSAGE [RETRY_AFTER]
  ra=""
  [ -n "${3:-}" ] && ra="\"headers\": {\"Retry-After\": \"$3\"},"
  echo "{\"status\": $1, $ra \"body\": {\"error\": {\"message\": \"$2\", \"type\": \"server_error\"}}}"
}

write_spec() { # write_spec NAME [MAX_RETRIES] [TIMEOUT_S]
  cat >"$TRASH/s.json" <<JSON
{"goal": "say hi", "system": "be brief", "workspace": "project",
 "tools": ["bash", "finish"],
 "model": {"provider": "openai", "name": "$1",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY",
           "max_retries": ${2:-5}, "timeout_s": ${3:-10}}}
JSON
}

export FAKE_KEY=sk-test

test_expect_success 'a run with tool calls, a 429 and a 500 on the way' '
  { echo "[" &&
    error_reply 429 "Rate limit reached" 1 && echo , &&
    completion bash "\"{\\\"command\\\": \\\"echo hi\\\"}\"" && echo , &&
    error_reply 500 "The server had an error" && echo , &&
    echo "{\"drop\": true}" && echo , &&
    completion finish "\"{\\\"summary\\\": \\\"said hi\\\"}\"" &&
    echo "]"; } >replies.json &&
  start_fake replies.json &&
  write_spec gpt-4o-mini &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select retries from runs where id = '"'"'$id'"'"'")" = 3 &&
  grep_q "retry 1" err.txt &&
  test "$(wc -l <requests.log)" = 5 &&
  stop_fake
'

# What the third model request must contain, byte for byte.
want_call='"role":"assistant","tool_calls":[{"id":"call_bash","type":"function","function":{"name":"bash","arguments":"{\"command\": \"echo hi\"}"}}],"content":null}'
want_result='{"role":"tool","tool_call_id":"call_bash","content":"exit code 0\nhi\n"}'
want_tools='"tools":[{"type":"function","function":{"name":"bash","description":'

test_expect_success 'the requests speak the wire format' '
  sed -n 2p requests.log >r2 &&
  grep -qF "\"model\":\"gpt-4o-mini\"" r2 &&
  grep -qF "{\"role\":\"system\",\"content\":\"be brief\"}" r2 &&
  grep -qF "$want_tools" r2 &&
  sed -n 5p requests.log >r5 &&
  grep -qF "$want_call" r5 &&
  grep -qF "$want_result" r5
'

test_expect_success 'usage and cost come from the response and the price table' '
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "2000|200" &&
  # gpt-4o-mini: $0.15 in, $0.60 out per million tokens
  test "$(sql "select printf('"'"'%.5f'"'"', cost_usd) from runs where id = '"'"'$id'"'"'")" = 0.00042 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'model_response'"'"' limit 1" | grep_q "gpt-4o-mini-2024-07-18"
'

test_expect_success 'the retry budget bounds retries' '
  { echo "[" && error_reply 503 "overloaded" 0 && echo , &&
    error_reply 503 "overloaded" 0 && echo , && error_reply 503 "overloaded" 0 &&
    echo "]"; } >replies.json &&
  start_fake replies.json &&
  write_spec gpt-4o-mini 1 &&
  test_must_fail_with 1 durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "retry budget is used up" &&
  test "$(wc -l <requests.log)" = 2 &&
  stop_fake
'

test_expect_success 'a bad key fails at once with the server message' '
  echo "[]" >replies.json && start_fake replies.json && write_spec gpt-4o-mini &&
  FAKE_KEY=sk-wrong test_must_fail_with 1 "$DURIN" run s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "HTTP 401: Incorrect API key" &&
  test "$(wc -l <requests.log)" = 1 &&
  stop_fake
'

test_expect_success 'a response that is not JSON fails the run clearly' '
  echo "[{\"raw\": \"<html>oops</html>\"}]" >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini &&
  test_must_fail_with 1 durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "not JSON" &&
  stop_fake
'

cached_usage='{"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 800}}'
test_expect_success 'cached prompt tokens are counted and priced as cached' '
  { echo "[" &&
    completion bash "\"{\\\"command\\\": \\\"true\\\"}\"" "$cached_usage" && echo , &&
    completion finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" "$cached_usage" &&
    echo "]"; } >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "2000|200" &&
  # gpt-4o-mini: 200 at $0.15, 800 cached at $0.075, 100 out at $0.60, twice
  test "$(sql "select printf('"'"'%.5f'"'"', cost_usd) from runs where id = '"'"'$id'"'"'")" = 0.00030 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'model_response'"'"' limit 1" | grep_q "\"cache_read_tokens\": *800" &&
  stop_fake
'

test_expect_success 'a negative token count fails the run and is not counted' '
  { echo "[" &&
    completion finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" "{\"prompt_tokens\": -10, \"completion_tokens\": 5}" &&
    echo "]"; } >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini 0 &&
  test_must_fail_with 1 durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  sql "select reason from runs where id = '"'"'$id'"'"'" | grep_q "bad usage.prompt_tokens: -10" &&
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "0|0" &&
  stop_fake
'

test_expect_success 'a slow answer times out and is retried' '
  { echo "[{\"delay_ms\": 2500, \"status\": 500, \"body\": {}}," &&
    completion finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" && echo "]"; } >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini 3 1 &&
  durin run s.json >out.txt 2>err.txt &&
  grep_q "timed out" err.txt &&
  stop_fake
'

test_expect_success 'the model is pinned at submit; resume uses it' '
  { echo "[" && completion bash "\"{\\\"command\\\": \\\"true\\\"}\"" && echo , &&
    completion finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" && echo "]"; } >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini &&
  env DURIN_MODEL=openai:gpt-4.1-mini DURIN_CRASH_AT=after_commit:2 "$DURIN" run s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  sql "select model from runs where id = '"'"'$id'"'"'" | grep_q "openai:gpt-4.1-mini" &&
  env DURIN_MODEL=openai:gpt-5 "$DURIN" resume $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  test "$(grep -c "\"model\":\"gpt-4.1-mini\"" requests.log)" = 2 &&
  # The cached-input price is pinned with the rest (gpt-4.1-mini: $0.10).
  sql "select spec from run_specs where run_id = '"'"'$id'"'"'" | grep_q "\"cached_input_per_mtok\": *0.1[,}]" &&
  stop_fake
'

test_expect_success 'OPENAI_BASE_URL is used when the spec names none' '
  { echo "[" && completion finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" && echo "]"; } >replies.json &&
  start_fake replies.json &&
  cat >s2.json <<JSON &&
{"goal": "g", "workspace": "project", "tools": ["finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini", "api_key_env": "FAKE_KEY"}}
JSON
  env OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" "$DURIN" run s2.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) &&
  sql "select spec from run_specs where run_id = '"'"'$id'"'"'" | grep -qF "127.0.0.1:$PORT/v1" &&
  sql "select spec from run_specs where run_id = '"'"'$id'"'"'" | grep -qF "\"input_per_mtok\":0.15" &&
  stop_fake
'

test_expect_success 'an interrupt abandons a slow model call at once' '
  { echo "[{\"delay_ms\": 30000, \"status\": 500, \"body\": {}}," &&
    completion finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" && echo "]"; } >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini || return 1
  # Not part of the && list above, or the whole list would go to the
  # background and $! would be a subshell.
  "$DURIN" run s.json >out.txt 2>&1 &
  pid=$! &&
  i=0; while [ "$(wc -l <requests.log 2>/dev/null || echo 0)" -lt 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  t0=$(date +%s%N) && kill -INT $pid && { wait $pid; rc=$?; } &&
  t1=$(date +%s%N) &&
  test $rc = 130 &&
  # Far sooner than the 30 s the reply would take: it was abandoned.
  test $(( (t1 - t0) / 1000000 )) -lt 20000 &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = running &&
  durin resume $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  stop_fake
'

test_expect_success 'cancel reaches a model call in flight' '
  echo "[{\"delay_ms\": 30000, \"status\": 500, \"body\": {}}]" >replies.json &&
  start_fake replies.json && write_spec gpt-4o-mini || return 1
  ( "$DURIN" run s.json >out.txt 2>&1; echo $? >rc ) &
  i=0; while [ "$(wc -l <requests.log 2>/dev/null || echo 0)" -lt 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  id=$(run_id_of out.txt) &&
  t0=$(date +%s) &&
  durin cancel $id >c.txt &&
  i=0; while [ ! -s rc ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done &&
  # Far sooner than the 30 s the reply would take: the call was dropped.
  test $(( $(date +%s) - t0 )) -lt 20 &&
  test "$(cat rc)" = 1 &&
  test "$(status_of $id)" = cancelled &&
  stop_fake
'

# sse_turn TOOL ARGS: one streamed Chat Completions answer, chunk by chunk,
# the arguments split across two chunks as real servers do.
sse_turn() {
  cat <<JSON
{"status": 200, "sse": [
  {"data": {"model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "delta": {"role": "assistant",
    "tool_calls": [{"index": 0, "id": "call_$1", "type": "function", "function": {"name": "$1", "arguments": ""}}]}}]}},
  {"data": {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "$2"}}]}}]}},
  {"data": {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "$3"}}]},
    "finish_reason": "tool_calls"}]}},
  {"data": {"choices": [], "usage": {"prompt_tokens": 700, "completion_tokens": 30}}},
  {"data": "[DONE]"}]}
JSON
}

test_expect_success 'streamed answers (SSE), a cut-off stream retried' '
  cat >replies.json <<JSON &&
[{"status": 200, "sse": [{"data": {"choices": [{"delta": {"content": "cut"}}]}}]},
 $(sse_turn bash "{\\\"command\\\": " "\\\"echo streamed\\\"}"),
 $(sse_turn finish "{\\\"summary\\\": " "\\\"ok\\\"}")]
JSON
  start_fake replies.json && write_spec gpt-4o-mini &&
  sed -i "s/\"max_retries\": 5/\"max_retries\": 5, \"stream\": true/" s.json &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  grep_q "stream ended early" err.txt &&
  grep_q "exit code 0 streamed" out.txt &&
  test "$(sql "select input_tokens, output_tokens from runs where id = '"'"'$id'"'"'")" = "1400|60" &&
  sed -n 1p requests.log | grep -qF "\"stream\":true,\"stream_options\":{\"include_usage\":true}" &&
  stop_fake
'

test_done
