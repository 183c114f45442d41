#!/bin/sh
# Inbound triggers: real GitHub payloads (@octokit/webhooks-examples),
# signed by GitHub's own library (@octokit/webhooks-methods) and a
# Standard Webhooks delivery signed by the standardwebhooks package, sent
# to durin serve's POST /v1/triggers/NAME. A member's delivery starts one
# run with the templated goal; a stranger's is recorded and ignored (or
# run under the stricter spec); a redelivery starts nothing new, even
# sent to two servers at once; a bad or missing signature is 401 and
# starts nothing; every delivery is listed with its reason.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox (serve takes no runs without it)"
command -v curl >/dev/null && command -v jq >/dev/null && command -v openssl >/dev/null ||
  test_skip_all "curl, jq and openssl are needed (make test installs them)"
EXAMPLES="$SRCDIR/tests/js/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
[ -f "$EXAMPLES" ] ||
  test_skip_all "no @octokit/webhooks-examples (make npm-deps)"

DURIN_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export DURIN_MASTER_KEY
GH_SECRET="it's a secret with spaces"
SW_SECRET="whsec_$(head -c 24 /dev/urandom | base64)"

# example EVENT ACTION [JQ]: the first example payload of GitHub's EVENT
# with ACTION, edited by JQ.
example() {
  jq --arg e "$1" --arg a "$2" \
    "[.[] | select(.name == \$e) | .examples[] | select(.action == \$a)][0] | ${3:-.}" \
    "$EXAMPLES"
}

# api_direct - METHOD PATH [CURL ARGS...]: api's request sent to serve
# itself, not through prism (a proxy may re-encode the JSON body, and the
# signature is over its bytes); the answer is still checked against the
# document, offline.
api_direct() {
  _api_m=$2 _api_path=$3
  shift 3
  if [ -z "${API_DIRECT:-}" ] || [ "$API" = "$API_DIRECT" ]; then
    api_curl_ "$API" "$@"
    return 0
  fi
  api_curl_ "$API_DIRECT" "$@"
  api_check_offline_
}

# send_gh TRIGGER EVENT FILE DELIVERY [SIGNATURE]: a GitHub delivery; the
# signature is GitHub's own (webhooks-methods) unless given ("-": none).
# Prints the status; the answer is in $TRASH/.body.
send_gh() {
  case $3 in /*) _f=$3 ;; *) _f=$TRASH/$3 ;; esac
  _sig=${5-}
  [ -n "$_sig" ] || _sig=$(cd "$SRCDIR/tests/js" &&
    node webhook-sign.mjs github "$GH_SECRET" "$_f") || return 1
  if [ "$_sig" = - ]; then
    api_direct - POST "/v1/triggers/$1" -H 'Content-Type: application/json' \
      -H "X-GitHub-Event: $2" -H "X-GitHub-Delivery: $4" --data-binary @"$_f"
  else
    api_direct - POST "/v1/triggers/$1" -H 'Content-Type: application/json' \
      -H "X-GitHub-Event: $2" -H "X-GitHub-Delivery: $4" \
      -H "X-Hub-Signature-256: $_sig" --data-binary @"$_f"
  fi
}

# send_std FILE ID TIMESTAMP: a Standard Webhooks delivery to trigger std.
send_std() {
  _sig=$(cd "$SRCDIR/tests/js" &&
    node webhook-sign.mjs standard "$SW_SECRET" "$2" "$3" "$TRASH/$1") || return 1
  api_direct - POST /v1/triggers/std -H 'Content-Type: application/json' \
    -H "webhook-id: $2" -H "webhook-timestamp: $3" \
    -H "webhook-signature: $_sig" --data-binary @"$1"
}

runs() { sql "select count(*) from runs"; }
test_cmp_() { diff -u "$1" "$2"; }

# race_post BASE TAG: the delivery race-1 to BASE; answer in race.TAG,
# status in race.TAG.status.
race_post() {
  curl -sS -o "$TRASH/race.$2" -w "%{http_code}" -X POST "$1/v1/triggers/issues" \
    -H "Content-Type: application/json" -H "X-GitHub-Event: issues" \
    -H "X-GitHub-Delivery: race-1" -H "X-Hub-Signature-256: $race_sig" \
    --data-binary @"$TRASH/labeled-race.json" >"$TRASH/race.$2.status"
}
# race: race_post to both servers at once.
race() {
  race_post "$API1" a &
  _pa=$!
  race_post "$API2" b &
  _pb=$!
  wait $_pa && wait $_pb
}
goal_of() { sql "select spec from run_specs where run_id = '$1'" | jq -r .goal; }
# outcome_of TRIGGER DELIVERY: "OUTCOME REASON" of its newest delivery row.
outcome_of() {
  durin trigger deliveries "$1" --json |
    jq -r --arg d "$2" '[.[] | select(.delivery == $d)][0] | "\(.outcome) \(.reason // "")"'
}

test_expect_success 'setup: secrets, specs, payloads from @octokit/webhooks-examples' '
  printf "%s" "$GH_SECRET" | durin secret set GH_HOOK 2>/dev/null &&
  printf "%s" "$SW_SECRET" | durin secret set STD_HOOK 2>/dev/null &&
  mkdir -p ws && echo hello >ws/README &&
  cat >spec.json <<JSON &&
{"name": "fixer", "goal": "placeholder", "workspace": "ws",
 "tools": ["bash", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
  cat >strict.json <<JSON &&
{"name": "strict", "goal": "placeholder", "workspace": "ws", "tools": ["finish"],
 "policy": {"default": "ask"},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
  example issues labeled ".label.name = \"agent\" | .issue.author_association = \"MEMBER\"" >labeled-member.json &&
  example issues labeled ".label.name = \"agent\" | .issue.author_association = \"NONE\"" >labeled-stranger.json &&
  example issues labeled ".label.name = \"bug\" | .issue.author_association = \"MEMBER\"" >labeled-bug.json &&
  example issues opened ".issue.author_association = \"MEMBER\"" >opened.json &&
  example issue_comment created ".comment.author_association = \"MEMBER\"" >comment-member.json &&
  example issue_comment created ".comment.author_association = \"NONE\"" >comment-stranger.json &&
  example check_run completed ".sender.author_association = \"MEMBER\"" >check-failed.json &&
  test "$(jq -r .check_run.conclusion check-failed.json)" = failure &&
  test "$(jq -r .issue.number labeled-member.json)" -gt 0
'

test_expect_success 'trigger add refuses bad input, saying what to do' '
  test_must_fail_with 64 durin trigger add issues spec.json 2>err.txt &&
  grep_q "secret-from" err.txt &&
  test_must_fail_with 64 durin trigger add "bad/name" --secret-from GH_HOOK spec.json 2>err.txt &&
  grep_q "bad trigger name" err.txt &&
  test_must_fail_with 64 durin trigger add x --secret-from NOPE spec.json 2>err.txt &&
  grep_q "durin secret set NOPE" err.txt &&
  test_must_fail_with 64 durin trigger add x --secret-from GH_HOOK --where nonsense spec.json 2>err.txt &&
  grep_q "PATH=VALUE" err.txt &&
  test_must_fail_with 64 durin trigger add x --secret-from GH_HOOK --kind svn spec.json 2>err.txt &&
  grep_q "want github" err.txt &&
  test_must_fail_with 64 durin trigger add x --secret-from GH_HOOK --goal "{{oops" spec.json 2>err.txt &&
  grep_q "without its" err.txt
'

test_expect_success 'triggers are added and listed' '
  durin trigger add issues --secret-from GH_HOOK --event issues.labeled \
    --where label.name=agent \
    --goal "Work on issue #{{issue.number}}: {{issue.title}}\n\n{{issue.body}}" \
    --label "issue={{issue.number}}" spec.json >/dev/null 2>&1 &&
  durin trigger add comments --secret-from GH_HOOK --event issue_comment.created \
    --goal "Answer {{comment.user.login}}: {{ comment.body }}" \
    --untrusted-spec strict.json spec.json >/dev/null 2>&1 &&
  durin trigger add checks --secret-from GH_HOOK --event check_run \
    --where check_run.conclusion=failure \
    --goal "Fix {{check_run.name}} at {{check_run.head_sha}}" spec.json >/dev/null 2>&1 &&
  durin trigger add std --kind standard --secret-from STD_HOOK --event ping \
    --goal "Ping: {{data.message}}" spec.json >/dev/null 2>&1 &&
  durin trigger add needs --secret-from GH_HOOK --goal "{{no.such.path}}" \
    spec.json >/dev/null 2>&1 &&
  test_must_fail_with 64 durin trigger add issues --secret-from GH_HOOK spec.json 2>err.txt &&
  grep_q "exists already" err.txt &&
  durin trigger ls --json >ls.json &&
  test "$(jq length ls.json)" = 5 &&
  test "$(jq -r ".[] | select(.name == \"comments\") | .untrusted" ls.json)" = spec &&
  durin trigger ls | grep_q "^issues "
'

test_expect_success 'serve starts' '
  ADMIN=$(make_token root admin) && OP=$(make_token ops operator) &&
  start_serve --max-body 300000
'

test_expect_success 'a member labeling an issue starts one run with the templated goal' '
  n0=$(runs) &&
  test "$(send_gh issues issues labeled-member.json d-1)" = 202 &&
  run=$(body_field .run_id) && test -n "$run" &&
  test "$(body_field .delivery)" = d-1 &&
  test "$(runs)" = $((n0 + 1)) &&
  num=$(jq -r .issue.number labeled-member.json) &&
  title=$(jq -r .issue.title labeled-member.json) &&
  goal_of "$run" >goal.txt &&
  head -n 1 goal.txt >line1.txt &&
  echo "Work on issue #$num: $title" >want1.txt &&
  test_cmp_ want1.txt line1.txt &&
  test "$(sed -n 2p goal.txt)" = "" &&
  jq -r ".issue.body // \"\"" labeled-member.json >body.txt &&
  tail -n +3 goal.txt >gotbody.txt &&
  test_cmp_ body.txt gotbody.txt &&
  test "$(api "$OP" GET "/v1/runs/$run")" = 200 &&
  test "$(body_field .labels.issue)" = "$num" &&
  test "$(body_field .labels.trigger)" = issues &&
  test "$(outcome_of issues d-1)" = "accepted "
'

test_expect_success 'the redelivery answers the same run and starts nothing' '
  n0=$(runs) &&
  test "$(send_gh issues issues labeled-member.json d-1)" = 200 &&
  test "$(body_field .run_id)" = "$run" &&
  test "$(body_field .redelivery)" = true &&
  test "$(runs)" = "$n0" &&
  outcome_of issues d-1 | grep_q "^ignored a redelivery: run $run"
'

test_expect_success 'the same signed body under a new delivery id is a replay: the same run' '
  n0=$(runs) &&
  test "$(send_gh issues issues labeled-member.json d-1-again)" = 200 &&
  test "$(body_field .run_id)" = "$run" &&
  test "$(runs)" = "$n0" &&
  outcome_of issues d-1-again | grep_q "^ignored a replay: this signed body started run $run"
'

test_expect_success 'the run it started runs to the end in serve' '
  wait_for 60 "test \"\$(status_of $run)\" = succeeded"
'

test_expect_success 'a stranger labeling an issue is recorded and ignored' '
  n0=$(runs) &&
  test "$(send_gh issues issues labeled-stranger.json d-2)" = 200 &&
  test "$(body_field .ignored)" = true &&
  body_field .reason | grep_q "is NONE, not OWNER, MEMBER or COLLABORATOR" &&
  test "$(runs)" = "$n0" &&
  outcome_of issues d-2 | grep_q "^ignored sender .* is NONE"
'

test_expect_success 'a bad or missing signature is 401, starts nothing, and is recorded refused' '
  n0=$(runs) &&
  test "$(send_gh issues issues labeled-member.json d-3 sha256=$(printf %064d 0))" = 401 &&
  body_field .error.message | grep_q "bad X-Hub-Signature-256" &&
  test "$(send_gh issues issues labeled-member.json d-4 -)" = 401 &&
  body_field .error.message | grep_q "no X-Hub-Signature-256" &&
  test "$(send_gh issues issues labeled-member.json d-5 sha256=xyz)" = 401 &&
  other=$(cd "$SRCDIR/tests/js" && node webhook-sign.mjs github "not the secret" "$TRASH/labeled-member.json") &&
  test "$(send_gh issues issues labeled-member.json d-6 "$other")" = 401 &&
  test "$(runs)" = "$n0" &&
  outcome_of issues d-3 | grep_q "^refused bad X-Hub-Signature-256" &&
  outcome_of issues d-4 | grep_q "^refused no X-Hub-Signature-256" &&
  durin trigger deliveries issues --json >dl.json &&
  test "$(jq -r "[.[] | select(.delivery == \"d-6\")][0].body_sha256" dl.json)" = \
    "$(sha256sum <labeled-member.json | cut -d" " -f1)"
'

test_expect_success 'a refused delivery id does not block the real delivery with that id' '
  jq ".issue.number += 1000" labeled-member.json >labeled-member2.json &&
  test "$(send_gh issues issues labeled-member2.json d-3)" = 202 &&
  test "$(body_field .run_id)" != "$run"
'

test_expect_success 'another event, or a field that differs, is ignored with the reason' '
  n0=$(runs) &&
  test "$(send_gh issues issues opened.json d-7)" = 200 &&
  body_field .reason | grep_q "event .issues.opened. is not one the trigger takes" &&
  test "$(send_gh issues issues labeled-bug.json d-8)" = 200 &&
  body_field .reason | grep_q "where label.name=agent: it is .bug." &&
  test "$(runs)" = "$n0" &&
  outcome_of issues d-7 | grep_q "^ignored event"
'

test_expect_success 'a member comment runs under the spec, a stranger comment under the stricter one' '
  test "$(send_gh comments issue_comment comment-member.json c-1)" = 202 &&
  r1=$(body_field .run_id) &&
  test "$(col_of "$r1" name)" = fixer &&
  goal_of "$r1" | grep_q "^Answer $(jq -r .comment.user.login comment-member.json): " &&
  test "$(send_gh comments issue_comment comment-stranger.json c-2)" = 202 &&
  r2=$(body_field .run_id) &&
  test "$(col_of "$r2" name)" = strict &&
  sql "select spec from run_specs where run_id = '\''$r2'\''" | jq -e ".tools | map(.name) | sort == [\"finish\", \"run_status\"]" >/dev/null &&
  outcome_of comments c-2 | grep_q "^accepted sender .* is NONE: started under the untrusted spec"
'

test_expect_success 'a failed check run starts a run; a member is needed there too' '
  test "$(send_gh checks check_run check-failed.json k-1)" = 202 &&
  k1=$(body_field .run_id) &&
  goal_of "$k1" | grep_q "^Fix $(jq -r .check_run.name check-failed.json) at " &&
  jq ".check_run.conclusion = \"success\"" check-failed.json >check-ok.json &&
  test "$(send_gh checks check_run check-ok.json k-2)" = 200 &&
  body_field .reason | grep_q "it is .success." &&
  jq ".sender.author_association = \"NONE\"" check-failed.json >check-stranger.json &&
  test "$(send_gh checks check_run check-stranger.json k-3)" = 200 &&
  test "$(body_field .ignored)" = true
'

test_expect_success 'a template path the payload lacks refuses the delivery, saying which' '
  n0=$(runs) &&
  test "$(send_gh needs issues labeled-member.json n-1)" = 422 &&
  body_field .error.message | grep_q "no .no.such.path." &&
  test "$(runs)" = "$n0" &&
  outcome_of needs n-1 | grep_q "^refused the payload has no"
'

test_expect_success 'bad JSON is 400, an unknown trigger 404, a body too big 413' '
  printf "{not json" >bad.json &&
  test "$(send_gh issues issues bad.json b-1)" = 400 &&
  outcome_of issues b-1 | grep_q "^refused the body is not a JSON object" &&
  test "$(send_gh nosuch issues labeled-member.json b-2)" = 404 &&
  test "$(body_field .error.message)" = "no such trigger" &&
  head -c 400000 /dev/zero | tr "\0" " " >big.json &&
  test "$(send_gh issues issues big.json b-3 sha256=0)" = 413
'

test_expect_success 'Standard Webhooks: signed now is accepted, an old timestamp is 401' '
  echo "{\"type\": \"ping\", \"timestamp\": \"2026-01-01T00:00:00Z\", \"data\": {\"message\": \"hi there\"}}" >ping.json &&
  now=$(date +%s) &&
  test "$(send_std ping.json msg_1 "$now")" = 202 &&
  s1=$(body_field .run_id) &&
  test "$(goal_of "$s1")" = "Ping: hi there" &&
  test "$(send_std ping.json msg_1 "$now")" = 200 &&
  test "$(body_field .run_id)" = "$s1" &&
  n0=$(runs) &&
  test "$(send_std ping.json msg_2 $((now - 600)))" = 401 &&
  body_field .error.message | grep_q "webhook-timestamp is -6[0-9][0-9] s from now" &&
  test "$(runs)" = "$n0" &&
  outcome_of std msg_2 | grep_q "^refused webhook-timestamp"
'

test_expect_success 'the same delivery sent to two servers at once starts one run' '
  SERVE1=$SERVE_PID API1=$API_DIRECT SAVED_API=$API &&
  start_serve && API2=$API_DIRECT &&
  jq ".issue.number += 2000" labeled-member.json >labeled-race.json &&
  race_sig=$(cd "$SRCDIR/tests/js" && node webhook-sign.mjs github "$GH_SECRET" "$TRASH/labeled-race.json") &&
  n0=$(runs) &&
  race &&
  { cat race.a.status; echo; cat race.b.status; echo; } | sort >statuses &&
  printf "200\n202\n" >want-statuses &&
  test_cmp_ want-statuses statuses &&
  test "$(jq -r .run_id race.a)" = "$(jq -r .run_id race.b)" &&
  test "$(runs)" = $((n0 + 1)) &&
  stop_serve "$SERVE_PID" && SERVE_PID=$SERVE1 API=$SAVED_API API_DIRECT=$API1
'

test_expect_success 'deliveries are listed over the API with reasons; management routes' '
  test "$(api "$OP" GET /v1/triggers/issues/deliveries)" = 200 &&
  body_field ".deliveries | map(.outcome) | unique | join(\",\")" | grep_q "accepted,ignored,refused" &&
  test "$(body_field "[.deliveries[] | select(.delivery == \"d-2\")][0].author_association")" = NONE &&
  test "$(api "$OP" GET /v1/triggers)" = 200 &&
  test "$(body_field ".triggers | length")" = 5 &&
  test "$(api "$OP" GET /v1/triggers/issues)" = 200 &&
  test "$(body_field .spec.name)" = fixer &&
  test "$(api "$OP" DELETE /v1/triggers/needs)" = 403 &&
  test "$(api - GET /v1/triggers)" = 401 &&
  jq -n --slurpfile s strict.json "{name: \"viaapi\", kind: \"github\", secret: \"GH_HOOK\",
     spec: (\$s[0] | del(.workspace)), events: [\"issues.labeled\"], goal: \"Issue {{issue.number}}\"}" >create.json &&
  { test "$(api "$ADMIN" POST /v1/triggers -H "Content-Type: application/json" --data-binary @create.json)" = 201 || { cat .body; false; }; } &&
  test "$(body_field .url)" = /v1/triggers/viaapi &&
  test "$(api "$ADMIN" POST /v1/triggers -H "Content-Type: application/json" --data-binary @create.json)" = 409 &&
  test "$(send_gh viaapi issues labeled-member.json v-1)" = 202 &&
  test "$(api "$ADMIN" DELETE /v1/triggers/viaapi)" = 200 &&
  test "$(api "$ADMIN" GET /v1/triggers/viaapi)" = 404
'

test_expect_success 'trigger rm removes it and its deliveries; a new one of the name starts afresh' '
  durin trigger deliveries issues | grep_q "refused" &&
  durin trigger rm issues 2>/dev/null &&
  test_must_fail_with 5 durin trigger deliveries issues 2>err.txt &&
  grep_q "no trigger" err.txt &&
  test_must_fail_with 5 durin trigger rm issues 2>/dev/null &&
  test "$(send_gh issues issues labeled-member.json d-1)" = 404
'

test_expect_success 'examples/issue-labeled runs as its README says' '
  sh "$SRCDIR/examples/issue-labeled/demo.sh" "$DURIN" >demo.out 2>&1 &&
  grep_q "\"redelivery\":false" demo.out &&
  grep_q "\"redelivery\":true" demo.out &&
  grep_q "bad_signature" demo.out &&
  grep_q "^status    succeeded" demo.out &&
  grep_q "^summary   fixed the spelling in README" demo.out
'

stop_serve
test_done
