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
# stay set for later tests), in $TRASH; `return 1` fails the test.
test_expect_success() {
  test_n=$((test_n + 1))
  if test_run_body_ "$2" >"$TRASH/.out" 2>&1; then
    echo "ok $test_n - $1"
    [ -z "${TEST_VERBOSE:-}" ] || sed 's/^/# /' "$TRASH/.out"
  else
    echo "not ok $test_n - $1"
    sed 's/^/# /' "$TRASH/.out" | tail -n 40
    test_failed=$((test_failed + 1))
  fi
}

test_skip() {
  test_n=$((test_n + 1))
  echo "ok $test_n - $1 # SKIP $2"
}

test_done() {
  echo "1..$test_n"
  [ "$test_failed" = 0 ]
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

# start_serve [ARGS...]: durin serve on a free loopback port, in the
# background, on $DURIN_STORE; sets API (http://127.0.0.1:PORT), SERVE_PID
# and SERVE_LOG, and waits until /readyz answers. More serves may be
# started; each call overwrites the three variables.
start_serve() {
  SERVE_LOG="$TRASH/serve.$(date +%s%N).log"
  "$DURIN" serve --listen 127.0.0.1:0 --poll 50ms "$@" >"$SERVE_LOG" 2>&1 &
  SERVE_PID=$!
  bg_pids="$bg_pids $SERVE_PID"
  wait_for 30 "grep -q 'serving the API on' '$SERVE_LOG'" || {
    echo "serve did not start:"; cat "$SERVE_LOG"; return 1; }
  API=$(sed -n 's|.*serving the API on \(http[s]*://[0-9.]*:[0-9]*\)/v1.*|\1|p' "$SERVE_LOG" | head -n 1)
  wait_for 30 "curl -sfk '$API/readyz'" || {
    echo "serve not ready:"; cat "$SERVE_LOG"; return 1; }
}

# stop_serve [PID]: SIGTERM and wait (default: $SERVE_PID).
stop_serve() {
  _p=${1:-$SERVE_PID}
  kill "$_p" 2>/dev/null
  wait "$_p" 2>/dev/null
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
# $TRASH/.body, the status is printed. TOKEN "-" sends none.
api() {
  _tok=$1 _m=$2 _path=$3
  shift 3
  if [ "$_tok" = - ]; then
    curl -sS -o "$TRASH/.body" -w '%{http_code}' -X "$_m" "$@" "$API$_path"
  else
    curl -sS -o "$TRASH/.body" -w '%{http_code}' -X "$_m" \
      -H "Authorization: Bearer $_tok" "$@" "$API$_path"
  fi
}
# body_field EXPR: a field of the last answer ($TRASH/.body) via jq.
body_field() { jq -r "$1" "$TRASH/.body"; }
