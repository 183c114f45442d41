#!/bin/sh
# Workers export each run's trace over OTLP/HTTP from the durable log, past
# a cursor in the store: to a receiver of the tests' own (first down for a
# moment, then up), with the OTEL_* variables every SDK reads. Three runs:
# model calls and tool calls (one failing), and one that compacts its
# context and waits for an approval. A worker is SIGKILLed mid-run, once
# several rounds of a run's trace went out, and another finishes the runs
# and their export from the cursors (once the dead one's holds expired):
# every span of every run arrives once, as `durin trace` computes it,
# valid OTLP with the conventions' attributes, with the headers asked for.
. "$(dirname "$0")/lib-test.sh"

CHECK="$SRCDIR/tests/js/otlp-check.mjs"
[ -d "$SRCDIR/tests/js/node_modules/protobufjs" ] ||
  test_skip_all "protobufjs is not installed (make npm-deps)"
"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"
make_project

# A run of STEPS bash calls that each sleep a little, one failing, then
# finish; usage on each turn. The long one's trace goes out in several
# batches while it runs, across the kill.
spec() {
  turns=""
  i=0
  while [ $i -lt "$2" ]; do
    cmd="sleep 0.4; echo step $i"
    [ $i = 1 ] && cmd="echo broken >&2; exit 3"
    turns="$turns{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"$cmd\"}}],
      \"usage\": {\"input_tokens\": $((100 * (i + 1))), \"output_tokens\": 7}}, "
    i=$((i + 1))
  done
  cat >"$1" <<JSON
{"name": "exported", "goal": "g", "workspace": "project", "tools": ["bash", "finish"],
 "model": {"provider": "script", "turns": [$turns
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON
}

# A run that compacts its context (two big outputs) and waits for a
# person (a command the policy asks about) before it finishes.
spec_human() {
  big="head -c 120000 /dev/zero | tr \\\\0 o"
  cat >"$1" <<JSON
{"name": "asked", "goal": "g", "workspace": "project", "tools": ["bash", "finish"],
 "limits": {"output_bytes": 262144},
 "context": {"max_bytes": 100000, "max_messages": 4},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "$big"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "$big"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "touch approved"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON
}

start_receiver() {
  rm -f port
  node "$SRCDIR/tests/js/otlp-receiver.mjs" --dir got --port-file port "$@" >/dev/null 2>&1 &
  rp=$!
  bg_pids="$bg_pids $rp"
  wait_for 20 "test -s port"
}
# Sets $wp; a child of this shell, so `wait` waits for it.
start_worker() {
  "$DURIN" worker --lease-ttl 2s --poll 100ms >>workers.log 2>&1 &
  wp=$!
  bg_pids="$bg_pids $wp"
}
unfinished() {
  sql "select count(*) from runs where status not in ('succeeded', 'failed', 'cancelled', 'budget_exceeded', 'needs_human')"
}
# The span ids received, one per line (with repeats).
received() { cat got/[0-9]*[0-9].json 2>/dev/null | jq -r ".resourceSpans[].scopeSpans[].spans[].spanId"; }
roots_received() {
  cat got/[0-9]*[0-9].json 2>/dev/null |
    jq -r ".resourceSpans[].scopeSpans[].spans[] | select(.name | startswith(\"invoke_agent\")) | .spanId" | wc -l
}

test_expect_success 'workers export while a collector is down, then up; one is killed mid-run' '
  spec a.json 3 && spec b.json 12 && spec_human c.json &&
  jq -e . c.json >/dev/null &&
  start_receiver --fail-first 1 &&
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat port)" \
    OTEL_EXPORTER_OTLP_HEADERS="x-api-key=secret%20one,x-team=agents" \
    OTEL_EXPORTER_OTLP_TRACES_HEADERS="X-Team=traces" \
    OTEL_SERVICE_NAME=durin-ci OTEL_BSP_SCHEDULE_DELAY=100 &&
  a=$(durin submit a.json) && b=$(durin submit b.json) && c=$(durin submit c.json) &&
  start_worker && w1=$wp &&
  wait_for 60 "test \"\$(sql \"select count(*) from otel_cursor where run_id = '"'"'$b'"'"' and seq >= 20\")\" = 1" &&
  test "$(status_of $b)" = running &&
  kill -KILL $w1 && wait $w1 2>/dev/null;
  start_worker && w2=$wp &&
  wait_for 120 "test \"\$(status_of $c)\" = waiting_approval" &&
  ap=$(sql "select id from approvals where run_id = '"'"'$c'"'"'") &&
  DURIN_REVIEWER=alice durin approve "$ap" >/dev/null &&
  wait_for 120 "test \"\$(unfinished)\" = 0" &&
  test "$(status_of $a)" = succeeded && test "$(status_of $b)" = succeeded &&
  test "$(status_of $c)" = succeeded &&
  test "$(sql "select count(*) from events where run_id = '"'"'$c'"'"' and type = '"'"'compaction'"'"'")" -ge 1 &&
  wait_for 60 "test \"\$(roots_received)\" -ge 3" &&
  grep -q "traces: exporting to http://127.0.0.1:$(cat port)/v1/traces" workers.log &&
  grep -q "did not take" workers.log &&
  tb=$(durin trace $b | jq -r ".resourceSpans[0].scopeSpans[0].spans[0].traceId") &&
  test "$(grep -l "$tb" got/[0-9]*[0-9].json | wc -l)" -ge 2
'

test_expect_success 'every span arrives once, as durin trace computes it' '
  sleep 1 &&
  received | sort >got.ids &&
  test -s got.ids &&
  test -z "$(uniq -d got.ids)" &&
  { durin trace $a; durin trace $b; durin trace $c; } >/dev/null &&
  durin trace $c | jq -r ".resourceSpans[].scopeSpans[].spans[].name" >c.names &&
  grep -qx "durin.approval bash" c.names && grep -qx durin.compaction c.names &&
  for r in $a $b $c; do durin trace $r | jq -r ".resourceSpans[].scopeSpans[].spans[].spanId"; done | sort >want.ids &&
  diff -u want.ids got.ids
'

test_expect_success 'valid OTLP, the conventions'"'"' attributes, the service and headers asked for' '
  node "$CHECK" got/[0-9]*[0-9].json >sum.json &&
  test "$(jq ".traces | length" sum.json)" = 3 &&
  test "$(jq .names.invoke_agent sum.json)" = 3 &&
  test "$(jq .names.chat sum.json)" = "$(count_events model_response)" &&
  test "$(jq .names.execute_tool sum.json)" = "$(count_events tool_result)" &&
  jq -r ".resourceSpans[0].resource.attributes[] | select(.key == \"service.name\") | .value.stringValue" got/0001.json | grep -qx durin-ci &&
  jq -r .headers[\"x-api-key\"] got/0001.meta.json | grep -qx "secret one" &&
  jq -r .headers[\"x-team\"] got/0001.meta.json | grep -qx traces &&
  jq -r .contentType got/0001.meta.json | grep -q "^application/json" &&
  test "$(sql "select count(*) from otel_cursor where seq = (select last_seq from runs where id = run_id)")" = 3
'

test_expect_success 'nothing set, nothing sent' '
  kill $w2 && wait $w2 2>/dev/null;
  unset OTEL_EXPORTER_OTLP_ENDPOINT &&
  before=$(ls got | wc -l) &&
  c=$(durin submit a.json) &&
  start_worker && w3=$wp &&
  wait_for 60 "test \"\$(status_of $c)\" = succeeded" &&
  sleep 1 && kill $w3 && wait $w3 2>/dev/null;
  test "$(ls got | wc -l)" = "$before" &&
  ! grep -q "exporting to" workers.log.new 2>/dev/null
'

test_done
