#!/bin/sh
# What the dashboard asks of the API, which any client may ask too: who a
# token is (GET /v1/whoami), a run's limits beside its usage (budget), its
# steps at a glance (GET /v1/runs/ID/timeline: the log folded per step,
# with policy decisions, approval waits, marks and running totals, in
# pages of whole steps), each worker's rate-limit state, and the
# dashboard's own files (served without a token, with a strict CSP and
# ETags).
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox (serve takes no runs without it)"

start_serve --rate-limit openai:600:100000
ADMIN=$(make_token boss admin)
OPS=$(make_token ops-alice operator)
VIEWER=$(make_token watcher viewer)
ACME=$(make_token acme-viewer viewer acme)

post() { api "$1" POST "$2" -H 'Content-Type: application/json' -d "$3"; }

test_expect_success '/healthz says requests need a token' '
  test "$(api "" GET /healthz)" = 200 &&
  test "$(body_field .auth)" = true
'

test_expect_success 'whoami names the token, its role and tenant' '
  test "$(api $VIEWER GET /v1/whoami)" = 200 &&
  test "$(body_field .name)" = watcher &&
  test "$(body_field .role)" = viewer &&
  test "$(body_field .tenant)" = null &&
  test "$(body_field .auth)" = true &&
  test "$(api $ACME GET /v1/whoami)" = 200 &&
  test "$(body_field .tenant)" = acme &&
  test "$(api $OPS GET /v1/whoami)" = 200 &&
  test "$(body_field .role)" = operator &&
  test "$(api "" GET /v1/whoami)" = 401
'

# A run that asks before its first call, then makes two steps of plan
# updates with usage, then finishes.
cat >run.json <<'JSON'
{"spec": {"goal": "make the file",
 "budget": {"steps": 40, "dollars": 2.5, "wall_clock_s": 600},
 "model": {"provider": "script", "turns": [
   {"text": "making the file", "tool_calls": [{"name": "bash", "arguments": {"command": "touch a"}}],
    "usage": {"input_tokens": 100, "output_tokens": 10}},
   {"tool_calls": [{"name": "update_plan", "arguments": {"plan": [{"step": "make it", "status": "done"}]}}],
    "usage": {"input_tokens": 200, "output_tokens": 20}},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}],
    "usage": {"input_tokens": 300, "output_tokens": 30}}]},
 "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]}}}
JSON

test_expect_success 'a run shows its limits beside its usage' '
  test "$(post $OPS /v1/runs "$(cat run.json)")" = 201 &&
  id=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $id)\" = waiting_approval" &&
  test "$(api $VIEWER GET /v1/runs/$id)" = 200 &&
  test "$(body_field .budget.steps)" = 40 &&
  test "$(body_field .budget.dollars)" = 2.5 &&
  test "$(body_field .budget.wall_clock_s)" = 600 &&
  test "$(body_field .budget.tokens)" = null &&
  test "$(body_field .budget.tool_calls)" = null
'

test_expect_success 'the timeline of a waiting run: the call waits, its approval pending' '
  test "$(api $VIEWER GET /v1/runs/$id/timeline)" = 200 &&
  test "$(body_field .run)" = "$id" &&
  test "$(body_field .status)" = waiting_approval &&
  test "$(body_field ".steps[0].step")" = 0 &&
  test "$(body_field ".steps[0].marks[0].type")" = run_started &&
  test "$(body_field ".steps[1].model")" = null &&
  test "$(body_field ".steps[1].calls[0].name")" = bash &&
  test "$(body_field ".steps[1].calls[0].ok")" = null &&
  test "$(body_field ".steps[1].calls[0].policy.decision")" = ask &&
  test "$(body_field ".steps[1].calls[0].policy.rule")" = spec:ask-touch &&
  test "$(body_field ".steps[1].calls[0].approval.state")" = pending &&
  test "$(body_field ".steps[1].calls[0].approval.wait_ms")" = null
'

test_expect_success 'after the decision: the wait, who decided, each step and running totals' '
  a=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  test "$(post $OPS /v1/approvals/$a/approve "{}")" = 200 &&
  wait_for 60 "test \"\$(status_of $id)\" = succeeded" &&
  test "$(api $VIEWER GET /v1/runs/$id/timeline)" = 200 &&
  test "$(body_field ".steps | map(.step) | join(\",\")")" = 0,1,2,3 &&
  test "$(body_field ".steps[1].calls[0].ok")" = true &&
  test "$(body_field ".steps[1].calls[0].approval.state")" = approved &&
  test "$(body_field ".steps[1].calls[0].approval.by")" = ops-alice &&
  test "$(body_field ".steps[1].calls[0].approval.wait_ms >= 0")" = true &&
  test "$(body_field ".steps[1].model.text")" = "making the file" &&
  test "$(body_field ".steps[1].model.duration_ms >= 0")" = true &&
  test "$(body_field ".steps[1].marks | map(.type) | index(\"resumed\") != null")" = true &&
  test "$(body_field ".steps | map(.tokens) | join(\",\")")" = 0,110,330,660 &&
  test "$(body_field ".steps[2].marks[0].text")" = "plan: 1 of 1 done" &&
  test "$(body_field ".steps[3].calls[0].name")" = finish &&
  test "$(body_field ".steps[3].marks[-1].type")" = run_finished &&
  test "$(body_field ".steps[3].last_seq")" = "$(body_field .last_seq)" &&
  test "$(body_field .more)" = false &&
  test "$(body_field ".steps | map(.duration_ms >= 0) | all")" = true &&
  test "$(body_field ".[\"steps\"][1:] | map(.start_ms) | join(\",\")")" = \
       "$(body_field ".[\"steps\"][:-1] | map(.end_ms) | join(\",\")")"
'

test_expect_success 'pages hold whole steps and carry the running totals on' '
  test "$(api $VIEWER GET "/v1/runs/$id/timeline?limit=2")" = 200 &&
  test "$(body_field ".steps | map(.step) | join(\",\")")" = 0,1 &&
  test "$(body_field .more)" = true &&
  next=$(body_field .next_after) &&
  test "$next" = "$(body_field ".steps[1].last_seq")" &&
  test "$(api $VIEWER GET "/v1/runs/$id/timeline?limit=2&after=$next")" = 200 &&
  test "$(body_field ".steps | map(.step) | join(\",\")")" = 2,3 &&
  test "$(body_field ".steps[0].first_seq")" = $((next + 1)) &&
  test "$(body_field ".steps | map(.tokens) | join(\",\")")" = 330,660 &&
  test "$(body_field .more)" = false
'

test_expect_success "a follower's next ask, from its last step, has the same totals" '
  test "$(api $VIEWER GET /v1/runs/$id/timeline)" = 200 &&
  full=$(jq -c ".steps[-1:]" .body) &&
  from=$(body_field ".steps[-1].first_seq - 1") &&
  for i in 1 2; do
    test "$(api $VIEWER GET "/v1/runs/$id/timeline?after=$from")" = 200 &&
    test "$(jq -c .steps .body)" = "$full" || return 1
  done &&
  test "$(api $VIEWER GET "/v1/runs/$id/timeline?after=$((from + 1))")" = 200 &&
  test "$(body_field ".steps[0].step")" = 3 &&
  test "$(body_field ".steps[0].tokens")" = 660
'

test_expect_success 'bad timeline queries are 400; another tenant sees no run' '
  test "$(api $VIEWER GET "/v1/runs/$id/timeline?limit=0")" = 400 &&
  test "$(api $VIEWER GET "/v1/runs/$id/timeline?limit=5001")" = 400 &&
  test "$(api $VIEWER GET "/v1/runs/$id/timeline?after=-1")" = 400 &&
  test "$(api $ACME GET /v1/runs/$id/timeline)" = 404 &&
  test "$(api $VIEWER GET /v1/runs/r00000000000000000000/timeline)" = 404
'

test_expect_success "a run shows its last checks (and a run without checks none)" '
  test "$(post $OPS /v1/runs "{\"spec\": {\"goal\": \"g\",
    \"checks\": [{\"name\": \"fails-first\", \"run\": \"test -e again || { touch again; exit 1; }\"}],
    \"model\": {\"provider\": \"script\", \"turns\": [
      {\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"one\"}}]},
      {\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"two\"}}]}]}}}")" = 201 &&
  cid=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $cid)\" = succeeded" &&
  test "$(api $VIEWER GET /v1/runs/$cid)" = 200 &&
  test "$(body_field .checks.passed)" = true &&
  test "$(body_field .checks.attempt)" = 2 &&
  test "$(body_field ".checks.results[0].name")" = fails-first &&
  test "$(api $VIEWER GET /v1/runs/$id)" = 200 &&
  test "$(body_field .checks)" = null
'

test_expect_success 'the model response records how long the call took' '
  test "$(api $VIEWER GET "/v1/runs/$id/events")" = 200 &&
  test "$(body_field "[.events[] | select(.type == \"model_response\") | .data.duration_ms >= 0] | all")" = true
'

test_expect_success "a worker's rate limits are in the roll call" '
  wait_for 30 "api $VIEWER GET /v1/workers >/dev/null && test \"\$(body_field \".workers[0].info.rate_limits | length\")\" = 1" &&
  test "$(body_field ".workers[0].info.rate_limits[0].provider")" = openai &&
  test "$(body_field ".workers[0].info.rate_limits[0].rpm")" = 600 &&
  test "$(body_field ".workers[0].info.rate_limits[0].tpm")" = 100000 &&
  test "$(body_field ".workers[0].info.rate_limits[0].requests_left")" = 600 &&
  test "$(body_field ".workers[0].info.rate_limits[0].blocked_until_ms")" = null
'

test_expect_success "a run created with a traceparent joins the caller's trace" '
  tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 &&
  test "$(api $OPS POST /v1/runs -H "traceparent: $tp" -H "Content-Type: application/json" \
    -d "{\"spec\": {\"name\": \"joined\", \"goal\": \"g\", \"model\": {\"provider\": \"script\",
      \"turns\": [{\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"ok\"}}]}]}}}")" = 201 &&
  jid=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $jid)\" = succeeded" &&
  durin trace $jid >joined.json &&
  test "$(jq -r "[.resourceSpans[0].scopeSpans[0].spans[].traceId] | unique | .[]" joined.json)" = 4bf92f3577b34da6a3ce929d0e0e4736 &&
  test "$(jq -r ".resourceSpans[0].scopeSpans[0].spans[] | select(.name == \"invoke_agent joined\") | .parentSpanId" joined.json)" = 00f067aa0ba902b7 &&
  test "$(api $OPS POST /v1/runs -H "traceparent: 00-nothex-01" -H "Content-Type: application/json" \
    -d "{\"spec\": {\"goal\": \"g\", \"model\": {\"provider\": \"script\", \"turns\": []}}}")" = 422 &&
  grep -q "traceparent" .body
'

test_expect_success 'the dashboard: served without a token, strict, revalidated by ETag' '
  curl -s -D h1 -o index.html "$API_DIRECT/" &&
  grep -q "^HTTP/1.1 200" h1 &&
  grep -qi "^content-type: text/html" h1 &&
  grep -qi "^content-security-policy: default-src .none.; script-src .self.;" h1 &&
  grep -qi "^x-content-type-options: nosniff" h1 &&
  cmp index.html "$SRCDIR/web/index.html" &&
  etag=$(sed -n "s/^[Ee][Tt][Aa][Gg]: *\(.*\)\r$/\1/p" h1) &&
  test -n "$etag" &&
  test "$(curl -s -o /dev/null -w "%{http_code}" -H "If-None-Match: $etag" "$API_DIRECT/")" = 304 &&
  curl -s -D h2 -o app.js "$API_DIRECT/ui/app.js" &&
  grep -qi "^content-type: text/javascript" h2 &&
  cmp app.js "$SRCDIR/web/app.js" &&
  test "$(curl -s -o /dev/null -w "%{http_code}" "$API_DIRECT/ui/nothing.js")" = 404 &&
  test "$(curl -s -o /dev/null -w "%{http_code}" "$API_DIRECT/ui/../openapi.json")" = 404
'

test_done
