#!/bin/sh
# Metrics over OTLP/HTTP: durin serve and durin worker push their metrics
# to a receiver of the tests' own (first down for a moment) with the
# OTEL_* variables every SDK reads. Each push is valid OTLP
# (tests/js/otlp-check.mjs: the protos, the data model, the GenAI
# conventions' names, units, attributes and advised buckets) and
# cumulative: a later push has every earlier one's totals. serve's pushes
# carry the store's counts as /metrics does; the sandbox's start is timed;
# a clean stop pushes once more; OTEL_METRICS_EXPORTER=none and
# OTEL_SDK_DISABLED=true send nothing.
. "$(dirname "$0")/lib-test.sh"

CHECK="$SRCDIR/tests/js/otlp-check.mjs"
PROM="$SRCDIR/tests/js/metrics-check.mjs"
[ -d "$SRCDIR/tests/js/node_modules/protobufjs" ] ||
  test_skip_all "protobufjs is not installed (make npm-deps)"
SANDBOX=
"$DURIN" sandbox -- true 2>/dev/null || SANDBOX="--sandbox none"

# spec NAME COMMAND: a scripted run that makes one bash call of COMMAND
# (asked about when it starts with touch), then finishes; usage each turn.
spec() {
  mkdir -p "$TRASH/ws-$1" &&
  cat >"$TRASH/$1.json" <<JSON
{"name": "$1", "goal": "g", "workspace": "$TRASH/ws-$1",
 "model": {"provider": "script", "name": "scripted-m",
   "price": {"input_per_mtok": 3, "output_per_mtok": 15},
   "turns": [
   {"usage": {"input_tokens": 1200, "output_tokens": 34},
    "tool_calls": [{"name": "bash", "arguments": {"command": "$2"}}]},
   {"usage": {"input_tokens": 1500, "output_tokens": 9},
    "tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash",
   "command_prefix": "touch", "action": "ask"}]}}
JSON
}

start_receiver() {
  rm -f port
  mkdir -p got/metrics
  node "$SRCDIR/tests/js/otlp-receiver.mjs" --dir got --port-file port "$@" >/dev/null 2>&1 &
  bg_pids="$bg_pids $!"
  wait_for 20 "test -s port"
}

# The pushes received, in order (the receiver numbers them).
pushes() { ls got/metrics/[0-9]*[0-9].json 2>/dev/null; }
last_push() { pushes | tail -n 1 | grep . || echo /dev/null; }
# point FILE METRIC [JQ-FILTER]: the first data point of METRIC in FILE
# whose attributes pass the filter, as JSON.
point() {
  jq -c --arg m "$2" "[.resourceMetrics[].scopeMetrics[].metrics[] | select(.name == \$m)
    | (.sum // .gauge // .histogram).dataPoints[]
    | select(.attributes | from_entries | with_entries(.value |= .stringValue) | ${3:-true})][0]" "$1"
}
# value FILE METRIC [FILTER]: a sum's or gauge's value, a histogram's count.
value() { point "$@" | jq -r 'if . == null then 0 else (.asDouble // (.count | tonumber)) end'; }
sandboxed() { test -z "$SANDBOX"; }
commits() { sql "select count(*) from (select distinct run_id, step from events) s"; }

export OTEL_EXPORTER_OTLP_HEADERS="x-team=agents,x-metrics=generic"
export OTEL_EXPORTER_OTLP_METRICS_HEADERS="x-metrics=m%20one"
export OTEL_SERVICE_NAME=durin-ci OTEL_RESOURCE_ATTRIBUTES="deployment.environment=ci"
export OTEL_METRIC_EXPORT_INTERVAL=200 OTEL_TRACES_EXPORTER=none

test_expect_success 'serve pushes to OTEL_EXPORTER_OTLP_ENDPOINT/v1/metrics; a collector down at first' '
  start_receiver --fail-first 2 &&
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat port)/" &&
  start_serve $SANDBOX &&
  spec ok "echo fine" && spec waits "touch a" &&
  a=$(durin submit "$TRASH/ok.json") &&
  c=$(durin submit --tenant acme "$TRASH/waits.json") &&
  wait_for 60 "test \"\$(status_of $a)\" = succeeded" &&
  wait_for 60 "test \"\$(status_of $c)\" = waiting_approval" &&
  grep -q "metrics: pushing to http://127.0.0.1:$(cat port)/v1/metrics every 200 ms" "$SERVE_LOG" &&
  wait_for 30 "test \"\$(value \$(last_push) durin.approvals.pending)\" = 1" &&
  grep -q "did not take the metrics (HTTP 503); the next push carries the totals" "$SERVE_LOG" &&
  grep -q "takes the metrics again" "$SERVE_LOG"
'

test_expect_success 'every push is valid OTLP, the conventions'"'"' metrics, cumulative from push to push' '
  node "$CHECK" $(pushes) >sum.json &&
  test "$(jq .pushes sum.json)" -ge 2 &&
  test "$(jq -r ".metrics[\"gen_ai.client.token.usage\"] | .type + \" \" + .unit" sum.json)" = "histogram {token}" &&
  test "$(jq -r ".metrics[\"gen_ai.client.operation.duration\"] | .type + \" \" + .unit" sum.json)" = "histogram s" &&
  test "$(jq -r ".metrics[\"durin.steps.committed\"].type" sum.json)" = sum &&
  test "$(jq -r ".metrics[\"durin.leases.held\"].type" sum.json)" = gauge
'

test_expect_success 'the resource and the headers asked for' '
  f=$(last_push) &&
  jq -r ".resourceMetrics[0].resource.attributes | from_entries | .[\"service.name\"].stringValue, .[\"deployment.environment\"].stringValue" "$f" >res.txt &&
  printf "durin-ci\nci\n" | diff - res.txt &&
  jq -r ".resourceMetrics[0].resource.attributes | from_entries | .[\"service.instance.id\"].stringValue" "$f" | grep -q ":$SERVE_PID\$" &&
  m=${f%.json}.meta.json &&
  test "$(jq -r .path "$m")" = /v1/metrics &&
  jq -r .contentType "$m" | grep -q "^application/json" &&
  test "$(jq -r ".headers[\"x-metrics\"]" "$m")" = "m one" &&
  test "$(jq -r ".headers[\"x-team\"]" "$m")" = agents
'

test_expect_success 'serve'"'"'s pushes carry the store'"'"'s counts, as /metrics does' '
  f=$(last_push) &&
  test "$(value "$f" durin.queue.depth ".tenant == \"acme\" and .status == \"waiting_approval\"")" = 1 &&
  test "$(value "$f" durin.approvals.pending ".tenant == \"acme\"")" = 1 &&
  test "$(value "$f" durin.store.up)" = 1 &&
  curl -sf "$API_DIRECT/metrics" >m.txt && node "$PROM" m.txt >m.json &&
  test "$(jq -r "[.durin_queue_depth.series[].value] | add" m.json)" = 1 &&
  test "$(jq -r "[.durin_approvals_pending.series[].value] | add" m.json)" = 1
'

if sandboxed; then
test_expect_success 'a sandboxed call'"'"'s start is timed, on /metrics and in OTLP' '
  f=$(last_push) &&
  test "$(value "$f" durin.sandbox.start.duration)" = 1 &&
  test "$(point "$f" durin.sandbox.start.duration | jq -r ".sum > 0")" = true &&
  test "$(jq -r ".durin_sandbox_start_duration_seconds.series[0].count" m.json)" = 1 &&
  test "$(jq -r ".durin_sandbox_start_duration_seconds.series[0].sum > 0" m.json)" = true
'
else
  test_skip 'a sandboxed call'"'"'s start is timed, on /metrics and in OTLP' 'this host cannot build the sandbox'
fi

test_expect_success 'cumulative: a push after a second run has both runs'"'"' totals' '
  before=$(last_push) &&
  calls=$(value "$before" durin.tool.call.duration) && test "$calls" = 1 &&
  steps=$(value "$before" durin.steps.committed) &&
  spec ok2 "echo again" &&
  b=$(durin submit "$TRASH/ok2.json") &&
  wait_for 60 "test \"\$(status_of $b)\" = succeeded" &&
  wait_for 30 "test \"\$(value \$(last_push) durin.steps.committed)\" = \"\$(commits)\"" &&
  after=$(last_push) &&
  test "$(value "$after" durin.tool.call.duration)" = 2 &&
  test "$(value "$after" durin.steps.committed)" -gt "$steps" &&
  test "$(point "$after" durin.steps.committed | jq -r .startTimeUnixNano)" = \
    "$(point "$before" durin.steps.committed | jq -r .startTimeUnixNano)" &&
  { ! sandboxed || test "$(value "$after" durin.sandbox.start.duration)" = 2; } &&
  node "$CHECK" $(pushes) >/dev/null
'

# (Whether a stop pushes once more is checked on a worker below, whose
# pushes are a minute apart: here one every 200 ms would hide it.)
test_expect_success 'serve stops cleanly; every push, the last included, valid and cumulative' '
  stop_serve &&
  test "$(value "$(last_push)" durin.steps.committed)" = "$(commits)" &&
  node "$CHECK" $(pushes) >/dev/null
'

spec ok3 "echo three"
test_expect_success 'worker: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT as is; the default interval; the last push at SIGTERM' '
  rm -f got/metrics/* &&
  unset OTEL_METRIC_EXPORT_INTERVAL &&
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9/nowhere \
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="http://127.0.0.1:$(cat port)/v1/metrics" &&
  d=$(durin submit "$TRASH/ok3.json") || return 1
  "$DURIN" worker --poll 50ms $SANDBOX >worker.log 2>&1 &
  wp=$! bg_pids="$bg_pids $!"
  wait_for 60 "test \"\$(status_of $d)\" = succeeded" &&
  grep -q "metrics: pushing to http://127.0.0.1:$(cat port)/v1/metrics every 60000 ms" worker.log &&
  n=$(pushes | wc -l) &&
  kill $wp && wait $wp &&
  test "$(pushes | wc -l)" -gt "$n" &&
  f=$(last_push) &&
  jq -r ".resourceMetrics[0].resource.attributes | from_entries | .[\"service.instance.id\"].stringValue" "$f" | grep -q ":$wp\$" &&
  test "$(value "$f" durin.steps.committed)" = "$(sql "select count(distinct step) from events where run_id = '"'"'$d'"'"'")" &&
  test "$(value "$f" gen_ai.client.token.usage ".\"gen_ai.token.type\" == \"input\"")" = 2 &&
  { ! sandboxed || test "$(value "$f" durin.sandbox.start.duration)" = 1; } &&
  node "$CHECK" "$f" >/dev/null
'

test_expect_success 'OTEL_METRICS_EXPORTER=none and OTEL_SDK_DISABLED=true: nothing sent' '
  for off in OTEL_METRICS_EXPORTER=none OTEL_SDK_DISABLED=true; do
    rm -f got/metrics/* &&
    e=$(durin submit "$TRASH/ok3.json") || return 1
    env "$off" "$DURIN" worker --poll 50ms $SANDBOX >off.log 2>&1 &
    wp=$! bg_pids="$bg_pids $!"
    wait_for 60 "test \"\$(status_of $e)\" = succeeded" &&
    kill $wp && wait $wp &&
    test -z "$(pushes)" && ! grep -q "metrics: pushing" off.log || return 1
  done
'

test_done
