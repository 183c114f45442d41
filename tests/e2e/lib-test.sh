# Sourced by every e2e test: a throwaway directory, a private store, TAP
# output, and helpers. Modelled on git's t/test-lib.sh.
set -u
: "${DURIN:?set DURIN to the durin binary}"
: "${SRCDIR:?set SRCDIR to the source tree}"

TRASH=$(mktemp -d)
DB="$TRASH/store/durin.db"
export DURIN_STORE="sqlite:$DB"
unset DURIN_MODEL DURIN_CRASH_AT DURIN_DATA_DIR OPENAI_API_KEY
test_n=0
test_failed=0
bg_pids=""

test_cleanup() {
  for p in $bg_pids; do kill "$p" 2>/dev/null; done
  [ -z "${PGDB:-}" ] || psql -X -q "$DURIN_TEST_PG/postgres" \
    -c "DROP DATABASE IF EXISTS $PGDB WITH (FORCE)" >/dev/null 2>&1
  if [ "$test_failed" = 0 ]; then rm -rf "$TRASH"; else
    echo "# kept $TRASH for inspection"; fi
}
trap test_cleanup EXIT

durin() { "$DURIN" "$@"; }

test_run_body_() {
  cd "$TRASH" || return 1
  eval "$1"
}

# test_expect_success DESC BODY: BODY runs in this shell (variables it sets
# stay set for later tests), in $TRASH; `return 1` fails the test. An answer
# of durin serve that server/openapi.json does not describe (see `api`
# below) fails it too.
test_expect_success() {
  test_n=$((test_n + 1))
  if test_run_body_ "$2" >"$TRASH/.out" 2>&1 && ! api_violations_new_; then
    echo "ok $test_n - $1"
    [ -z "${TEST_VERBOSE:-}" ] || sed 's/^/# /' "$TRASH/.out"
  else
    echo "not ok $test_n - $1"
    sed 's/^/# /' "$TRASH/.out" | tail -n 40
    api_violations_report_
    test_failed=$((test_failed + 1))
  fi
}

test_skip() {
  test_n=$((test_n + 1))
  echo "ok $test_n - $1 # SKIP $2"
}

test_done() {
  [ -z "$api_unchecked_" ] || echo "# $api_unchecked_"
  # Answers got outside any test body fail a test of their own.
  if api_violations_new_; then
    test_n=$((test_n + 1))
    echo "not ok $test_n - every answer of durin serve matches server/openapi.json"
    api_violations_report_
    test_failed=$((test_failed + 1))
  fi
  echo "1..$test_n"
  [ "$test_failed" = 0 ] && [ ! -s "$TRASH/.violations" ]
}

# test_skip_all REASON: this host cannot run the test at all; TAP says so.
test_skip_all() {
  echo "1..0 # SKIP $1"
  exit 0
}

# test_must_fail CMD...: CMD fails the way a command reports an error,
# with 1..124. As with git's test_must_fail, other ways to end are not the
# failure the test expected, and would let it pass having checked nothing:
# death by a signal (128+N; a test that means it says test_must_fail_with),
# 127 (no such command), 126 (cannot execute) and 125 (durin sandbox could
# not set up the call).
test_must_fail() {
  "$@"
  _got=$?
  if [ $_got = 0 ]; then
    echo "test_must_fail: command succeeded: $*"
    return 1
  elif [ $_got -gt 128 ]; then
    echo "test_must_fail: died by signal $((_got - 128)): $*"
    return 1
  elif [ $_got -ge 125 ]; then
    echo "test_must_fail: exit $_got (125 cannot set up, 126 cannot run," \
      "127 not found), not a failure of the command itself: $*"
    return 1
  fi
  return 0
}

# test_must_fail_with CODE CMD...: CMD exits with exactly CODE.
test_must_fail_with() {
  want=$1
  shift
  "$@"
  got=$?
  if [ "$got" != "$want" ]; then
    echo "expected exit $want, got $got: $*"
    return 1
  fi
  return 0
}

# Pulls the id out of `durin run` output.
run_id_of() { sed -n 's/^run \(r[0-9a-f]*\) submitted$/\1/p' "$1" | head -n 1; }

# Waits for a writer's lock rather than failing with "database is locked".
sql() { sqlite3 -cmd ".timeout 10000" "$DB" "$@"; }

status_of() { sql "select status from runs where id = '$1'"; }

# Events of a run are numbered 1..N with no gap.
events_contiguous() {
  sql "select count(*) = max(seq) and min(seq) = 1 from events where run_id = '$1'" | grep -qx 1
}

# The store's own consistency check.
store_intact() { sql "pragma integrity_check"; }

# The checkpoint is valid JSON with the expected shape.
checkpoint_valid() {
  sql "select json_valid(data) and json_extract(data, '\$.v') = 1 and json_extract(data, '\$.step') = step from checkpoints where run_id = '$1'" | grep -qx 1
}

# The PostgreSQL variant (DURIN_TEST_STORE=pg): the store is a database of
# this test's own on the cluster at $DURIN_TEST_PG, and `sql` is psql on it,
# with SQLite's json_extract, json_valid and printf('%.Nf') and booleans printed as 1/0, so
# one test body checks both stores.
if [ "${DURIN_TEST_STORE:-}" = pg ]; then
  [ -n "${DURIN_TEST_PG:-}" ] ||
    test_skip_all "no PostgreSQL cluster in DURIN_TEST_PG (tests/run-all.sh starts one)"
  PGDB="e_$(basename "$0" .sh | tr -c 'a-z0-9\n' _)_$$"
  psql -X -q -v ON_ERROR_STOP=1 "$DURIN_TEST_PG/postgres" \
    -c "CREATE DATABASE $PGDB" >/dev/null || exit 1
  export DURIN_STORE="$DURIN_TEST_PG/$PGDB" DURIN_DATA_DIR="$TRASH/store/runs"
  psql -X -q -v ON_ERROR_STOP=1 "$DURIN_STORE" >/dev/null <<'SQL' || exit 1
CREATE FUNCTION json_extract(doc text, path text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE jsonb_typeof(v) WHEN 'boolean' THEN (CASE WHEN v = 'true'
    THEN '1' ELSE '0' END) ELSE v #>> '{}' END
  FROM (SELECT (doc::jsonb) #> string_to_array(substr(path, 3), '.') AS v) x
$$;
CREATE FUNCTION printf(fmt text, x double precision) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT round(x::numeric, substring(fmt from '%\.([0-9]+)f')::int)::text
$$;
CREATE FUNCTION json_valid(doc text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM doc::jsonb; RETURN 1; EXCEPTION WHEN others THEN RETURN 0; END
$$;
SQL
  sql() {
    psql -X -A -t -q -v ON_ERROR_STOP=1 "$DURIN_STORE" -c "$1" |
      sed 's/^t$/1/; s/^f$/0/'
  }
  checkpoint_valid() {
    sql "select json_valid(data) = 1 and (data::jsonb->>'v') = '1' and (data::jsonb->>'step')::bigint = step from checkpoints where run_id = '$1'" | grep -qx 1
  }
  store_intact() { sql "select 'ok'"; }
fi

# Copies the sample project into $TRASH/project.
make_project() {
  rm -rf "$TRASH/project"
  cp -r "$SRCDIR/examples/fix-failing-test/project" "$TRASH/project"
}

grep_q() { grep -q -- "$@"; }

# How many processes on this host have the command line $1 (words joined
# by spaces). Sandboxed pids are their namespace's, so tests mark the
# processes they look for with an argument nothing else uses.
count_cmdline() {
  for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f" 2>/dev/null; echo; done |
    grep -c "^$1 \$"
}

# Polls CMD (a shell snippet) every 0.1 s until it succeeds, up to SECS.
wait_for() {
  _w=0
  while ! eval "$2" >/dev/null 2>&1; do
    [ $_w -ge $(($1 * 10)) ] && return 1
    sleep 0.1; _w=$((_w + 1))
  done
}
count_status() { sql "select count(*) from runs where status = '$1'"; }
count_events() { sql "select count(*) from events where type = '$1'"; }
col_of() { sql "select $2 from runs where id = '$1'"; }
# A tool call of the run is under way: its intent is durable, no outcome.
in_tool() { test "$(sql "select count(*) from ledger where run_id = '$1' and done = 0")" = 1; }

# start_fake REPLIES: starts tests/helpers/fake-model with that reply list,
# requiring the key $FAKE_KEY_VALUE; sets $PORT. stop_fake ends it.
start_fake() {
  rm -f "$TRASH/port" "$TRASH/requests.log"
  "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}" \
    --port-file "$TRASH/port" --replies "$1" --log "$TRASH/requests.log" \
    --key "$FAKE_KEY_VALUE" >>"$TRASH/fake.out" 2>&1 &
  fake_pid=$!
  bg_pids="$bg_pids $fake_pid"
  i=0
  while [ ! -s "$TRASH/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  PORT=$(cat "$TRASH/port")
}
stop_fake() { kill "$fake_pid" 2>/dev/null; wait "$fake_pid" 2>/dev/null; return 0; }

# A PostgreSQL cluster of the test's own (for tests that stop, restart or
# start it late): skips when the host has no server or sandbox; sets $CL
# and $url, makes `cluster start|stop|restart` act on it, and removes it
# when the test ends. The store is its postgres database.
own_pg_cluster() {
  ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 ||
    test_skip_all "no PostgreSQL server installed (apt-get install postgresql)"
  "$DURIN" sandbox -- true 2>/dev/null ||
    test_skip_all "this host cannot build the sandbox"
  # Beside $TRASH, not in it: the server's user must reach its directory.
  CL=$(mktemp -d)
  url=$("$SRCDIR/tests/helpers/pg-cluster.sh" start "$CL") || {
    rm -rf "$CL"
    test_skip_all "cannot start a PostgreSQL cluster"
  }
  trap 'cluster stop; rm -rf "$CL"; test_cleanup' EXIT
  export DURIN_STORE="$url/postgres" DURIN_DATA_DIR="$TRASH/runs"
  sql() { psql -X -A -t -q "$DURIN_STORE" -c "$1"; }
  status_of() { sql "select status from runs where id = '$1'"; }
}
cluster() { "$SRCDIR/tests/helpers/pg-cluster.sh" "$1" "$CL"; }

# chat_completion ID TOOL ARGS_JSON_STRING [USAGE_JSON]: a fake-model
# reply, as OpenAI's Chat Completions sends it, with one call of TOOL.
chat_completion() {
  usage=${4:-'{"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}'}
  cat <<JSON
{"status": 200, "body": {"id": "chatcmpl-$1", "object": "chat.completion",
 "created": 1760000000, "model": "gpt-4o-mini-2024-07-18",
 "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
   "tool_calls": [{"id": "call_$1", "type": "function",
     "function": {"name": "$2", "arguments": $3}}]},
   "finish_reason": "tool_calls"}],
 "usage": $usage}}
JSON
}

# ---- durin serve and its HTTP API ----
#
# Every answer of durin serve that a test gets through `api` is checked
# against the API's document, server/openapi.json, by Stoplight's prism
# (tests/js; `make npm-deps` installs it, `make test` runs that first):
#
# - start_serve puts a `prism proxy` in front of each serve: $API is the
#   proxy, $API_DIRECT the serve itself. Prism forwards each request and
#   validates the answer (status declared, media type, body schema, declared
#   headers); one that is off comes back with an `sl-violations` header.
# - `api` records each such answer in $TRASH/.violations (METHOD PATH ->
#   STATUS: what prism said), says so on stderr and returns 1; the test
#   whose body got it fails (test_expect_success), and test_done fails the
#   script while $TRASH/.violations is not empty.
# - What prism cannot carry goes straight to the serve and is checked with
#   prism's own validator (tests/js/openapi-response.mjs): operations with
#   binary bodies (workspace archives, by their media types in the
#   document), and requests prism answers itself without asking durin (a
#   path or method the document does not have: durin must then answer 404
#   or 405 too, else it serves something undocumented; a JSON body prism
#   cannot parse).
# - Streams: prism reads an answer to its end before passing it on, so SSE
#   clients use $API_DIRECT (an `api` call on a stream works only when the
#   stream ends, e.g. for a finished run).
#
# Prism runs on a copy of the document whose global security is
# `[{"bearerAuth": []}, {}]`: prism checks security itself, with no option
# to turn it off (not even --validate-request=false), and answers a request
# without `Authorization: Bearer` 401 before durin sees it. The added `{}`
# (no requirement) lets those through, so tests see durin's own 401; the
# published document keeps the token required. Requests are not validated
# (--validate-request=false), so a test may send a bad one on purpose and
# get durin's 400/422, not prism's 422.
#
# Prism parses a request body sent as application/json and forwards it
# re-serialized (whitespace gone, duplicate keys collapsed), and sends JSON
# answers on re-serialized too (no trailing newline). To send bytes exactly,
# leave the Content-Type out: curl -d says form-urlencoded, which durin
# ignores and prism passes on as text.
#
# Without tests/js/node_modules the tests talk to the serve directly,
# unchecked, and say so in a TAP comment.

# The document answers are checked against (t0805 sets it to a broken copy
# to see the check fail).
OPENAPI_DOC=${OPENAPI_DOC:-$SRCDIR/server/openapi.json}
api_unchecked_=""

# The copy of the document prism runs on, and the operations it cannot
# carry ("METHOD REGEX" lines: a request or answer body that is neither
# JSON nor text), made once per test.
openapi_prepare_() {
  [ -s "$TRASH/.openapi-prism.json" ] && return 0
  jq '.security += [{}]' "$OPENAPI_DOC" >"$TRASH/.openapi-prism.json" &&
    jq -r '.paths | to_entries[] | .key as $p | .value | to_entries[]
      | select(.key | IN("get", "put", "post", "delete", "patch"))
      | select([(.value.requestBody.content // {} | keys[]),
                (.value.responses[] | .content // {} | keys[])]
               | any(test("^(application/(.*[+])?json|text/)") | not))
      | "\(.key | ascii_upcase) ^\($p | gsub("\\{[^}]*\\}"; "[^/]+"))$"' \
      "$OPENAPI_DOC" >"$TRASH/.openapi-direct"
}

# start_serve [ARGS...]: durin serve on a free loopback port, in the
# background, on $DURIN_STORE, with a prism proxy in front (see above);
# sets API (http://127.0.0.1:PORT, the proxy), API_DIRECT (the serve),
# SERVE_PID, PRISM_PID (empty without one) and SERVE_LOG, and waits until
# /readyz answers. More serves may be started; each call overwrites them.
start_serve() {
  SERVE_LOG="$TRASH/serve.$(date +%s%N).log"
  "$DURIN" serve --listen 127.0.0.1:0 --poll 50ms "$@" >"$SERVE_LOG" 2>&1 &
  SERVE_PID=$!
  bg_pids="$bg_pids $SERVE_PID"
  wait_for 30 "grep -q 'serving the API on' '$SERVE_LOG'" || {
    echo "serve did not start:"; cat "$SERVE_LOG"; return 1; }
  API_DIRECT=$(sed -n 's|.*serving the API on \(http[s]*://[0-9.]*:[0-9]*\)/v1.*|\1|p' "$SERVE_LOG" | head -n 1)
  API=$API_DIRECT
  PRISM_PID=""
  wait_for 30 "curl -sfk '$API_DIRECT/readyz'" || {
    echo "serve not ready:"; cat "$SERVE_LOG"; return 1; }
  if [ ! -d "$SRCDIR/tests/js/node_modules" ]; then
    api_unchecked_="no tests/js/node_modules (make npm-deps): answers of durin serve were not checked against server/openapi.json"
    return 0
  fi
  case $API_DIRECT in https:*)
    api_unchecked_="an HTTPS serve is not behind prism: its answers were not checked against server/openapi.json"
    return 0 ;;
  esac
  openapi_prepare_ || return 1
  _plog="$SERVE_LOG.prism"
  PRISM_PID=$(PRISM_OPTS=--validate-request=false "$SRCDIR/tests/js/openapi-check.sh" \
    proxy "$TRASH/.openapi-prism.json" "$API_DIRECT" 0 "$_plog") || {
    echo "prism did not start:"; cat "$_plog"; return 1; }
  bg_pids="$bg_pids $PRISM_PID"
  eval "prism_of_$SERVE_PID=$PRISM_PID"
  API=http://127.0.0.1:$("$SRCDIR/tests/js/openapi-check.sh" port "$_plog")
}

# stop_serve [PID]: SIGTERM and wait (default: $SERVE_PID); its prism goes
# too.
stop_serve() {
  _p=${1:-$SERVE_PID}
  kill "$_p" 2>/dev/null
  wait "$_p" 2>/dev/null
  eval "_pp=\${prism_of_$_p:-}"
  if [ -n "$_pp" ]; then
    kill "$_pp" 2>/dev/null
    wait "$_pp" 2>/dev/null
    eval "prism_of_$_p="
  fi
  return 0
}

# make_token NAME ROLE [TENANT]: prints a new API token.
make_token() {
  if [ -n "${3-}" ]; then
    "$DURIN" token create "$1" --role "$2" --tenant "$3" 2>/dev/null
  else
    "$DURIN" token create "$1" --role "$2" 2>/dev/null
  fi
}

# api TOKEN METHOD PATH [CURL ARGS...]: one request; the body goes to
# $TRASH/.body, the headers to $TRASH/.headers (do not pass -o or -D), the
# status is printed. TOKEN "-" sends none. Returns 1 when the answer does
# not match server/openapi.json (and records it: see above), else 0. A
# body given as `-d @-` (stdin) cannot be sent twice: use a file.
api() {
  _api_m=$2 _api_path=$3
  if [ "$1" = - ]; then shift 3; else
    _api_h="Authorization: Bearer $1"; shift 3; set -- -H "$_api_h" "$@"; fi
  if [ "$API" = "${API_DIRECT:-$API}" ]; then
    api_curl_ "$API" "$@"
    return 0
  fi
  if api_prism_cannot_carry_; then
    api_curl_ "$API_DIRECT" "$@"
    api_check_offline_
    return
  fi
  api_curl_ "$API" "$@" >"$TRASH/.status"
  if _api_v=$(grep -i '^sl-violations:' "$TRASH/.headers"); then
    cat "$TRASH/.status"
    api_violation_ "${_api_v#*: }"
    return 1
  fi
  # Prism's own answers (its problem documents; the JSON parser's errors,
  # the only answers with a charset): durin never saw the request.
  if grep -q 'stoplight.io/prism/errors#' "$TRASH/.body" 2>/dev/null ||
    grep -qi '^content-type: application/json; charset=utf-8' "$TRASH/.headers"; then
    api_curl_ "$API_DIRECT" "$@"
    api_check_offline_
    return
  fi
  cat "$TRASH/.status"
}
api_curl_() {
  _api_base=$1
  shift
  curl -sS -o "$TRASH/.body" -D "$TRASH/.headers" -w '%{http_code}' \
    -X "$_api_m" "$@" "$_api_base$_api_path"
}
api_prism_cannot_carry_() {
  while read -r _api_dm _api_dre; do
    [ "$_api_dm" = "$_api_m" ] && printf '%s\n' "${_api_path%%\?*}" | grep -qE "$_api_dre" &&
      return 0
  done <"$TRASH/.openapi-direct"
  return 1
}
# Checks the answer in .headers/.body with prism's validator, offline.
api_check_offline_() {
  if _api_v=$(node "$SRCDIR/tests/js/openapi-response.mjs" "$OPENAPI_DOC" \
    "$_api_m" "$_api_path" "$TRASH/.headers" "$TRASH/.body"); then
    return 0
  fi
  api_violation_ "${_api_v:-the validator failed}"
  return 1
}
api_violation_() {
  _api_st=$(sed -n 's|^HTTP/[0-9.]* \([0-9]*\).*|\1|p' "$TRASH/.headers" | tail -n 1)
  printf '%s %s -> %s: %s\n' "$_api_m" "$_api_path" "$_api_st" "$1" |
    tee -a "$TRASH/.violations" |
    sed 's/^/api: the answer does not match server\/openapi.json: /' >&2
}
# Whether answers off the document came since the last report; prints them.
api_violations_seen_=0
api_violations_new_() {
  [ -s "$TRASH/.violations" ] &&
    [ "$(wc -l <"$TRASH/.violations")" -gt "$api_violations_seen_" ]
}
api_violations_report_() {
  api_violations_new_ || return 0
  echo "# answers of durin serve that server/openapi.json does not describe:"
  sed -n "$((api_violations_seen_ + 1)),\$p" "$TRASH/.violations" | sed 's/^/#   /'
  api_violations_seen_=$(wc -l <"$TRASH/.violations")
}
# body_field EXPR: a field of the last answer ($TRASH/.body) via jq.
body_field() { jq -r "$1" "$TRASH/.body"; }
