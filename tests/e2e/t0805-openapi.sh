#!/bin/sh
# The API's OpenAPI document, server/openapi.json: lint-clean, served as
# GET /v1/openapi.json, and true to the server. Every answer below comes
# through prism's validating proxy (lib-test.sh's start_serve and api), so
# an answer the document does not describe fails its test: this script
# drives each endpoint of server/runs.c, hub.c and workspaces.c and each
# error status there. The last tests prove the check can fail: prism on a
# copy of the document with a field renamed flags the answer, and a test
# script that gets such an answer reports it not ok.
. "$(dirname "$0")/lib-test.sh"

CHECK=$SRCDIR/tests/js/openapi-check.sh
[ -d "$SRCDIR/tests/js/node_modules" ] ||
  test_skip_all "no tests/js/node_modules: run 'make npm-deps'"
"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox (durin serve needs it)"

# A run that finishes at once, one that stays in a tool call, and the
# bodies that create them.
cat >"$TRASH/quick.json" <<'JSON'
{"spec": {"goal": "quick", "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo hi > out.txt"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}},
 "labels": {"team": "qa"}}
JSON
slow_body() { # slow_body [EXTRA FIELDS]
  cat <<JSON
{"spec": {"goal": "slow", "budget": {"steps": 0}, "model": {"provider": "script", "turns": [
   {"repeat": 1000, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.2"}}]}]}}${1:+, $1}}
JSON
}
J='Content-Type: application/json'
hdr() { sed -n "s/^$1: *//Ip" "$TRASH/.headers" | tr -d '\r' | tail -n 1; }
err_code() { body_field .error.code; }

test_expect_success 'the document lints clean (redocly, recommended-strict)' '
  "$CHECK" lint "$SRCDIR/server/openapi.json" >lint.out 2>&1 || { cat lint.out; return 1; }
'

test_expect_success 'serve starts behind a prism proxy' '
  ADMIN=$(make_token root admin) && OP=$(make_token ops operator) &&
  VIEW=$(make_token eyes viewer) && ACME=$(make_token acme-op operator acme) &&
  start_serve &&
  test -n "$PRISM_PID" && test "$API" != "$API_DIRECT"
'

test_expect_success 'GET /v1/openapi.json is server/openapi.json, without a token' '
  test "$(api - GET /v1/openapi.json)" = 200 &&
  test "$(hdr Content-Type)" = application/json &&
  jq -S . "$SRCDIR/server/openapi.json" >want.json &&
  jq -S . "$TRASH/.body" >got.json &&
  cmp want.json got.json &&
  curl -sf "$API_DIRECT/v1/openapi.json" | cmp - "$SRCDIR/server/openapi.json"
'

test_expect_success 'healthz and readyz need no token' '
  test "$(api - GET /healthz)" = 200 && test "$(body_field .status)" = ok &&
  test "$(api - GET /readyz)" = 200 && test "$(body_field .status)" = ready
'

test_expect_success 'create: 201 with Location; the run finishes' '
  test "$(api $OP POST /v1/runs -H "$J" -d @quick.json)" = 201 &&
  Q=$(body_field .id) && test "$(hdr Location)" = "/v1/runs/$Q" &&
  test "$(body_field .labels.team)" = qa &&
  test "$(body_field .created_by)" = ops &&
  wait_for 60 "test \"\$(status_of $Q)\" = succeeded"
'

test_expect_success 'create with an Idempotency-Key: replayed 200, another body 422' '
  test "$(api $OP POST /v1/runs -H "Idempotency-Key: k1" -d @quick.json)" = 201 &&
  K=$(body_field .id) &&
  test "$(api $OP POST /v1/runs -H "Idempotency-Key: k1" -d @quick.json)" = 200 &&
  test "$(body_field .id)" = "$K" && test "$(hdr Idempotent-Replayed)" = true &&
  test "$(hdr Location)" = "/v1/runs/$K" &&
  slow_body >other.json &&
  test "$(api $OP POST /v1/runs -H "Idempotency-Key: k1" -d @other.json)" = 422 &&
  test "$(err_code)" = idempotency_key_reused
'

test_expect_success 'create with a dedupe_key: the active run, 200' '
  slow_body "\"dedupe_key\": \"nightly\", \"priority\": 3" >dd.json &&
  test "$(api $OP POST /v1/runs -H "$J" -d @dd.json)" = 201 && S=$(body_field .id) &&
  test "$(body_field .priority)" = 3 &&
  test "$(api $OP POST /v1/runs -H "$J" -d @dd.json)" = 200 &&
  test "$(body_field .id)" = "$S" &&
  wait_for 60 "test \"\$(status_of $S)\" = running"
'

test_expect_success 'get: the run with plan, summary, checks and keys' '
  test "$(api $VIEW GET /v1/runs/$Q)" = 200 &&
  test "$(body_field .status)" = succeeded &&
  test "$(body_field .summary)" = done &&
  test "$(body_field ".plan | type")" = array &&
  test "$(body_field .usage.steps)" -ge 2 &&
  test "$(api $VIEW GET /v1/runs/$S)" = 200 &&
  test "$(body_field .dedupe_key)" = nightly &&
  test "$(body_field .lease.owner | wc -c)" -gt 1
'

test_expect_success 'review: review.json, or REVIEW.md with Accept: text/markdown' '
  test "$(api $VIEW GET /v1/runs/$Q/review)" = 200 &&
  test "$(body_field .v)" = 1 && test "$(body_field .status)" = succeeded &&
  test "$(body_field .summary)" = done && test "$(body_field .terminal)" = true &&
  test "$(api $VIEW GET /v1/runs/$Q/review -H "Accept: text/markdown")" = 200 &&
  test "$(hdr Content-Type)" = "text/markdown; charset=utf-8" &&
  grep -q "^# Review of run $Q" "$TRASH/.body" &&
  test "$(api $VIEW GET /v1/runs/r0000nosuchrun/review)" = 404
'

test_expect_success 'list: pages by cursor, filters' '
  test "$(api $VIEW GET "/v1/runs?limit=1")" = 200 &&
  test "$(body_field ".runs | length")" = 1 &&
  c=$(body_field .next_cursor) && test "$c" != null &&
  test "$(api $VIEW GET "/v1/runs?limit=1&cursor=$c")" = 200 &&
  test "$(body_field ".runs | length")" = 1 &&
  test "$(api $VIEW GET "/v1/runs?status=succeeded,cancelled&label=team=qa")" = 200 &&
  test "$(body_field "[.runs[].status] | unique | join(\",\")")" = succeeded &&
  test "$(body_field .next_cursor)" = null &&
  test "$(api $VIEW GET "/v1/runs?created_after=1&tenant=default&agent=none")" = 200 &&
  test "$(body_field ".runs | length")" = 0
'

test_expect_success 'events: pages of the log' '
  test "$(api $VIEW GET "/v1/runs/$Q/events?limit=2")" = 200 &&
  test "$(body_field ".events | length")" = 2 && test "$(body_field .more)" = true &&
  test "$(body_field .next_after)" = 2 && test "$(body_field .run_status)" = succeeded &&
  test "$(api $VIEW GET "/v1/runs/$Q/events?after=2&limit=5000")" = 200 &&
  test "$(body_field .more)" = false &&
  test "$(body_field ".events[0].seq")" = 3
'

test_expect_success 'the stream of a finished run ends (so it passes through prism too)' '
  test "$(api $VIEW GET "/v1/runs/$Q/events/stream?after=1")" = 200 &&
  test "$(hdr Content-Type)" = text/event-stream &&
  grep_q "^event: end" "$TRASH/.body" && grep_q "^id: 2$" "$TRASH/.body" &&
  ! grep_q "^id: 1$" "$TRASH/.body" &&
  curl -sS --max-time 20 -H "Authorization: Bearer $VIEW" -H "Last-Event-ID: 3" \
    "$API_DIRECT/v1/runs/$Q/events/stream" >direct.sse &&
  grep_q "^id: 4$" direct.sse && grep_q "^event: end" direct.sse
'

test_expect_success 'the all-runs stream answers text/event-stream (directly: it never ends)' '
  curl -sS --max-time 2 -D st.h -o /dev/null -H "Authorization: Bearer $VIEW" \
    "$API_DIRECT/v1/events/stream?types=run_finished"; test $? = 28 &&
  grep -qi "^content-type: text/event-stream" st.h
'

test_expect_success 'controls: pause and unpause a queued run, cancel, then 409' '
  slow_body "\"not_before_ms\": 99999999999999" >later.json &&
  test "$(api $OP POST /v1/runs -H "$J" -d @later.json)" = 201 && L=$(body_field .id) &&
  test "$(api $OP POST /v1/runs/$L/pause)" = 202 && test "$(body_field .status)" = paused &&
  test "$(api $OP POST /v1/runs/$L/pause)" = 202 &&
  test "$(api $OP POST /v1/runs/$L/unpause)" = 202 && test "$(body_field .status)" != paused &&
  test "$(api $OP POST /v1/runs/$L/unpause)" = 409 && test "$(err_code)" = conflict &&
  test "$(api $OP POST /v1/runs/$L/resume)" = 409 &&
  test "$(api $OP POST /v1/runs/$S/cancel)" = 202 &&
  test "$(body_field .cancel_requested)" = true &&
  wait_for 60 "test \"\$(status_of $S)\" = cancelled" &&
  test "$(api $OP POST /v1/runs/$S/cancel)" = 409 &&
  test "$(api $OP POST /v1/runs/$L/cancel)" = 202
'

test_expect_success 'resume: a bad resolution is 400' '
  test "$(api $OP POST /v1/runs/$L/resume -d "{\"resolution\": \"maybe\"}")" = 400 &&
  test "$(body_field .error.field)" = resolution &&
  test "$(api $OP POST /v1/runs/$L/resume -d "{\"resolution\": \"skip-call\"}")" = 409
'

test_expect_success 'fork and continue: 409 without git checkpoints or when not ended, 422, 400, 202' '
  test "$(api $OP POST /v1/runs/$Q/fork -H "$J" -d "{\"at_step\": 1}")" = 409 &&
  test "$(err_code)" = conflict &&
  test "$(api $OP POST /v1/runs/$Q/fork -H "$J" -d "{\"at_step\": 9}")" = 422 &&
  test "$(api $OP POST /v1/runs/$Q/fork -H "$J" -d "{\"at_step\": \"one\"}")" = 400 &&
  test "$(body_field .error.field)" = at_step &&
  test "$(api $OP POST /v1/runs/$Q/fork -H "$J" -d "{}")" = 400 &&
  test "$(api $OP POST /v1/runs/$L/continue -H "$J" -d "{\"message\": \"more\"}")" = 409 &&
  test "$(api $OP POST /v1/runs/$Q/continue -H "$J" -d "{\"message\": \"\"}")" = 400 &&
  test "$(body_field .error.field)" = message &&
  test "$(api $OP POST /v1/runs/$Q/continue -H "$J" -d "{\"mesage\": \"x\"}")" = 400 &&
  test "$(api $OP POST /v1/runs/$Q/continue -H "$J" -d "{\"message\": \"say hi again\", \"add_steps\": 1}")" = 202 &&
  test "$(body_field .id)" = "$Q" &&
  wait_for 60 "test \"\$(status_of $Q)\" != queued && test \"\$(status_of $Q)\" != running"
'

test_expect_success 'workspaces: upload an archive, run in it, download it' '
  mkdir -p ws && echo "seed" >ws/seed.txt && tar czf ws.tgz -C ws . &&
  test "$(api $OP POST /v1/workspaces --data-binary @ws.tgz -H "Content-Type: application/gzip")" = 201 &&
  U=$(body_field .id) && test "$(body_field .bytes)" = "$(wc -c <ws.tgz)" &&
  jq ". + {workspace: {upload: \"$U\"}}" quick.json >wsrun.json &&
  test "$(api $OP POST /v1/runs -H "$J" -d @wsrun.json)" = 201 && W=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $W)\" = succeeded" &&
  test "$(api $VIEW GET /v1/runs/$W/workspace)" = 200 &&
  test "$(hdr Content-Type)" = application/gzip &&
  tar tzf "$TRASH/.body" >list.txt && grep_q seed.txt list.txt && grep_q out.txt list.txt &&
  test "$(api $VIEW GET "/v1/runs/$W/workspace?format=tar")" = 200 &&
  test "$(hdr Content-Type)" = application/x-tar && tar tf "$TRASH/.body" | grep_q out.txt &&
  test "$(api $VIEW GET "/v1/runs/$W/workspace?format=zip")" = 400 &&
  test "$(api $OP POST /v1/runs -H "$J" -d @wsrun.json)" = 422 &&
  test "$(body_field .error.field)" = workspace.upload &&
  echo "not an archive" >junk.bin &&
  test "$(api $OP POST /v1/workspaces --data-binary @junk.bin)" = 422 &&
  test "$(err_code)" = bad_archive &&
  test "$(api $OP POST /v1/workspaces)" = 400
'

test_expect_success '400: bad JSON (with and without a JSON Content-Type), unknown and bad fields, bad queries' '
  test "$(api $OP POST /v1/runs -d "{bad")" = 400 && test "$(err_code)" = bad_json &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{bad")" = 400 && test "$(err_code)" = bad_json &&
  test "$(api $OP POST /v1/runs -d "[1]")" = 400 &&
  test "$(api $OP POST /v1/runs)" = 400 && test "$(err_code)" = bad_request &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"spek\": {}}")" = 400 &&
  test "$(err_code)" = unknown_field && test "$(body_field .error.field)" = spek &&
  body_field .error.message | grep_q "did you mean .spec." &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"priority\": \"high\"}")" = 400 &&
  test "$(err_code)" = bad_field &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"labels\": {\"a\": 1}}")" = 400 &&
  test "$(api $VIEW GET "/v1/runs?limit=0")" = 400 && test "$(err_code)" = bad_query &&
  test "$(api $VIEW GET "/v1/runs?status=bogus")" = 400 &&
  test "$(api $VIEW GET "/v1/runs?cursor=x")" = 400 &&
  test "$(api $VIEW GET "/v1/runs?created_before=yesterday")" = 400 &&
  test "$(api $VIEW GET "/v1/runs/$Q/events?limit=0")" = 400 &&
  test "$(api $VIEW GET "/v1/runs/$Q/events/stream?after=x")" = 400
'

test_expect_success '401: no token, a bad token' '
  test "$(api - GET /v1/runs)" = 401 && test "$(err_code)" = unauthorized &&
  test "$(hdr WWW-Authenticate)" = Bearer &&
  test "$(api durin_nope GET /v1/runs/$Q)" = 401 &&
  test "$(api - POST /v1/runs -d @quick.json)" = 401 &&
  test "$(api - GET /v1/runs/$Q/workspace)" = 401
'

test_expect_success '403: a viewer creates, a tenant token names another tenant' '
  test "$(api $VIEW POST /v1/runs -H "$J" -d @quick.json)" = 403 &&
  test "$(err_code)" = forbidden &&
  test "$(api $VIEW POST /v1/runs/$Q/cancel)" = 403 &&
  test "$(api $VIEW POST /v1/workspaces --data-binary @ws.tgz)" = 403 &&
  jq ". + {tenant: \"other\"}" quick.json >other-tenant.json &&
  test "$(api $ACME POST /v1/runs -H "$J" -d @other-tenant.json)" = 403 &&
  test "$(body_field .error.field)" = tenant &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"spec\": {\"goal\": \"g\"}, \"workspace\": {\"dir\": \"/tmp\"}}")" = 403
'

test_expect_success '404: unknown run, another tenant'"'"'s run, unknown path' '
  test "$(api $VIEW GET /v1/runs/r00000000000000000000)" = 404 && test "$(err_code)" = not_found &&
  test "$(api $ACME GET /v1/runs/$Q)" = 404 &&
  test "$(api $ACME GET /v1/runs/$Q/events)" = 404 &&
  test "$(api $VIEW GET /v1/runs/nope/workspace)" = 404 &&
  test "$(api $OP POST /v1/runs/nope/cancel)" = 404 &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"agent\": \"nobody\"}")" = 404 &&
  test "$(api $VIEW GET /v1/nothing/here)" = 404 && test "$(err_code)" = not_found &&
  test "$(api - GET /nope)" = 404
'

test_expect_success '405: a method the path does not take, with Allow' '
  test "$(api $OP DELETE /v1/runs)" = 405 && test "$(err_code)" = method_not_allowed &&
  test "$(hdr Allow)" = "POST, GET" &&
  test "$(api - POST /healthz)" = 405 &&
  test "$(api $OP PUT /v1/runs/$Q)" = 405
'

test_expect_success '413: a JSON body over --max-body' '
  head -c 1100000 /dev/zero | tr "\0" a >big.txt &&
  test "$(api $OP POST /v1/runs -d @big.txt)" = 413 && test "$(err_code)" = too_large
'

test_expect_success '422: bad spec, spec naming a workspace' '
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"spec\": {\"goal\": 1}}")" = 422 &&
  test "$(err_code)" = bad_spec &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"spec\": {\"goal\": \"g\", \"workspace\": \"/etc\"}}")" = 422 &&
  test "$(err_code)" = spec_policy && test "$(body_field .error.field)" = spec.workspace &&
  test "$(api $OP POST /v1/runs -H "$J" -d "{\"spec\": {\"goal\": \"g\"}, \"workspace\": {\"upload\": \"ws_0\"}}")" = 422
'

test_expect_success '429 with Retry-After past --api-rate' '
  stop_serve && start_serve --api-rate 1 &&
  n=0 got=""
  while [ $n -lt 30 ]; do
    s=$(api $VIEW GET "/v1/runs?limit=1") || return 1
    [ "$s" = 429 ] && { got=1; break; }
    n=$((n + 1))
  done
  test -n "$got" && test "$(err_code)" = rate_limited &&
  test "$(hdr Retry-After)" -ge 1
'

# ---- the check can fail ----

# The document with Run's "status" renamed "state" (a required field the
# server does not send, and one it sends that Run does not allow), and
# getRun without its 404.
jq '.components.schemas.Run.properties.state = .components.schemas.Run.properties.status
  | del(.components.schemas.Run.properties.status)
  | .components.schemas.Run.required |= map(if . == "status" then "state" else . end)
  | del(.paths["/v1/runs/{id}"].get.responses["404"])' \
  "$SRCDIR/server/openapi.json" >"$TRASH/broken.json"
jq '.security += [{}]' "$TRASH/broken.json" >"$TRASH/broken-prism.json"

test_expect_success 'prism on a document with a field renamed flags the answer' '
  bp=$(PRISM_OPTS=--validate-request=false "$CHECK" proxy broken-prism.json "$API_DIRECT" 0 broken.log) &&
  bg_pids="$bg_pids $bp" && bport=$("$CHECK" port broken.log) &&
  s=$(curl -sS -w "%{http_code}" -D b.h -o b.body -H "Authorization: Bearer $OP" "http://127.0.0.1:$bport/v1/runs?limit=1") &&
  test "$s" = 500 &&
  test_must_fail "$CHECK" check-response b.h b.body >why.txt && cat why.txt &&
  grep -i "^sl-violations:" b.h | grep_q "state" &&
  grep -i "^sl-violations:" b.h | grep_q "\"severity\":\"Error\"" &&
  s=$(curl -sS -w "%{http_code}" -D c.h -o c.body -H "Authorization: Bearer $OP" "http://127.0.0.1:$bport/v1/runs/r00000000000000000000") &&
  test "$s" = 404 &&
  grep -i "^sl-violations:" c.h | grep_q "\"severity\":\"Warning\"" &&
  s=$(curl -sS -w "%{http_code}" -D d.h -o d.body "http://127.0.0.1:$bport/healthz") && test "$s" = 200 &&
  "$CHECK" check-response d.h d.body &&
  kill $bp
'

# A test script of its own on the broken document: the calls that get an
# answer off it fail their tests, though their status checks pass.
cat >"$TRASH/nested.sh" <<'EOF'
. "$SRCDIR/tests/e2e/lib-test.sh"
test_expect_success 'serve' 'T=$(make_token t operator) && start_serve'
test_expect_success 'create a run (a body off the schema)' '
  test "$(api $T POST /v1/runs -d "{\"spec\": {\"goal\": \"g\", \"model\": {\"provider\": \"script\",
    \"turns\": [{\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {}}]}]}}}")" = 500'
test_expect_success 'get a missing run (a status not declared)' '
  test "$(api $T GET /v1/runs/r00000000000000000000)" = 404'
test_expect_success 'healthz (conforms)' 'test "$(api - GET /healthz)" = 200'
test_done
EOF

test_expect_success 'a test that gets an answer off the document is not ok' '
  OPENAPI_DOC="$TRASH/broken.json" DURIN_TEST_STORE= sh nested.sh >nested.out 2>&1
  rc=$?
  cat nested.out
  rm -rf "$(sed -n "s/^# kept \(.*\) for inspection$/\1/p" nested.out)"
  test $rc = 1 &&
  grep_q "^ok 1 - serve" nested.out &&
  grep_q "^not ok 2 - create a run" nested.out &&
  grep_q "^not ok 3 - get a missing run" nested.out &&
  grep_q "^ok 4 - healthz" nested.out &&
  grep_q "POST /v1/runs -> 500: .*state" nested.out &&
  grep_q "GET /v1/runs/r00000000000000000000 -> 404: .*Warning" nested.out
'

test_done
