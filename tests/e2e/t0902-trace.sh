#!/bin/sh
# A run's trace is a projection of its log (durin trace ID): through a
# real provider's wire format (the fake OpenAI server), with tool calls
# (one failing), a compaction, an approval and a crash with a resume, the
# trace is valid OTLP/JSON (checked against the protos), its attributes
# are the GenAI conventions' (checked against the registry), every model
# call and tool call is one span under the run's root, and computing it
# again gives the same ids.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

CHECK="$SRCDIR/tests/js/otlp-check.mjs"
[ -d "$SRCDIR/tests/js/node_modules/protobufjs" ] ||
  test_skip_all "protobufjs is not installed (make npm-deps)"
"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"

make_project
export FAKE_HEADS="$TRASH/heads.log"
FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test
cached='{"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 800}}'
bash_call() { chat_completion "$1" bash "\"{\\\"command\\\": \\\"$2\\\"}\"" "${3:-}"; }

test_expect_success 'a run with model calls, a failing call, a compaction, an approval and a crash' '
  { echo "[" &&
    bash_call 1 "echo one" "$cached" && echo , &&
    bash_call 2 "false" && echo , &&
    bash_call 3 "head -c 120000 /dev/zero | tr \\\\\\\\\\\\\\\\0 o" && echo , &&
    bash_call 4 "head -c 120000 /dev/zero | tr \\\\\\\\\\\\\\\\0 o" && echo , &&
    bash_call 5 "touch approved" && echo , &&
    chat_completion 6 finish "\"{\\\"summary\\\": \\\"done\\\"}\"" &&
    echo "]"; } >replies.json &&
  jq -e . replies.json >/dev/null &&
  start_fake replies.json &&
  cat >s.json <<JSON &&
{"name": "tracer", "goal": "leave a trace", "workspace": "project",
 "tools": ["bash", "finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"},
 "limits": {"output_bytes": 262144},
 "context": {"max_bytes": 100000, "max_messages": 4},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]}}
JSON
  { env DURIN_CRASH_AT=after_commit:3 "$DURIN" run s.json >out.txt 2>&1; true; } &&
  id=$(run_id_of out.txt) && test -n "$id" &&
  test_must_fail_with 2 durin resume --no-wait "$id" >r1.txt 2>&1 &&
  test "$(status_of $id)" = waiting_approval &&
  a=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  DURIN_REVIEWER=alice durin approve "$a" >/dev/null &&
  durin resume "$id" >r2.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  test "$(count_events compaction)" -ge 1 &&
  test "$(count_events resumed)" -ge 1
'

test_expect_success 'the trace is valid OTLP with the conventions'"'"' attributes' '
  durin trace "$id" >trace.json &&
  node "$CHECK" trace.json >sum.json &&
  test "$(jq ".traces | length" sum.json)" = 1
'

test_expect_success 'one span per model call and per tool call, under one root' '
  spans() { jq -c ".resourceSpans[0].scopeSpans[0].spans[]" trace.json; } &&
  test "$(jq .names.chat sum.json)" = "$(count_events model_response)" &&
  test "$(jq .names.execute_tool sum.json)" = "$(count_events tool_result)" &&
  test "$(jq .names.invoke_agent sum.json)" = 1 &&
  test "$(jq .names[\"durin.compaction\"] sum.json)" = "$(count_events compaction)" &&
  root=$(spans | jq -r "select(.name == \"invoke_agent tracer\") | .spanId") &&
  test -n "$root" &&
  test "$(spans | jq -r "select(.spanId != \"$root\") | .parentSpanId" | sort -u)" = "$root" &&
  test -z "$(spans | jq -r "select(.spanId == \"$root\") | .parentSpanId // empty")" &&
  test "$(spans | jq -r .spanId | sort | uniq -d)" = ""
'

test_expect_success 'chat spans: the provider, the server, tokens with the cached ones' '
  jq "[.resourceSpans[0].scopeSpans[0].spans[] | select(.name | startswith(\"chat \"))][0]
      | .attributes | map({(.key): (.value | to_entries[0].value)}) | add" trace.json >chat.json &&
  test "$(jq -r ".[\"gen_ai.operation.name\"]" chat.json)" = chat &&
  test "$(jq -r ".[\"gen_ai.provider.name\"]" chat.json)" = openai &&
  test "$(jq -r ".[\"gen_ai.request.model\"]" chat.json)" = gpt-4o-mini &&
  test "$(jq -r ".[\"gen_ai.response.model\"]" chat.json)" = gpt-4o-mini-2024-07-18 &&
  test "$(jq -r ".[\"gen_ai.usage.input_tokens\"]" chat.json)" = 1000 &&
  test "$(jq -r ".[\"gen_ai.usage.cache_read.input_tokens\"]" chat.json)" = 800 &&
  test "$(jq -r ".[\"gen_ai.usage.output_tokens\"]" chat.json)" = 100 &&
  test "$(jq -r ".[\"gen_ai.response.finish_reasons\"].values[0].stringValue" chat.json)" = tool_calls &&
  test "$(jq -r ".[\"gen_ai.conversation.id\"]" chat.json)" = "$id" &&
  test "$(jq -r ".[\"server.address\"]" chat.json)" = 127.0.0.1 &&
  test "$(jq -r ".[\"server.port\"]" chat.json)" = "$PORT" &&
  test "$(jq -r ".name" chat.json 2>/dev/null || true)" != x
'

test_expect_success 'the failing call is an error; the asked one waited for alice; the run'"'"'s moments' '
  spans() { jq -c ".resourceSpans[0].scopeSpans[0].spans[]" trace.json; } &&
  test "$(spans | jq -r "select(.status.code == 2) | .name")" = "execute_tool bash" &&
  spans | jq -r "select(.status.code == 2) | .attributes[] | select(.key == \"error.type\") | .value.stringValue" | grep -qx tool_error &&
  wait=$(spans | jq -c "select(.name == \"durin.approval bash\")") &&
  test -n "$wait" &&
  echo "$wait" | jq -r ".attributes[] | select(.key == \"durin.approval.decided_by\") | .value.stringValue" | grep -qx alice &&
  echo "$wait" | jq -r ".attributes[] | select(.key == \"durin.approval.state\") | .value.stringValue" | grep -qx approved &&
  spans | jq -r "select(.name == \"execute_tool bash\") | .events[]?.name" | grep -q durin.policy &&
  spans | jq -r "select(.name | startswith(\"durin.\")) | .name" >moments &&
  grep -qx durin.compaction moments && grep -qx durin.resumed moments &&
  test "$(spans | jq -r "select(.name == \"invoke_agent tracer\") | .status.code")" = 1
'

test_expect_success 'each model request carried its chat span as a W3C traceparent' '
  spans() { jq -c ".resourceSpans[0].scopeSpans[0].spans[]" trace.json; } &&
  trace=$(spans | jq -r .traceId | sort -u) &&
  spans | jq -r "select(.name | startswith(\"chat \")) | \"00-\(.traceId)-\(.spanId)-01\"" | sort -u >want.tp &&
  sed -n "s/.* | traceparent: \(.*\)$/\1/p" heads.log | sort -u >got.tp &&
  test -s want.tp &&
  comm -23 want.tp got.tp >missing.tp &&
  test ! -s missing.tp &&
  test -z "$(grep -v "^00-$trace-[0-9a-f]\{16\}-01$" got.tp)"
'

test_expect_success 'the same log, the same trace: ids are the run'"'"'s and the events'"'"'' '
  durin trace "$id" >again.json &&
  cmp trace.json again.json &&
  OTEL_SERVICE_NAME=agents OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci,team=a%2Cb" \
    durin trace "$id" >res.json &&
  test "$(jq -c "[.resourceSpans[0].resource.attributes[] | {(.key): .value.stringValue}] | add" res.json)" = \
    "{\"service.name\":\"agents\",\"deployment.environment\":\"ci\",\"team\":\"a,b\"}" &&
  OTEL_RESOURCE_ATTRIBUTES="team=b,service.name=from-attrs" durin trace "$id" >res2.json &&
  test "$(jq -c "[.resourceSpans[0].resource.attributes[] | {(.key): .value.stringValue}]" res2.json)" = \
    "[{\"service.name\":\"from-attrs\"},{\"team\":\"b\"}]" &&
  test "$(jq -c "[.resourceSpans[0].scopeSpans[0].spans[] | .spanId]" res.json)" = \
       "$(jq -c "[.resourceSpans[0].scopeSpans[0].spans[] | .spanId]" trace.json)"
'

test_expect_success 'content only when asked for' '
  ! grep -q "gen_ai.tool.call.arguments\|gen_ai.output.messages" trace.json &&
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true durin trace "$id" >content.json &&
  node "$CHECK" content.json >/dev/null &&
  grep -q "gen_ai.tool.call.arguments" content.json &&
  grep -q "gen_ai.output.messages" content.json &&
  grep -q "echo one" content.json
'

test_expect_success 'an unknown run: exit 5 with a message' '
  test_must_fail_with 5 durin trace r00000000000000000000 2>err.txt &&
  test -s err.txt
'

test_done
