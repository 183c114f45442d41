#!/bin/sh
# The HTTP API's runs over real HTTP on loopback: health, authentication,
# create (inline spec, idempotency keys, every kind of bad input), list
# (filters, keyset pages that hold under inserts), get, the event log in
# pages, cancel, pause and unpause, and resume with a resolution.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"
command -v curl >/dev/null && command -v jq >/dev/null ||
  test_skip_all "curl and jq are needed (make test installs them)"

# spec_body [EXTRA-TOP-LEVEL] [TURNS]: a create body with an inline spec.
spec_body() {
  turns=${2:-'{"tool_calls": [{"name": "write_file", "arguments": {"path": "hi.txt", "content": "hi"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}'}
  cat <<JSON
{"spec": {"name": "api", "goal": "write hi.txt",
  "tools": ["bash", "write_file", "finish"],
  "model": {"provider": "script", "turns": [$turns]}}${1:+, $1}}
JSON
}

# slow_turns N: N steps of a 0.3 s command, then finish.
slow_turns() {
  i=0
  while [ $i -lt "$1" ]; do
    printf '{"tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.3"}}]},'
    i=$((i + 1))
  done
  printf '{"tool_calls": [{"name": "finish", "arguments": {"summary": "slow"}}]}'
}

status_api() { api "$ADMIN" GET "/v1/runs/$1" >/dev/null && body_field .status; }

test_expect_success 'serve starts and answers health checks without a token' '
  ADMIN=$(make_token root admin) && OP=$(make_token ops operator) &&
  VIEW=$(make_token eyes viewer) && test -n "$ADMIN" &&
  start_serve --lease-ttl 2s --max-body 20000 &&
  test "$(api - GET /healthz)" = 200 &&
  test "$(api - GET /readyz)" = 200
'

test_expect_success 'no token, a wrong token and a revoked one are 401, the same way' '
  test "$(api - GET /v1/runs)" = 401 &&
  body_field .error.message | grep_q "Authorization: Bearer" &&
  test "$(api durin_nonsense GET /v1/runs)" = 401 &&
  msg1=$(body_field .error.message) &&
  gone=$(make_token gone viewer) && durin token revoke gone 2>/dev/null &&
  test "$(api "$gone" GET /v1/runs)" = 401 &&
  test "$(body_field .error.message)" = "$msg1"
'

test_expect_success 'a viewer reads but cannot create (403 naming the role)' '
  test "$(api "$VIEW" GET /v1/runs)" = 200 &&
  test "$(api "$VIEW" POST /v1/runs -d "$(spec_body)")" = 403 &&
  body_field .error.message | grep_q operator
'

test_expect_success 'an operator creates a run; it runs to the end in serve' '
  test "$(api "$OP" POST /v1/runs -d "$(spec_body "\"labels\": {\"team\": \"red\"}")")" = 201 &&
  id=$(body_field .id) && test "$(body_field .created_by)" = ops &&
  test "$(body_field .labels.team)" = red &&
  wait_for 30 "test \"\$(status_api $id)\" = succeeded" &&
  api "$VIEW" GET "/v1/runs/$id" >/dev/null &&
  test "$(body_field .summary)" = done &&
  test "$(body_field .usage.steps)" = 2 &&
  test "$(body_field .attempts)" = 1 &&
  test "$(body_field .lease)" = null
'

test_expect_success 'the run wrote its own workspace, and it comes back as an archive' '
  test "$(api "$VIEW" GET "/v1/runs/$id/workspace?format=tar")" = 200 &&
  tar -xOf "$TRASH/.body" ./hi.txt >got.txt 2>/dev/null ||
  tar -xOf "$TRASH/.body" hi.txt >got.txt &&
  test "$(cat got.txt)" = hi
'

test_expect_success 'bad input: invalid JSON 400, unknown field 400 with did-you-mean, oversized 413' '
  test "$(api "$OP" POST /v1/runs -d "{not json")" = 400 &&
  test "$(body_field .error.code)" = bad_json &&
  test "$(api "$OP" POST /v1/runs -d "{\"spek\": {}}")" = 400 &&
  body_field .error.message | grep_q "did you mean .spec." &&
  test "$(body_field .error.field)" = spek &&
  head -c 30000 /dev/zero | tr "\0" a >big.txt &&
  test "$(api "$OP" POST /v1/runs --data-binary @big.txt)" = 413 &&
  test "$(body_field .error.code)" = too_large
'

test_expect_success 'a bad spec is 422 with the message the CLI gives for it' '
  printf "{\"goal\": \"g\", \"model\": {\"provider\": \"script\", \"turns\": []}, \"tools\": [\"bash\"], \"budget\": {\"stepz\": 3}}" >bad.json &&
  test "$(api "$OP" POST /v1/runs -d "{\"spec\": $(cat bad.json)}")" = 422 &&
  test "$(body_field .error.code)" = bad_spec &&
  mkdir -p ws && jq ". + {workspace: \"ws\"}" bad.json >bad-cli.json &&
  test_must_fail durin submit bad-cli.json 2>cli.txt &&
  grep_q "$(body_field .error.message | sed "s/^bad spec: //")" cli.txt
'

test_expect_success 'a spec that names a host directory is refused, naming the field' '
  test "$(api "$OP" POST /v1/runs -d "{\"spec\": {\"goal\": \"g\", \"workspace\": \"/etc\", \"model\": {\"provider\": \"script\", \"turns\": []}}}")" = 422 &&
  test "$(body_field .error.field)" = spec.workspace
'

test_expect_success 'Idempotency-Key: a retried POST returns the run it made' '
  b=$(spec_body "\"not_before_ms\": 4000000000000") &&
  test "$(api "$OP" POST /v1/runs -H "Idempotency-Key: key-1" -d "$b")" = 201 &&
  first=$(body_field .id) &&
  test "$(api "$OP" POST /v1/runs -H "Idempotency-Key: key-1" -d "$b")" = 200 &&
  test "$(body_field .id)" = "$first" &&
  test "$(api "$OP" POST /v1/runs -H "Idempotency-Key: key-1" -d "$(spec_body "\"priority\": 3")")" = 422 &&
  test "$(body_field .error.code)" = idempotency_key_reused &&
  test "$(sql "select count(*) from idempotency where key = '\''key-1'\''")" = 1
'

test_expect_success 'list pages are stable while runs are created between them' '
  for i in 1 2 3 4 5; do
    api "$OP" POST /v1/runs -d "$(spec_body "\"not_before_ms\": 4000000000000, \"labels\": {\"batch\": \"p\"}")" >/dev/null || return 1
  done &&
  test "$(api "$VIEW" GET "/v1/runs?label=batch=p&limit=2")" = 200 &&
  body_field ".runs[].id" >page.txt && cur=$(body_field .next_cursor) &&
  test "$cur" != null &&
  api "$OP" POST /v1/runs -d "$(spec_body "\"not_before_ms\": 4000000000000, \"labels\": {\"batch\": \"p\"}")" >/dev/null &&
  while [ "$cur" != null ]; do
    api "$VIEW" GET "/v1/runs?label=batch=p&limit=2&cursor=$cur" >/dev/null &&
    body_field ".runs[].id" >>page.txt && cur=$(body_field .next_cursor) || return 1
  done &&
  test "$(wc -l <page.txt)" = 5 &&
  test "$(sort -u page.txt | wc -l)" = 5 &&
  sql "select id from runs r join run_labels l on l.run_id = r.id where l.key = '\''batch'\'' order by created_ms, id limit 5" | sort >want.txt &&
  sort page.txt | cmp - want.txt
'

test_expect_success 'filters: status, label, created range; a bad status is 400' '
  test "$(api "$VIEW" GET "/v1/runs?status=succeeded")" = 200 &&
  test "$(body_field "[.runs[].status] | unique | join(\",\")")" = succeeded &&
  test "$(api "$VIEW" GET "/v1/runs?label=team=red")" = 200 &&
  test "$(body_field ".runs | length")" = 1 &&
  test "$(api "$VIEW" GET "/v1/runs?created_after=4000000000000")" = 200 &&
  test "$(body_field ".runs | length")" = 0 &&
  test "$(api "$VIEW" GET "/v1/runs?status=done")" = 400 &&
  body_field .error.message | grep_q needs_human
'

test_expect_success 'the event log comes in pages by seq' '
  test "$(api "$VIEW" GET "/v1/runs/$id/events?limit=2")" = 200 &&
  test "$(body_field "[.events[].seq] | join(\",\")")" = 1,2 &&
  test "$(body_field .more)" = true && next=$(body_field .next_after) &&
  api "$VIEW" GET "/v1/runs/$id/events?after=$next&limit=1000" >/dev/null &&
  test "$(body_field ".events[0].seq")" = 3 &&
  test "$(body_field ".events[-1].type")" = run_finished &&
  test "$(body_field .more)" = false
'

test_expect_success 'cancel reaches a running run at its next step, and records who' '
  test "$(api "$OP" POST /v1/runs -d "$(spec_body "" "$(slow_turns 30)")")" = 201 &&
  slow=$(body_field .id) &&
  wait_for 30 "test \"\$(status_api $slow)\" = running" &&
  test "$(api "$OP" POST "/v1/runs/$slow/cancel")" = 202 &&
  wait_for 30 "test \"\$(status_api $slow)\" = cancelled" &&
  test "$(sql "select json_extract(data, '\''\$.by'\'') from events where run_id = '\''$slow'\'' and type = '\''control'\''")" = ops &&
  events_contiguous "$slow" &&
  test "$(api "$OP" POST "/v1/runs/$slow/cancel")" = 409
'

test_expect_success 'pause lets go of a running run; unpause queues it and it finishes' '
  test "$(api "$OP" POST /v1/runs -d "$(spec_body "" "$(slow_turns 6)")")" = 201 &&
  p=$(body_field .id) &&
  wait_for 30 "test \"\$(status_api $p)\" = running" &&
  test "$(api "$OP" POST "/v1/runs/$p/pause")" = 202 &&
  wait_for 30 "test \"\$(status_api $p)\" = paused" &&
  test "$(api "$OP" POST "/v1/runs/$p/unpause")" = 202 &&
  wait_for 60 "test \"\$(status_api $p)\" = succeeded" &&
  events_contiguous "$p"
'

test_expect_success 'resume: only a run that needs a human; a bad resolution is 400' '
  test "$(api "$OP" POST "/v1/runs/$id/resume")" = 409 &&
  test "$(api "$OP" POST "/v1/runs/$id/resume" -d "{\"resolution\": \"maybe\"}")" = 400 &&
  test "$(api "$OP" POST /v1/runs/rnosuchrun/cancel)" = 404 &&
  test "$(api "$OP" DELETE /v1/runs)" = 405 &&
  test "$(api "$OP" GET /v1/nothing)" = 404
'

# A crash inside an unsafe call leaves its outcome unknown: the run needs a
# human; the API's resume with a resolution hands it to serve's worker.
make_project
C="$TRASH/counters"
mkdir -p "$C"
cat >"$TRASH/unsafe.json" <<JSON
{"sandbox": {"rw": ["$C"]}, "goal": "g", "workspace": "project",
 "tools": ["bash", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo x >> $C/t1"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

test_expect_success 'resume with skip-call: the run ends without running the call again' '
  stop_serve &&
  env DURIN_CRASH_AT=tool_exit:1 "$DURIN" run unsafe.json >out.txt 2>&1;
  test $? = 137 && nh=$(run_id_of out.txt) &&
  test_must_fail_with 2 durin resume "$nh" >res.txt 2>&1 &&
  grep_q "outcome is unknown" res.txt &&
  test "$(status_of $nh)" = needs_human && start_serve &&
  test "$(api "$OP" POST "/v1/runs/$nh/resume" -d "{\"resolution\": \"skip-call\"}")" = 202 &&
  wait_for 30 "test \"\$(status_of $nh)\" = succeeded" &&
  test "$(wc -l <"$C/t1")" = 1 &&
  test "$(sql "select json_extract(data, '\''\$.resolution'\'') from events where run_id = '\''$nh'\'' and type = '\''control'\''")" = skip-call
'

test_expect_success 'a tenant token sees and touches only its tenant' '
  acme=$(make_token acme-op operator acme) &&
  test "$(api "$acme" POST /v1/runs -d "$(spec_body "\"not_before_ms\": 4000000000000")")" = 201 &&
  mine=$(body_field .id) && test "$(body_field .tenant)" = acme &&
  test "$(api "$acme" GET "/v1/runs/$id")" = 404 &&
  test "$(api "$acme" POST "/v1/runs/$id/cancel")" = 404 &&
  test "$(api "$acme" GET "/v1/runs/$id/events")" = 404 &&
  test "$(api "$acme" GET /v1/runs)" = 200 &&
  test "$(body_field "[.runs[].tenant] | unique | join(\",\")")" = acme &&
  test "$(api "$acme" POST /v1/runs -d "$(spec_body "\"tenant\": \"default\"")")" = 403 &&
  test "$(api "$VIEW" GET "/v1/runs/$mine")" = 200
'

test_expect_success 'per-token rate limits answer 429 with Retry-After' '
  stop_serve && start_serve --api-rate 1 || return 1
  # At once and straight to serve: 30 requests against a bucket of 10
  # that refills one a second.
  pids=""
  for i in $(seq 1 30); do
    curl -s -o /dev/null -w "%{http_code}\n" -H "Authorization: Bearer $VIEW" \
      "$API_DIRECT/v1/runs" >>codes.txt &
    pids="$pids $!"
  done
  # These pids only: a bare wait would wait for serve too.
  for p in $pids; do wait "$p"; done
  test "$(grep -c 200 codes.txt)" -ge 10 && grep_q 429 codes.txt &&
  curl -s -D - -o /dev/null -H "Authorization: Bearer $VIEW" "$API_DIRECT/v1/runs" | grep -i "^retry-after: [0-9]"
'

test_expect_success 'HTTPS with --tls-cert and --tls-key (GnuTLS); plain HTTP is refused there' '
  stop_serve &&
  openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem \
    -days 2 -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null &&
  start_serve --tls-cert cert.pem --tls-key key.pem &&
  grep_q "serving the API on https://" "$SERVE_LOG" &&
  https=$(sed -n "s|.*serving the API on \(https://[0-9.:]*\)/v1.*|\1|p" "$SERVE_LOG") &&
  test "$(curl -s --cacert cert.pem -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $VIEW" "$https/v1/runs")" = 200 &&
  test_must_fail curl -s -m 5 -o /dev/null "http://${https#https://}/healthz" &&
  stop_serve &&
  test_must_fail durin serve --listen 127.0.0.1:0 --tls-cert cert.pem 2>err.txt &&
  grep_q "tls-key" err.txt
'

test_expect_success '--no-auth serves loopback only and says so' '
  stop_serve &&
  test_must_fail durin serve --no-auth --listen 0.0.0.0:0 2>err.txt &&
  grep_q loopback err.txt &&
  start_serve --no-auth && grep_q "WITHOUT authentication" "$SERVE_LOG" &&
  test "$(api - GET /v1/runs)" = 200
'

# A web page the user visits may POST to 127.0.0.1 without asking, and a
# name rebound to 127.0.0.1 reads the answers: a serve without tokens
# takes neither. (Straight to the serve: prism sets Host and answers
# Origin itself.)
direct() { curl -s -o .body -w "%{http_code}" "$@"; }
test_expect_success '--no-auth: no request from another site, nor for another name' '
  test "$(direct -H "Origin: http://evil.example" -H "Content-Type: text/plain" \
      -d "{\"spec\": {}}" "$API_DIRECT/v1/runs")" = 403 &&
  grep_q "another site" .body &&
  test "$(direct -H "Host: rebound.example:80" "$API_DIRECT/v1/runs")" = 403 &&
  grep_q "loopback" .body &&
  test "$(direct -H "Origin: $API_DIRECT" "$API_DIRECT/v1/runs")" = 200 &&
  test "$(direct -H "Host: localhost" "$API_DIRECT/v1/runs")" = 200 &&
  test "$(sql "select count(*) from runs where created_by = '"'"'local'"'"'")" = 0 &&
  stop_serve
'

test_done
