#!/bin/sh
# Metrics: GET /metrics on serve and on `durin worker --metrics-listen`,
# read with a third-party Prometheus text-format parser
# (tests/js/metrics-check.mjs): histograms cumulative up to +Inf = _count,
# token usage and dollars as the store counts them, steps committed, the
# queue by tenant and status, one approval pending, a failed tool call's
# error.type, the sandbox's start for each sandboxed call, label values
# escaped.
. "$(dirname "$0")/lib-test.sh"

[ -d "$SRCDIR/tests/js/node_modules/parse-prometheus-text-format" ] ||
  test_skip_all "no tests/js/node_modules (make npm-deps)"
CHECK="$SRCDIR/tests/js/metrics-check.mjs"
SANDBOX=
"$DURIN" sandbox -- true 2>/dev/null || SANDBOX="--sandbox none"
TENANT='ac"me\x'

# spec NAME COMMAND: a scripted run that makes one bash call of COMMAND
# (asked about when it starts with touch), then finishes; each model turn
# reports usage, priced per million tokens.
spec() {
  mkdir -p "$TRASH/ws-$1" &&
  cat >"$TRASH/$1.json" <<JSON
{"name": "$1", "goal": "g", "workspace": "$TRASH/ws-$1",
 "model": {"provider": "script", "name": "scripted-m",
   "price": {"input_per_mtok": 3, "output_per_mtok": 15},
   "turns": [
   {"text": "t", "usage": {"input_tokens": 1200, "output_tokens": 34},
    "tool_calls": [{"name": "bash", "arguments": {"command": "$2"}}]},
   {"usage": {"input_tokens": 1500, "output_tokens": 9},
    "tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash",
   "command_prefix": "touch", "action": "ask"}]}}
JSON
}

# scrape URL: the answer in m.txt, checked and parsed into m.json.
scrape() {
  curl -sf -D hdr.txt "$1" >m.txt &&
  grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' hdr.txt &&
  node "$CHECK" m.txt >m.json
}

# total FAMILY [JQ-FILTER]: the sum of a counter's or gauge's series (or of a
# histogram's _sum) whose labels pass the filter.
total() {
  jq -r --arg f "$1" "[.[\$f].series[] | select(${2:-true}) | (.value // .sum)] | add // 0" m.json
}

# The waiting run's one model call is counted when it is made; the store
# adds its usage to the run only when the step commits, after the decision.
WAIT_IN=1200 WAIT_OUT=34 WAIT_USD=0.00411

# store_sum COLUMN [TENANT]: the column summed over the runs (of TENANT).
store_sum() {
  if [ $# -gt 1 ]; then
    sql "select coalesce(sum($1), 0) from runs where tenant = '$(printf %s "$2" | sed "s/'/''/g")'"
  else
    sql "select coalesce(sum($1), 0) from runs"
  fi
}
# commits: the step commits the store holds (one per step with events,
# while no approval has been decided).
commits() { sql "select count(*) from (select distinct run_id, step from events) s"; }
unfinished() {
  sql "select count(*) from runs where status not in ('succeeded', 'failed', 'cancelled', 'budget_exceeded')"
}
# tenant_cost T: dollars of tenant T in m.json.
tenant_cost() {
  jq -r --arg t "$1" '[.durin_model_cost_usd_total.series[] | select(.labels.tenant == $t) | .value] | add // 0' m.json
}
# same X Y: equal as numbers (to a nanodollar).
same() { awk -v x="$1" -v y="$2" 'BEGIN { d = x - y; exit !(d < 1e-9 && d > -1e-9) }'; }

test_expect_success 'serve: runs of two tenants, one failing a tool call, one waiting' '
  start_serve $SANDBOX &&
  spec ok "echo fine" && spec fails "exit 3" && spec waits "touch a" &&
  a=$(durin submit "$TRASH/ok.json") &&
  b=$(durin submit --tenant "$TENANT" "$TRASH/fails.json") &&
  c=$(durin submit --tenant "$TENANT" "$TRASH/waits.json") &&
  wait_for 60 "test \"\$(status_of $a)\" = succeeded" &&
  wait_for 60 "test \"\$(status_of $b)\" = succeeded" &&
  wait_for 60 "test \"\$(status_of $c)\" = waiting_approval"
'

test_expect_success 'GET /metrics: Prometheus text 0.0.4, histograms cumulative to +Inf = _count' '
  wait_for 10 "scrape $API_DIRECT/metrics && test \"\$(total durin_steps_committed_total)\" = \"\$(commits)\"" &&
  test "$(jq -r ".gen_ai_client_token_usage.type" m.json)" = HISTOGRAM &&
  test "$(jq -r ".gen_ai_client_operation_duration_seconds.type" m.json)" = HISTOGRAM &&
  grep -q "^# HELP gen_ai_client_token_usage " m.txt &&
  grep -q "^# TYPE durin_steps_committed_total counter" m.txt &&
  grep -q "le=\"67108864\"" m.txt && grep -q "le=\"81.92\"" m.txt
'

test_expect_success 'token usage: the sums are the store'"'"'s tokens, by type, with the conventions'"'"' attributes' '
  test "$(total gen_ai_client_token_usage ".labels.gen_ai_token_type == \"input\"")" = "$(($(store_sum input_tokens) + WAIT_IN))" &&
  test "$(total gen_ai_client_token_usage ".labels.gen_ai_token_type == \"output\"")" = "$(($(store_sum output_tokens) + WAIT_OUT))" &&
  test "$(jq -r "[.gen_ai_client_token_usage.series[].count] | add" m.json)" = "$((($(store_sum model_calls) + 1) * 2))" &&
  test "$(jq -r "[.gen_ai_client_token_usage.series[].labels | .gen_ai_operation_name + \" \" + .gen_ai_provider_name + \" \" + .gen_ai_request_model] | unique | .[]" m.json)" = "chat script scripted-m" &&
  test "$(jq -r "[.gen_ai_client_operation_duration_seconds.series[].count] | add" m.json)" = "$(($(store_sum model_calls) + 1))"
'

test_expect_success 'steps, queue depth by tenant and status, approvals pending, dollars by tenant' '
  test "$(total durin_steps_committed_total)" = "$(commits)" &&
  test "$(total durin_queue_depth ".labels.status == \"waiting_approval\"")" = 1 &&
  test "$(jq -r ".durin_queue_depth.series[] | select(.labels.status == \"waiting_approval\") | .labels.tenant" m.json)" = "$TENANT" &&
  test "$(total durin_queue_depth)" = "$(unfinished)" &&
  test "$(total durin_approvals_pending)" = 1 &&
  test "$(total durin_approvals_oldest_pending_age_seconds)" != 0 &&
  same "$(tenant_cost default)" "$(store_sum cost_usd default)" &&
  same "$(tenant_cost "$TENANT")" \
    "$(awk -v s="$(store_sum cost_usd "$TENANT")" -v w=$WAIT_USD "BEGIN { print s + w }")" &&
  test "$(jq -r ".durin_model_cost_usd_total.series[] | select(.labels.tenant == \"default\") | .labels.agent" m.json)" = ok
'

test_expect_success 'label values are escaped; the failed tool call has its error.type' '
  grep -qF "tenant=\"ac\\\"me\\\\x\"" m.txt &&
  test "$(jq -r "[.durin_tool_call_duration_seconds.series[] | select(.labels.error_type == \"tool_error\") | .count] | add" m.json)" = 1 &&
  test "$(jq -r "[.durin_tool_call_duration_seconds.series[] | select(.labels.error_type == null) | .count] | add" m.json)" = 1
'

if [ -z "$SANDBOX" ]; then
test_expect_success 'the sandbox'"'"'s start is timed for each sandboxed call' '
  test "$(jq -r ".durin_sandbox_start_duration_seconds.type" m.json)" = HISTOGRAM &&
  grep -q "^# HELP durin_sandbox_start_duration_seconds " m.txt &&
  test "$(jq -r "[.durin_tool_call_duration_seconds.series[] | select(.labels.sandboxed == \"true\") | .count] | add" m.json)" = 2 &&
  test "$(jq -r ".durin_sandbox_start_duration_seconds.series[0].count" m.json)" = 2 &&
  test "$(jq -r ".durin_sandbox_start_duration_seconds.series[0].sum > 0" m.json)" = true
'
else
  test_skip 'the sandbox'"'"'s start is timed for each sandboxed call' 'this host cannot build the sandbox'
fi

test_expect_success '/metrics needs no token and is in the API document (through the checking proxy)' '
  curl -sf "$API/metrics" >via-proxy.txt && grep -q "^durin_store_up 1" via-proxy.txt &&
  stop_serve
'

spec ok2 "echo fine"
"$DURIN" worker --poll 50ms $SANDBOX --metrics-listen 127.0.0.1:0 >worker.log 2>&1 &
WPID=$!
bg_pids="$bg_pids $WPID"

test_expect_success 'durin worker --metrics-listen 127.0.0.1:0: the port in its log, the same checks' '
  wait_for 30 "grep -q \"metrics on http\" worker.log" &&
  url=$(sed -n "s|.*metrics on \(http://[0-9.]*:[0-9]*/metrics\).*|\1|p" worker.log) &&
  d=$(durin submit "$TRASH/ok2.json") &&
  wait_for 60 "test \"\$(status_of $d)\" = succeeded" &&
  wait_for 10 "scrape $url && test \"\$(total durin_steps_committed_total)\" = 3" &&
  test "$(total gen_ai_client_token_usage ".labels.gen_ai_token_type == \"input\"")" = "$(col_of $d input_tokens)" &&
  same "$(total durin_model_cost_usd_total)" "$(col_of $d cost_usd)" &&
  test "$(total durin_approvals_pending)" = 1 &&
  test "$(total durin_queue_depth)" = "$(unfinished)" &&
  test "$(curl -s -o /dev/null -w "%{http_code}" "${url%/metrics}/v1/runs")" = 404 &&
  kill $WPID && wait $WPID
'

test_done
