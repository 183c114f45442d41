#!/bin/sh
# Who may call what, for every operation of the API, read from the
# document durin serve publishes (GET /v1/openapi.json): its paths, each
# operation's `security` (none: public) and `x-durin-role` (the least role
# that may call it, as the route tables of server/*.c say). For each one:
#
#   no token              401 with WWW-Authenticate (public ones: 200)
#   viewer                403 on everything above viewer (every non-GET is)
#   operator              403 on the admin-only ones
#   exactly its role      allowed: 2xx, or 409 for a control the state refuses
#   tenant B's admin      404 on tenant A's runs, approvals, agents, tokens,
#                         webhooks; never an object of tenant A in an answer
#
# Path parameters are filled with real ids the test makes: a run of tenant
# A waiting for an approval (and tenant B's own run), an agent, a
# webhook, a token. Requests that change state (cancel, decide, delete)
# go to throwaway objects of tenant A, so a check that wrongly passed
# cannot disturb the others. Every answer goes through prism (lib-test's
# api), so each is also checked against the document. An operation of the
# document that some check did not exercise fails the last test, and one
# the test does not know how to call (a new kind of path parameter, a
# body it has none for) fails the first check that meets it.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox (serve takes no runs without it)"
command -v jq >/dev/null && command -v curl >/dev/null ||
  test_skip_all "curl and jq are needed (make test installs them)"

J='Content-Type: application/json'
# A name no other token has, for the tokens the matrix creates (a file:
# requests are made in subshells).
next_name() {
  _n=$(($(cat "$TRASH/names" 2>/dev/null || echo 0) + 1))
  echo "$_n" >"$TRASH/names"
  echo "matrix-$_n"
}

# run_body FILE TENANT [ask]: a POST /v1/runs body; with "ask" the run's
# one bash call waits for a person, else the run finishes at once.
run_body() {
  if [ "${3-}" = ask ]; then
    calls='{"tool_calls": [{"name": "bash", "arguments": {"command": "touch x"}}]},'
  else
    calls=''
  fi
  cat >"$TRASH/$1" <<JSON
{"spec": {"goal": "matrix", "model": {"provider": "script", "turns": [$calls
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
  "policy": {"rules": [{"name": "ask-touch", "tool": "bash", "command_prefix": "touch", "action": "ask"}]}}${2:+, \"tenant\": \"$2\"}}
JSON
}

# waiting_run TENANT: a run of TENANT that waits for an approval; prints
# "RUN APPROVAL".
waiting_run() {
  run_body w.json "$1" ask &&
  test "$(api "$ADMIN" POST /v1/runs -H "$J" --data-binary @"$TRASH/w.json")" = 201 &&
  _r=$(body_field .id) &&
  wait_for 60 "test \"\$(status_of $_r)\" = waiting_approval" &&
  _a=$(sql "select id from approvals where run_id = '$_r'") &&
  test -n "$_a" && echo "$_r $_a"
}

# schedule_body NAME [TENANT]: a POST /v1/schedules body, a daily tick.
schedule_body() {
  cat <<JSON
{"name": "$1", "cron": "0 3 * * *", "tz": "Europe/Berlin"${2:+, \"tenant\": \"$2\"},
 "spec": {"goal": "matrix", "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}}
JSON
}

# ---- the operations and how to call them ----

# The operations of the served document, one a line:
# METHOD PATH ROLE PUBLIC(yes|no) STREAM(yes|no).
ops_of() {
  jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[]
    | select(.key | IN("get", "put", "post", "delete", "patch"))
    | [(.key | ascii_upcase), $p, (.value["x-durin-role"] // "missing"),
       (if .value.security == [] then "yes" else "no" end),
       (if (.value.responses["200"].content // {} | has("text/event-stream"))
        then "yes" else "no" end)] | join(" ")' "$1"
}

# param_of PATH SET: the value of PATH's parameter from SET: "main" (the
# objects of tenant A the reads look at) or "throw" (the throwaway ones of
# tenant A that state-changing requests go to); nothing for a path without
# one. Fails for a parameter it does not know.
param_of() {
  case $1 in
  /v1/runs/\{*) eval echo "\$${2}_run" ;;
  /v1/approvals/\{*) eval echo "\$${2}_approval" ;;
  /v1/webhooks/\{*) eval echo "\$${2}_webhook" ;;
  /v1/tokens/\{*) eval echo "\$${2}_token" ;;
  /v1/secrets/\{*) eval echo "\$${2}_secret" ;;
  /v1/triggers/\{*) eval echo "\$${2}_trigger" ;;
  /v1/schedules/\{*) eval echo "\$${2}_schedule" ;;
  /v1/agents/\{*) echo "$AGENT" ;;
  /v1/limits/\{*) echo tenant:ta ;;
  /ui/\{*) echo app.js ;;
  *\{*)
    echo "param_of: no id for the parameter of $1: teach t0807 the new resource" >&2
    return 1
    ;;
  esac
}

# fill PATH SET: PATH with its parameter filled (param_of); an agent is
# looked for in tenant A (a token of no tenant acts in "default").
fill() {
  _v=$(param_of "$1" "$2") || return 1
  _q=""
  case $1 in /v1/agents/\{* | /v1/secrets/\{* | /v1/schedules/\{*) _q="?tenant=ta" ;; esac
  printf '%s%s\n' "$(printf '%s\n' "$1" | sed "s|{[^}]*}|$_v|")" "$_q"
}

# body_of METHOD PATH: writes the request body of the operation to
# $TRASH/req.body and its Content-Type to $TRASH/req.type ("-": no body).
# An unknown operation that takes a body fails: teach it here.
body_of() {
  echo "$J" >"$TRASH/req.type"
  case "$1 $2" in
  GET\ * | DELETE\ * | "POST /v1/runs/{id}/cancel" | "POST /v1/runs/{id}/pause" | \
    "POST /v1/runs/{id}/unpause" | "POST /v1/schedules/{name}/pause" | \
    "POST /v1/schedules/{name}/resume")
    echo - >"$TRASH/req.type" ;;
  "POST /v1/runs") cp "$TRASH/quick.json" "$TRASH/req.body" ;;
  "POST /v1/runs/{id}/resume") echo '{}' >"$TRASH/req.body" ;;
  "POST /v1/runs/{id}/fork") echo '{"at_step": 0}' >"$TRASH/req.body" ;;
  "POST /v1/runs/{id}/continue") echo '{"message": "matrix"}' >"$TRASH/req.body" ;;
  "POST /v1/workspaces")
    cp "$TRASH/ws.tar.gz" "$TRASH/req.body"
    echo "Content-Type: application/gzip" >"$TRASH/req.type" ;;
  "POST /v1/approvals/{id}/approve") echo '{"comment": "matrix"}' >"$TRASH/req.body" ;;
  "POST /v1/approvals/{id}/reject") echo '{"reason": "matrix"}' >"$TRASH/req.body" ;;
  "PUT /v1/agents/{name}") cp "$TRASH/agent.json" "$TRASH/req.body" ;;
  "POST /v1/tokens") echo "{\"name\": \"$(next_name)\", \"role\": \"viewer\"}" >"$TRASH/req.body" ;;
  "PUT /v1/limits/{scope}") echo '{"max": null}' >"$TRASH/req.body" ;;
  "PUT /v1/secrets/{name}") echo '{"value": "matrix-value-1"}' >"$TRASH/req.body" ;;
  "POST /v1/triggers")
    echo "{\"name\": \"$(next_name)\", \"kind\": \"github\", \"secret\": \"MATRIX_HOOK\", \"spec\": $(jq -c .spec "$TRASH/agent.json")}" >"$TRASH/req.body" ;;
  "POST /v1/triggers/{name}")
    echo '{"action": "opened", "sender": {"login": "matrix"}}' >"$TRASH/req.body" ;;
  "POST /v1/schedules") schedule_body "$(next_name)" >"$TRASH/req.body" ;;
  "POST /v1/webhooks")
    echo '{"url": "http://127.0.0.1:9/matrix", "events": ["approval.decided"]}' >"$TRASH/req.body" ;;
  *)
    echo "body_of: no request body for $1 $2: teach t0807 the new operation" >&2
    return 1
    ;;
  esac
}

# call TOKEN METHOD PATH SET STREAM: the operation's request; prints the
# status (the answer is in $TRASH/.body and .headers, as api leaves
# them). A stream that would stay open (STREAM=open) is read from the
# serve for 2 s (prism passes a stream on only when it ends); any other
# goes through prism with a time limit, so a stream answered 200 by
# mistake fails instead of hanging.
call() {
  _t=$1 _m=$2 _p=$3
  _url=$(fill "$_p" "$4") || return 1
  body_of "$_m" "$_p" || return 1
  if [ "$5" = open ]; then
    curl -s -m 2 -o "$TRASH/.body" -D "$TRASH/.headers" -w '%{http_code}' \
      -H "Authorization: Bearer $_t" "$API_DIRECT$_url"
    return 0
  fi
  # A trigger's delivery, signed (MATRIX_SIGN=1) with the trigger's
  # secret, goes to serve itself: the signature is over the body's bytes,
  # which a proxy may re-encode. Its answer is checked offline.
  if [ "$_m $_p" = "POST /v1/triggers/{name}" ]; then
    _sig=$(openssl dgst -sha256 -hmac "value-of-$4-a-and-long-enough" <"$TRASH/req.body" | sed "s/^.*= //")
    _api_m=$_m _api_path=$_url
    if [ "${MATRIX_SIGN-}" = 1 ]; then
      api_curl_ "$API_DIRECT" -m 20 -H "$J" -H "X-GitHub-Event: ping" \
        -H "X-GitHub-Delivery: matrix-$(next_name)" \
        -H "X-Hub-Signature-256: sha256=$_sig" --data-binary @"$TRASH/req.body"
    else
      api_curl_ "$API_DIRECT" -m 20 -H "$J" -H "Authorization: Bearer $_t" \
        --data-binary @"$TRASH/req.body"
    fi
    api_check_offline_
    return 0
  fi
  if [ "$(cat "$TRASH/req.type")" = - ]; then
    api "$_t" "$_m" "$_url" -m 20
  else
    api "$_t" "$_m" "$_url" -m 20 -H "$(cat "$TRASH/req.type")" \
      --data-binary @"$TRASH/req.body"
  fi
}

# Each check records the operations it exercised.
exercised() { echo "$1 $2 $3" >>"$TRASH/exercised"; }
hdr() { sed -n "s/^$1: *//Ip" "$TRASH/.headers" | tr -d '\r' | tail -n 1; }
# fail MSG: says which operation failed how, and fails.
fail() { echo "FAIL: $*"; return 1; }

# ---- the setup ----

# The vault's operations need a master key.
DURIN_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export DURIN_MASTER_KEY

test_expect_success 'serve, tokens of each role, tenant A objects and throwaways' '
  start_serve &&
  ADMIN=$(make_token root admin) && OPER=$(make_token ops operator) &&
  VIEW=$(make_token eyes viewer) && B=$(make_token b-admin admin tb) &&
  test -n "$ADMIN" && test -n "$OPER" && test -n "$VIEW" && test -n "$B" &&
  run_body quick.json "" &&
  mkdir -p ws && echo hi >ws/f && tar -czf ws.tar.gz -C ws f &&
  set -- $(waiting_run ta) && main_run=$1 main_approval=$2 &&
  set -- $(waiting_run ta) && throw_run=$1 throw_approval=$2 &&
  set -- $(waiting_run tb) && B_RUN=$1 &&
  AGENT=agent-a &&
  printf "%s\n" "{\"spec\": {\"goal\": \"agent of A\", \"model\": {\"provider\": \"script\", \"turns\": [{\"tool_calls\": [{\"name\": \"finish\", \"arguments\": {\"summary\": \"done\"}}]}]}}}" >agent.json &&
  test "$(api "$ADMIN" PUT "/v1/agents/$AGENT?tenant=ta" -H "$J" --data-binary @agent.json)" = 201 &&
  for w in main throw; do
    test "$(api "$ADMIN" POST /v1/webhooks -H "$J" -d "{\"url\": \"http://127.0.0.1:9/$w\", \"events\": [\"approval.decided\"], \"tenant\": \"ta\"}")" = 201 &&
    eval "${w}_webhook=\$(body_field .id)" || return 1
    test "$(api "$ADMIN" POST /v1/tokens -H "$J" -d "{\"name\": \"$w-a\", \"role\": \"viewer\", \"tenant\": \"ta\"}")" = 201 &&
    eval "${w}_token=$w-a" || return 1
    test "$(api "$ADMIN" PUT "/v1/secrets/SECRET_${w}_TA?tenant=ta" -H "$J" -d "{\"value\": \"value-of-$w-a-and-long-enough\"}")" = 201 &&
    eval "${w}_secret=SECRET_${w}_TA" || return 1
    test "$(api "$ADMIN" POST /v1/schedules -H "$J" -d "$(schedule_body "sched-$w" ta)")" = 201 &&
    eval "${w}_schedule=sched-$w" || return 1
    test "$(api "$ADMIN" POST "/v1/triggers?tenant=ta" -H "$J" -d "{\"name\": \"hook-$w\", \"kind\": \"github\", \"secret\": \"SECRET_${w}_TA\", \"events\": [\"issues.labeled\"], \"spec\": $(jq -c .spec agent.json)}")" = 201 &&
    eval "${w}_trigger=hook-$w" || return 1
  done &&
  for t in default tb; do
    test "$(api "$ADMIN" PUT "/v1/secrets/MATRIX_HOOK?tenant=$t" -H "$J" -d "{\"value\": \"matrix\"}")" = 201 || return 1
  done &&
  test "$(api "$ADMIN" PUT /v1/limits/tenant:ta -H "$J" -d "{\"max\": 50}")" = 200 &&
  test "$(api - GET /v1/openapi.json)" = 200 && cp "$TRASH/.body" doc.json &&
  ops_of doc.json >ops && test -s ops && cat ops
'

test_expect_success 'every operation names its role: none exactly when public, never viewer for a write' '
  while read -r m p role public stream; do
    case $role in none | viewer | operator | admin) ;;
    *) fail "$m $p: x-durin-role is $role" || return 1 ;; esac
    { [ "$public" = yes ] && [ "$role" = none ]; } ||
      { [ "$public" = no ] && [ "$role" != none ]; } ||
      fail "$m $p: security [] ($public) and x-durin-role $role disagree" || return 1
    # The one write open to all: a trigger'"'"'s delivery, which its
    # signature authenticates (t1310 checks that).
    [ "$m $p" = "POST /v1/triggers/{name}" ] && continue
    [ "$m" = GET ] || [ "$role" = operator ] || [ "$role" = admin ] ||
      fail "$m $p: a write open to $role" || return 1
  done <ops
'

# ---- the matrix ----

test_expect_success 'no token: 401 with WWW-Authenticate, except the public operations' '
  while read -r m p role public stream; do
    exercised anon "$m" "$p"
    s=$(call - "$m" "$p" main closed) || return 1
    if [ "$m $p" = "POST /v1/triggers/{name}" ]; then
      # Public by design: the delivery'"'"'s signature is its authentication.
      # Unsigned, it is 401 bad_signature, with no Bearer challenge.
      [ "$s" = 401 ] && [ "$(body_field .error.code)" = bad_signature ] &&
        [ -z "$(hdr WWW-Authenticate)" ] ||
        fail "$m $p unsigned: $s, want 401 bad_signature without WWW-Authenticate" || return 1
    elif [ "$public" = yes ]; then
      [ "$s" = 200 ] || fail "$m $p without a token: $s, want 200" || return 1
    else
      [ "$s" = 401 ] || fail "$m $p without a token: $s, want 401" || return 1
      [ "$(hdr WWW-Authenticate)" = Bearer ] &&
        [ "$(body_field .error.code)" = unauthorized ] ||
        fail "$m $p: 401 without WWW-Authenticate: Bearer and code unauthorized" || return 1
    fi
  done <ops
'

test_expect_success 'a revoked or unknown token is 401 too' '
  GONE=$(make_token gone admin) && test -n "$GONE" &&
  test "$(api "$ADMIN" DELETE /v1/tokens/gone)" = 204 &&
  while read -r m p role public stream; do
    [ "$public" = yes ] && continue
    for t in "$GONE" durin_not-a-token; do
      s=$(call "$t" "$m" "$p" main closed) || return 1
      [ "$s" = 401 ] || fail "$m $p with a revoked or unknown token: $s, want 401" || return 1
    done
  done <ops
'

# role_check NAME TOKEN RANK: TOKEN (of the role of rank RANK) gets 403
# forbidden on every operation above it.
rank() { case $1 in none) echo 0 ;; viewer) echo 1 ;; operator) echo 2 ;; admin) echo 3 ;; esac; }
role_check() {
  while read -r m p role public stream; do
    exercised "$1" "$m" "$p"
    [ "$(rank "$role")" -gt "$3" ] || continue
    s=$(call "$2" "$m" "$p" throw closed) || return 1
    [ "$s" = 403 ] && [ "$(body_field .error.code)" = forbidden ] ||
      fail "$m $p ($role) as $1: $s, want 403 forbidden" || return 1
    body_field .error.message | grep -q "needs the $role role" ||
      fail "$m $p: the 403 does not name the role it needs" || return 1
  done <ops
}

test_expect_success 'a viewer: 403 on every write and on the admin-only reads' '
  role_check viewer "$VIEW" 1
'

test_expect_success 'an operator: 403 on the admin-only operations' '
  role_check operator "$OPER" 2
'

# no_a_in_body [ASKED]: the answer to tenant B's token names no object of
# tenant A, but for ASKED, the id B asked for (a 404 says what it did not
# find).
no_a_in_body() {
  for x in "$main_run" "$throw_run" "$main_approval" "$throw_approval" \
    "$main_webhook" "$throw_webhook" "$main_token" "$throw_token" \
    "$main_secret" "$throw_secret" "$main_trigger" "$throw_trigger" \
    "$main_schedule" "$throw_schedule" tenant:ta; do
    [ "$x" = "${1-}" ] && continue
    ! grep -q -- "$x" "$TRASH/.body" ||
      fail "$m $p as tenant B: the answer names $x of tenant A" || return 1
  done
  ! grep -q "\"tenant\": *\"ta\"" "$TRASH/.body" ||
    fail "$m $p as tenant B: the answer holds an object of tenant A" || return 1
}

test_expect_success 'tenant B: 404 on tenant A objects, and never one of them in an answer' '
  while read -r m p role public stream; do
    exercised tenant "$m" "$p"
    case "$m $p" in
    "PUT /v1/agents/{name}" | "PUT /v1/limits/{scope}" | "GET /v1/webhooks/secret" | \
      "PUT /v1/secrets/{name}" | "DELETE /v1/secrets/{name}" | \
      "DELETE /v1/schedules/{name}" | "POST /v1/schedules/{name}/pause" | \
      "POST /v1/schedules/{name}/resume")
      # A write naming tenant A (?tenant=ta) is refused, not missing; and
      # limits and the secret every tenant'"'"'s runs share are the
      # server'"'"'s: no tenant token sets or reads them.
      s=$(call "$B" "$m" "$p" throw closed) || return 1
      [ "$s" = 403 ] && no_a_in_body || fail "$m $p as tenant B: $s, want 403" || return 1
      continue ;;
    "POST /v1/triggers/{name}")
      # A delivery: the token is not looked at; unsigned, it is refused.
      s=$(call "$B" "$m" "$p" main closed) || return 1
      [ "$s" = 401 ] && no_a_in_body || fail "$m $p as tenant B: $s, want 401" || return 1
      continue ;;
    "GET /ui/{file}")
      # The dashboard'"'"'s files: public, and no tenant'"'"'s.
      s=$(call "$B" "$m" "$p" main closed) || return 1
      [ "$s" = 200 ] && no_a_in_body || fail "$m $p as tenant B: $s, want 200" || return 1
      continue ;;
    esac
    set -- throw closed
    [ "$m" = GET ] && set -- main closed
    case $p in
    *\{*)
      s=$(call "$B" "$m" "$p" "$@") || return 1
      [ "$s" = 404 ] && [ "$(body_field .error.code)" = not_found ] ||
        fail "$m $p as tenant B: $s, want 404 not_found" || return 1
      no_a_in_body "$(param_of "$p" "$1")" || return 1 ;;
    *)
      [ "$stream" = yes ] && set -- main open
      s=$(call "$B" "$m" "$p" "$@") || return 1
      case $s in 2??) ;; *) fail "$m $p as tenant B: $s" || return 1 ;; esac
      no_a_in_body || return 1 ;;
    esac
  done <ops &&
  test "$(api "$B" GET "/v1/approvals?run=$main_run")" = 404 &&
  test "$(api "$B" GET "/v1/runs?tenant=ta")" = 200 &&
  test "$(body_field ".runs | length")" = 0 &&
  test "$(api "$B" GET "/v1/runs/$B_RUN")" = 200
'

test_expect_success 'tenant B changed nothing of tenant A; an agent name is a tenant'"'"'s own' '
  sed "s/agent of A/agent of B/" agent.json >agent-b.json &&
  test "$(api "$B" PUT "/v1/agents/$AGENT" -H "$J" --data-binary @agent-b.json)" = 201 &&
  test "$(body_field .tenant)" = tb && test "$(body_field .version)" = 1 &&
  test "$(api "$B" GET "/v1/agents/$AGENT")" = 200 &&
  test "$(body_field .spec.goal)" = "agent of B" &&
  test "$(status_of "$throw_run")" = waiting_approval &&
  test "$(sql "select state from approvals where id = '"'"'$throw_approval'"'"'")" = pending &&
  test "$(api "$ADMIN" GET "/v1/webhooks/$throw_webhook")" = 200 &&
  test "$(api "$ADMIN" GET "/v1/agents/$AGENT?tenant=ta")" = 200 &&
  test "$(body_field .version)" = 1 && test "$(body_field .spec.goal)" = "agent of A" &&
  test "$(api "$ADMIN" GET /v1/tokens)" = 200 &&
  test "$(body_field ".tokens[] | select(.name == \"throw-a\") | .revoked_ms")" = null
'

test_expect_success 'exactly the role the document names is enough for each operation' '
  while read -r m p role public stream; do
    exercised role "$m" "$p"
    case $role in
    none) t=- ;; viewer) t=$VIEW ;; operator) t=$OPER ;; admin) t=$ADMIN ;;
    esac
    set -- throw closed
    [ "$m" = GET ] && set -- main closed
    [ "$stream" = yes ] && set -- main open
    # Continued, the cancelled throwaway would go back to work: the main
    # run (waiting, so 409) takes it.
    [ "$m $p" = "POST /v1/runs/{id}/continue" ] && set -- main closed
    # A delivery signed with the main trigger'"'"'s secret (the throwaway'"'"'s
    # secret is gone by now); the event is one it does not take: 200.
    MATRIX_SIGN=
    [ "$m $p" = "POST /v1/triggers/{name}" ] && set -- main closed && MATRIX_SIGN=1
    s=$(call "$t" "$m" "$p" "$@") || return 1
    echo "$m $p as $role: $s"
    case $s in
    2??) ;;
    409) [ "$m" = POST ] || fail "$m $p as $role: 409" || return 1 ;;
    *) fail "$m $p as $role: $s, want it allowed" || return 1 ;;
    esac
  done <ops &&
  wait_for 30 "test \"\$(status_of $throw_run)\" = cancelled"
'

test_expect_success 'every operation of the document went through every check' '
  while read -r m p role public stream; do
    for c in anon viewer operator tenant role; do
      grep -qxF "$c $m $p" exercised || fail "$m $p: no $c check" || return 1
    done
  done <ops &&
  test "$(sort -u exercised | wc -l)" = $(($(wc -l <ops) * 5))
'

test_done
