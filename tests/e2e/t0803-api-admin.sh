#!/bin/sh
# The API's administration: agents (a spec per tenant and name, a new
# version for each change, pinned by the runs made from it), tokens
# (created, listed without their secret, revoked), the queue's limits,
# and the roll call of workers. Reading is a viewer's, writing an
# admin's, and a tenant's token sees nothing of other tenants.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox (serve takes no runs without it)"

mkdir -p "$TRASH/root/tmpl" "$TRASH/outside"
start_serve --workspace-root "$TRASH/root"
ADMIN=$(make_token boss admin)
VIEWER=$(make_token watcher viewer)
ACME=$(make_token acme-admin admin acme)

# agent_body GOAL [EXTRA]: a PUT body; the script model finishes at once.
agent_body() {
  cat <<JSON
{"spec": {"goal": "$1",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}
 ${2-}}}
JSON
}
put_agent() { api "$1" PUT "/v1/agents/$2${4-}" -d "$3"; }

test_expect_success 'an agent is registered: version 1, then 2, then unchanged' '
  test "$(put_agent $ADMIN a "$(agent_body "first goal")")" = 201 &&
  test "$(body_field .version)" = 1 &&
  test "$(body_field .name)" = a &&
  test "$(body_field .tenant)" = default &&
  test "$(body_field .created_by)" = boss &&
  test "$(body_field ".created_ms > 0")" = true &&
  test "$(put_agent $ADMIN a "$(agent_body "second goal")")" = 201 &&
  test "$(body_field .version)" = 2 &&
  test "$(put_agent $ADMIN a "$(agent_body "second goal")")" = 200 &&
  test "$(body_field .version)" = 2 &&
  grep -q "agent .a. (tenant default): version 2 by token .boss." "$SERVE_LOG"
'

test_expect_success 'the same spec with its keys in another order is unchanged' '
  test "$(put_agent $ADMIN a "{\"spec\": {\"model\": {\"turns\": [{\"tool_calls\": [{\"arguments\": {\"summary\": \"done\"}, \"name\": \"finish\"}]}], \"provider\": \"script\"}, \"goal\": \"second goal\"}}")" = 200 &&
  test "$(body_field .version)" = 2
'

test_expect_success 'GET gives an agent with its spec, any version' '
  test "$(api $VIEWER GET /v1/agents/a)" = 200 &&
  test "$(body_field .version)" = 2 &&
  test "$(body_field .spec.goal)" = "second goal" &&
  test "$(api $VIEWER GET "/v1/agents/a?version=1")" = 200 &&
  test "$(body_field .spec.goal)" = "first goal" &&
  test "$(api $VIEWER GET "/v1/agents/a?version=9")" = 404 &&
  test "$(api $VIEWER GET "/v1/agents/a?version=x")" = 400 &&
  test "$(api $VIEWER GET /v1/agents/nope)" = 404 &&
  test "$(api $VIEWER GET /v1/agents)" = 200 &&
  test "$(body_field ".agents | length")" = 1 &&
  test "$(body_field ".agents[0].version")" = 2 &&
  test "$(body_field ".agents[0].spec")" = null
'

test_expect_success 'a bad spec is refused before it is stored (422, as the CLI says it)' '
  test "$(put_agent $ADMIN a "{\"spec\": {\"goal\": \"g\", \"model\": {\"provider\": \"script\", \"turns\": []}, \"budget\": {\"stepz\": 3}}}")" = 422 &&
  test "$(body_field .error.code)" = bad_spec &&
  body_field .error.message | grep -q "^bad spec: " &&
  test "$(put_agent $ADMIN a "{\"spec\": {\"model\": {\"provider\": \"script\", \"turns\": []}}}")" = 422 &&
  body_field .error.message | grep -q "goal" &&
  test "$(put_agent $ADMIN a "{\"spec\": \"text\"}")" = 400 &&
  test "$(put_agent $ADMIN a "{\"spek\": {}}")" = 400 &&
  test "$(body_field .error.field)" = spek &&
  test "$(api $VIEWER GET /v1/agents/a)" = 200 &&
  test "$(body_field .version)" = 2
'

test_expect_success 'an agent name is [A-Za-z0-9._-]{1,64}' '
  test "$(put_agent $ADMIN "a%20b" "$(agent_body g)")" = 400 &&
  test "$(body_field .error.field)" = name &&
  long=$(printf "%065d" 0) &&
  test "$(put_agent $ADMIN "$long" "$(agent_body g)")" = 400 &&
  test "$(put_agent $ADMIN "v1.2_x-y" "$(agent_body g)")" = 201
'

test_expect_success 'an agent workspace must be under the workspace root' '
  test "$(put_agent $ADMIN w "$(agent_body g ", \"workspace\": \"$TRASH/outside\"")")" = 422 &&
  test "$(body_field .error.field)" = spec.workspace &&
  ln -s "$TRASH/outside" "$TRASH/root/escape" &&
  test "$(put_agent $ADMIN w "$(agent_body g ", \"workspace\": \"$TRASH/root/escape\"")")" = 422 &&
  test "$(body_field .error.field)" = spec.workspace &&
  test "$(put_agent $ADMIN w "$(agent_body g ", \"workspace\": \"$TRASH/root/../outside\"")")" = 422 &&
  test "$(put_agent $ADMIN w "$(agent_body g ", \"workspace\": \"tmpl\"")")" = 201 &&
  test "$(body_field .version)" = 1 &&
  api $ADMIN GET /v1/agents/w >/dev/null &&
  test "$(body_field .spec.workspace)" = "$(cd "$TRASH/root/tmpl" && pwd -P)"
'

test_expect_success 'a run pins the version it names, or the latest' '
  test "$(api $ADMIN POST /v1/runs -d "{\"agent\": \"a\", \"agent_version\": 1}")" = 201 &&
  r1=$(body_field .id) &&
  test "$(api $ADMIN POST /v1/runs -d "{\"agent\": \"a\"}")" = 201 &&
  r2=$(body_field .id) &&
  test "$(api $VIEWER GET /v1/runs/$r1)" = 200 &&
  test "$(body_field .agent)" = a &&
  test "$(body_field .agent_version)" = 1 &&
  test "$(api $VIEWER GET /v1/runs/$r2)" = 200 &&
  test "$(body_field .agent_version)" = 2 &&
  sql "select spec from run_specs where run_id = '"'"'$r1'"'"'" | grep -q "first goal" &&
  sql "select spec from run_specs where run_id = '"'"'$r2'"'"'" | grep -q "second goal"
'

test_expect_success 'overrides do not change an agent workspace' '
  test "$(api $ADMIN POST /v1/runs -d "{\"agent\": \"w\", \"overrides\": {\"workspace\": \"$TRASH/outside\"}}")" = 422 &&
  test "$(body_field .error.field)" = overrides.workspace
'

test_expect_success 'a viewer reads agents but may not write them (403)' '
  test "$(put_agent $VIEWER a "$(agent_body "viewer goal")")" = 403 &&
  test "$(body_field .error.code)" = forbidden &&
  test "$(api - PUT /v1/agents/a -d "$(agent_body g)")" = 401
'

test_expect_success 'a tenant token sees its tenant agents only' '
  test "$(put_agent $ACME b "$(agent_body "acme goal")")" = 201 &&
  test "$(body_field .tenant)" = acme &&
  test "$(api $ACME GET /v1/agents/a)" = 404 &&
  test "$(api $ACME GET "/v1/agents/a?tenant=default")" = 404 &&
  test "$(api $ACME GET /v1/agents/b)" = 200 &&
  test "$(api $ACME GET /v1/agents)" = 200 &&
  test "$(body_field "[.agents[].name] | join(\",\")")" = b &&
  test "$(put_agent $ACME c "$(agent_body g)" "?tenant=default")" = 403 &&
  test "$(api $ADMIN GET /v1/agents/b)" = 404 &&
  test "$(api $ADMIN GET "/v1/agents/b?tenant=acme")" = 200 &&
  test "$(api $ADMIN GET /v1/agents)" = 200 &&
  test "$(body_field ".agents | length")" = 4 &&
  test "$(api $ADMIN GET "/v1/agents?tenant=acme")" = 200 &&
  test "$(body_field ".agents | length")" = 1 &&
  test "$(put_agent $ADMIN d "$(agent_body g)" "?tenant=other")" = 201 &&
  test "$(body_field .tenant)" = other
'

test_expect_success 'tokens: created (shown once), listed without secrets, revoked' '
  test "$(api $ADMIN POST /v1/tokens -d "{\"name\": \"ci\", \"role\": \"operator\"}")" = 201 &&
  CI=$(body_field .token) &&
  case $CI in durin_*) ;; *) return 1 ;; esac &&
  test "$(body_field .name)" = ci &&
  test "$(body_field .role)" = operator &&
  test "$(body_field .tenant)" = null &&
  test "$(body_field .revoked_ms)" = null &&
  test "$(api $CI GET /v1/runs)" = 200 &&
  test "$(api $ADMIN POST /v1/tokens -d "{\"name\": \"ci\", \"role\": \"viewer\"}")" = 409 &&
  test "$(api $ADMIN POST /v1/tokens -d "{\"name\": \"x\", \"role\": \"king\"}")" = 400 &&
  test "$(body_field .error.field)" = role &&
  test "$(api $ADMIN GET /v1/tokens)" = 200 &&
  test "$(body_field "[.tokens[].name] | join(\",\")")" = "boss,watcher,acme-admin,ci" &&
  ! grep -q "$CI" "$TRASH/.body" &&
  ! grep -q "hash" "$TRASH/.body" &&
  test "$(api $ADMIN DELETE /v1/tokens/ci)" = 204 &&
  test "$(api $CI GET /v1/runs)" = 401 &&
  test "$(api $ADMIN DELETE /v1/tokens/ci)" = 404 &&
  test "$(api $ADMIN GET /v1/tokens)" = 200 &&
  test "$(body_field ".tokens[] | select(.name == \"ci\") | .revoked_ms > 0")" = true &&
  grep -q "token .ci. (operator, tenant \*) created by token .boss." "$SERVE_LOG" &&
  grep -q "token .ci. revoked by token .boss." "$SERVE_LOG"
'

test_expect_success 'a tenant admin makes and sees tokens of its tenant only' '
  test "$(api $ACME POST /v1/tokens -d "{\"name\": \"acme-ci\", \"role\": \"viewer\"}")" = 201 &&
  test "$(body_field .tenant)" = acme &&
  AV=$(body_field .token) &&
  test "$(api $ACME POST /v1/tokens -d "{\"name\": \"wide\", \"role\": \"admin\", \"tenant\": \"other\"}")" = 403 &&
  test "$(api $ACME GET /v1/tokens)" = 200 &&
  test "$(body_field "[.tokens[].name] | join(\",\")")" = "acme-admin,acme-ci" &&
  test "$(api $ACME DELETE /v1/tokens/watcher)" = 404 &&
  test "$(api $VIEWER GET /v1/tokens)" = 403 &&
  test "$(api $AV GET /v1/agents/b)" = 200 &&
  test "$(api $ACME DELETE /v1/tokens/acme-ci)" = 204 &&
  test "$(api $AV GET /v1/agents/b)" = 401
'

test_expect_success 'limits: set, listed, removed; a tenant token reads its own' '
  test "$(api $ADMIN PUT /v1/limits/tenant:acme -d "{\"max\": 3}")" = 200 &&
  test "$(body_field .max)" = 3 &&
  test "$(api $ADMIN PUT /v1/limits/key:repo1 -d "{\"max\": 1}")" = 200 &&
  test "$(api $VIEWER GET /v1/limits)" = 200 &&
  test "$(body_field "[.limits[] | \"\(.scope)=\(.max)\"] | join(\",\")")" = "key:repo1=1,tenant:acme=3" &&
  durin limits --json >l && grep -q "\"scope\":\"tenant:acme\"" l &&
  test "$(api $ACME GET /v1/limits)" = 200 &&
  test "$(body_field "[.limits[].scope] | join(\",\")")" = tenant:acme &&
  test "$(api $ACME PUT /v1/limits/tenant:acme -d "{\"max\": 9}")" = 403 &&
  test "$(api $VIEWER PUT /v1/limits/tenant:acme -d "{\"max\": 9}")" = 403 &&
  test "$(api $ADMIN PUT /v1/limits/bogus -d "{\"max\": 1}")" = 400 &&
  test "$(body_field .error.field)" = scope &&
  test "$(api $ADMIN PUT /v1/limits/key:repo1 -d "{\"max\": \"1\"}")" = 400 &&
  test "$(api $ADMIN PUT /v1/limits/key:repo1 -d "{\"max\": null}")" = 200 &&
  test "$(body_field .max)" = null &&
  test "$(api $ADMIN PUT /v1/limits/tenant:acme -d "{\"max\": -1}")" = 200 &&
  test "$(api $VIEWER GET /v1/limits)" = 200 &&
  test "$(body_field ".limits | length")" = 0 &&
  grep -q "limit tenant:acme: 3 by token .boss." "$SERVE_LOG" &&
  grep -q "limit key:repo1: removed by token .boss." "$SERVE_LOG"
'

test_expect_success 'workers: the serve answers the roll call with a recent heartbeat' '
  test "$(api $VIEWER GET /v1/workers)" = 200 &&
  test "$(body_field "[.workers[] | select(.kind == \"serve\")] | length")" = 1 &&
  test "$(body_field ".workers[0].heartbeat_age_ms < 15000")" = true &&
  test "$(body_field ".workers[0].beat_ms >= .workers[0].started_ms")" = true &&
  test "$(body_field ".workers[0].max_runs")" = 1000 &&
  test "$(body_field ".workers[0].info.lease_ttl_ms")" = 15000 &&
  test "$(body_field ".workers[0].held | type")" = number &&
  test -n "$(body_field ".workers[0].owner")"
'

test_expect_success 'the runs made from agents finish' '
  wait_for 60 "test \"\$(status_of $r1)\" = succeeded && test \"\$(status_of $r2)\" = succeeded"
'

test_expect_success 'the serve stops cleanly, its sanitizers silent' '
  stop_serve &&
  ! grep -E "Sanitizer|runtime error" "$SERVE_LOG"
'

test_done
