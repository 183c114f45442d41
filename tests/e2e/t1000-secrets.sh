#!/bin/sh
# The vault: a master key made by keygen, a value set from stdin that ls
# never shows and that appears nowhere in the store, a run whose model key
# comes from it (the fake server checks the header), and the bad cases:
# a value on the command line, no key, a key file others can read, the
# wrong key, a spec naming a secret that does not exist.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

make_project

# The key must come from the vault alone: no variable holds it.
FAKE_KEY_VALUE=sk-vault-4d3c2b1a00ffee
unset FAKE_KEY DURIN_MASTER_KEY DURIN_MASTER_KEY_FILE CREDENTIALS_DIRECTORY \
  XDG_CONFIG_HOME
export HOME="$TRASH/home"

write_spec() { # write_spec SECRET
  cat >"$TRASH/s.json" <<JSON
{"goal": "say hi", "workspace": "project", "tools": ["finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:${PORT:-9}/v1",
           "api_key_env": "FAKE_KEY", "api_key_secret": "$1",
           "max_retries": 0, "timeout_s": 10}}
JSON
}

finish_reply() {
  { echo "[" &&
    chat_completion f finish "\"{\\\"summary\\\": \\\"said hi\\\"}\"" &&
    echo "]"; } >replies.json
}

test_expect_success 'without a master key, set says how to make one' '
  printf "%s" "$FAKE_KEY_VALUE" |
    test_must_fail_with 64 durin secret set OPENAI_KEY 2>err.txt &&
  grep_q "no master key" err.txt &&
  grep_q "durin secret keygen" err.txt &&
  grep_q "DURIN_MASTER_KEY_FILE" err.txt
'

test_expect_success 'keygen writes a 0600 key file, and never over one' '
  durin secret keygen >out.txt 2>err.txt &&
  test "$(cat out.txt)" = "$HOME/.config/durin/master.key" &&
  test "$(stat -c %a "$HOME/.config/durin/master.key")" = 600 &&
  cp "$HOME/.config/durin/master.key" key.before &&
  test_must_fail_with 64 durin secret keygen 2>err.txt &&
  grep_q "already exists" err.txt &&
  cmp key.before "$HOME/.config/durin/master.key" &&
  durin secret keygen -o "$TRASH/other.key" 2>/dev/null &&
  test "$(stat -c %a other.key)" = 600
'

test_expect_success 'set reads the value from stdin; ls shows no value' '
  printf "%s\n" "$FAKE_KEY_VALUE" | durin secret set OPENAI_KEY 2>err.txt &&
  grep_q "version 1" err.txt &&
  durin secret ls >ls.txt &&
  grep_q "^OPENAI_KEY  *default  *-  *1 " ls.txt &&
  durin secret ls --json >ls.json &&
  test "$(jq -r ".[0].name, .[0].version" ls.json | tr "\n" " ")" = "OPENAI_KEY 1 " &&
  ! grep_q "$FAKE_KEY_VALUE" ls.txt ls.json err.txt
'

test_expect_success 'set again rotates: the version goes up, the name stays' '
  printf "%s\n" "$FAKE_KEY_VALUE" | durin secret set OPENAI_KEY 2>err.txt &&
  grep_q "version 2" err.txt &&
  durin secret ls --json >ls.json &&
  test "$(jq -r "length, .[0].version" ls.json | tr "\n" " ")" = "1 2 "
'

# Every form the store could hold the value in: as is, and its base64 and
# hex.
no_value_in() { # no_value_in FILE...
  b64=$(printf "%s" "$FAKE_KEY_VALUE" | base64 -w0)
  hex=$(printf "%s" "$FAKE_KEY_VALUE" | od -An -tx1 | tr -d " \n")
  for f in "$@"; do
    test "$(grep -c -a -F -e "$FAKE_KEY_VALUE" -e "$b64" -e "$hex" "$f")" = 0 ||
      { echo "the secret is in $f"; return 1; }
  done
}

test_expect_success 'the value appears nowhere in the store' '
  if [ "${DURIN_TEST_STORE:-}" = pg ]; then
    pg_dump "$DURIN_STORE" >dump.sql &&
    grep_q "CREATE TABLE public.secrets" dump.sql &&
    psql -X -A -q "$DURIN_STORE" -c "select * from secrets" >rows.txt &&
    grep_q OPENAI_KEY rows.txt &&
    no_value_in dump.sql rows.txt
  else
    sqlite3 "$DB" "select * from secrets" >rows.txt &&
    grep_q OPENAI_KEY rows.txt &&
    no_value_in rows.txt store/durin.db &&
    { [ ! -e store/durin.db-wal ] || no_value_in store/durin.db-wal; }
  fi
'

test_expect_success 'a run authenticates with the key from the vault' '
  finish_reply &&
  start_fake replies.json &&
  write_spec OPENAI_KEY &&
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(wc -l <requests.log)" = 1 &&
  stop_fake &&
  no_value_in out.txt err.txt
'

test_expect_success 'a value on the command line is refused' '
  test_must_fail_with 64 durin secret set OPENAI_KEY sk-on-argv </dev/null \
    2>err.txt &&
  grep_q "command line is refused" err.txt &&
  grep_q "pipe it in" err.txt &&
  test "$(durin secret ls --json | jq -r ".[0].version")" = 2
'

test_expect_success 'a bad name is refused' '
  printf x | test_must_fail_with 64 durin secret set 9-lives 2>err.txt &&
  grep_q "not a secret name" err.txt
'

test_expect_success 'a key file others can read is refused' '
  chmod 644 "$HOME/.config/durin/master.key" &&
  printf x | test_must_fail_with 64 durin secret set OTHER 2>err.txt &&
  grep_q "mode 0644" err.txt &&
  grep_q "chmod 600" err.txt &&
  chmod 600 "$HOME/.config/durin/master.key"
'

test_expect_success 'the wrong key ends the run saying so, with no value' '
  finish_reply &&
  start_fake replies.json &&
  write_spec OPENAI_KEY &&
  DURIN_MASTER_KEY_FILE="$TRASH/other.key" \
    test_must_fail_with 1 durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  col_of $id reason >reason.txt &&
  grep_q "cannot decrypt secret .OPENAI_KEY.: wrong master key" reason.txt &&
  test ! -s requests.log &&
  stop_fake &&
  no_value_in out.txt err.txt reason.txt
'

test_expect_success 'without a master key a run says how to make one' '
  write_spec OPENAI_KEY &&
  HOME="$TRASH/nohome" test_must_fail_with 1 durin run s.json >out.txt \
    2>err.txt &&
  id=$(run_id_of out.txt) &&
  col_of $id reason | grep_q "durin secret keygen"
'

test_expect_success 'a spec naming an unknown secret is refused at submit' '
  n=$(count_status queued) &&
  write_spec NO_SUCH_KEY &&
  test_must_fail_with 65 durin submit s.json >out.txt 2>err.txt &&
  grep_q "no secret .NO_SUCH_KEY. in tenant .default." err.txt &&
  test "$(count_status queued)" = "$n" &&
  test_must_fail_with 65 durin submit --tenant acme s.json 2>err.txt &&
  write_spec OPENAI_KEY &&
  test_must_fail_with 65 durin submit --tenant acme s.json 2>err.txt &&
  grep_q "no secret .OPENAI_KEY. in tenant .acme." err.txt &&
  write_spec bad-name &&
  test_must_fail_with 65 durin submit s.json 2>err.txt &&
  grep_q "api_key_secret" err.txt
'

test_expect_success 'a secret scoped to another agent is refused at submit' '
  printf "v\n" | durin secret set SCOPED --scope agent:someone-else 2>/dev/null &&
  write_spec SCOPED &&
  test_must_fail_with 65 durin submit s.json 2>err.txt &&
  grep_q "scoped to .agent:someone-else." err.txt
'

# The same check through the HTTP API (one submit path), and a run made
# there that serve's own worker drives with the key from the vault.
api_spec() { # api_spec SECRET
  cat <<JSON
{"spec": {"name": "api", "goal": "say hi", "tools": ["finish"],
  "model": {"provider": "openai", "name": "gpt-4o-mini",
            "base_url": "http://127.0.0.1:$PORT/v1",
            "api_key_secret": "$1", "max_retries": 0, "timeout_s": 10}}}
JSON
}

# serve takes no runs over the network without the sandbox.
if "$DURIN" sandbox -- true 2>/dev/null; then
test_expect_success 'POST /v1/runs: an unknown secret is 422 naming it; a known one authenticates' '
  OP=$(make_token ops operator) && test -n "$OP" &&
  finish_reply &&
  start_fake replies.json &&
  start_serve &&
  test "$(api "$OP" POST /v1/runs -d "$(api_spec NO_SUCH_KEY)")" = 422 &&
  test "$(body_field .error.code)" = bad_spec &&
  body_field .error.message | grep_q "no secret .NO_SUCH_KEY." &&
  test "$(api "$OP" POST /v1/runs -d "$(api_spec OPENAI_KEY)")" = 201 &&
  id=$(body_field .id) &&
  wait_for 30 "test \"\$(status_of $id)\" = succeeded" &&
  test "$(wc -l <requests.log)" = 1 &&
  stop_serve &&
  stop_fake &&
  no_value_in "$SERVE_LOG"
'
else
  test_skip 'POST /v1/runs with secrets' 'this host cannot build the sandbox'
fi

if "$DURIN" sandbox -- true 2>/dev/null; then
test_expect_success '/v1/secrets: an admin stores, rotates, lists and deletes; no answer holds a value' '
  ADM=$(make_token sec-admin admin) && test -n "$ADM" &&
  OPR=$(make_token sec-op operator) && test -n "$OPR" &&
  TADM=$(make_token sec-tadmin admin acme) && test -n "$TADM" &&
  start_serve &&
  API_VALUE=api-value-9c8b7a6d5e4f &&
  test "$(api "$ADM" PUT /v1/secrets/API_TOKEN -d "{\"value\": \"$API_VALUE\"}")" = 201 &&
  test "$(body_field .version)" = 1 &&
  test "$(body_field .tenant)" = default &&
  ! grep_q "$API_VALUE" "$TRASH/.body" &&
  test "$(api "$ADM" PUT /v1/secrets/API_TOKEN -d "{\"value\": \"$API_VALUE-2\", \"scope\": \"agent:api\"}")" = 200 &&
  test "$(body_field .version)" = 2 &&
  test "$(body_field .scope)" = agent:api &&
  test "$(api "$ADM" GET /v1/secrets)" = 200 &&
  body_field ".secrets[].name" | grep_q "^API_TOKEN$" &&
  body_field ".secrets[].name" | grep_q "^OPENAI_KEY$" &&
  ! grep_q "$API_VALUE" "$TRASH/.body" &&
  test "$(api "$ADM" GET /v1/secrets/API_TOKEN)" = 200 &&
  test "$(body_field .key_id)" = "$(durin secret ls --json | jq -r ".[] | select(.name == \"API_TOKEN\") | .key_id")" &&
  test "$(api "$OPR" GET /v1/secrets)" = 403 &&
  test "$(api "$OPR" PUT /v1/secrets/X_TOKEN -d "{\"value\": \"abcdefgh\"}")" = 403 &&
  test "$(api "$TADM" PUT "/v1/secrets/X_TOKEN?tenant=default" -d "{\"value\": \"abcdefgh\"}")" = 403 &&
  test "$(api "$TADM" PUT /v1/secrets/X_TOKEN -d "{\"value\": \"abcdefgh\"}")" = 201 &&
  test "$(body_field .tenant)" = acme &&
  test "$(api "$TADM" GET /v1/secrets/API_TOKEN)" = 404 &&
  test "$(api "$TADM" GET /v1/secrets)" = 200 &&
  test "$(body_field ".secrets | length")" = 1 &&
  test "$(api "$ADM" PUT /v1/secrets/bad-name -d "{\"value\": \"abcdefgh\"}")" = 400 &&
  test "$(api "$ADM" PUT /v1/secrets/EMPTY -d "{\"value\": \"\"}")" = 400 &&
  test "$(body_field .error.field)" = value &&
  test "$(api "$ADM" PUT /v1/secrets/EMPTY -d "{\"valu\": \"x\"}")" = 400 &&
  test "$(api "$ADM" DELETE /v1/secrets/API_TOKEN)" = 204 &&
  test "$(api "$ADM" GET /v1/secrets/API_TOKEN)" = 404 &&
  test "$(api "$TADM" DELETE /v1/secrets/X_TOKEN)" = 204 &&
  stop_serve &&
  ! grep_q "$API_VALUE" "$SERVE_LOG" &&
  ! durin secret ls | grep_q API_TOKEN
'

test_expect_success '/v1/secrets: a server without a master key says so (503), storing nothing' '
  ADM2=$(make_token sec-admin2 admin) &&
  DURIN_MASTER_KEY_FILE="$TRASH/no-such.key" start_serve &&
  test "$(api "$ADM2" PUT /v1/secrets/LATER -d "{\"value\": \"abcdefgh\"}")" = 503 &&
  test "$(body_field .error.code)" = no_master_key &&
  stop_serve &&
  grep_q "no master key" "$SERVE_LOG" &&
  ! durin secret ls | grep_q LATER
'
else
  test_skip '/v1/secrets' 'this host cannot build the sandbox'
fi

test_expect_success 'rotation: a worker with the previous key opens values under either' '
  durin secret keygen -o "$TRASH/rot.key" 2>/dev/null &&
  finish_reply &&
  start_fake replies.json &&
  write_spec OPENAI_KEY &&
  DURIN_MASTER_KEY_FILE="$TRASH/rot.key" \
    DURIN_MASTER_KEY_PREVIOUS_FILE="$HOME/.config/durin/master.key" \
    durin run s.json >out.txt 2>err.txt &&
  test "$(status_of $(run_id_of out.txt))" = succeeded &&
  stop_fake &&
  no_value_in out.txt err.txt
'

test_expect_success 'rekey seals every value again under the new key' '
  old_id=$(durin secret ls --json | jq -r ".[0].key_id") &&
  ver=$(durin secret ls --json | jq -r ".[] | select(.name == \"OPENAI_KEY\") | .version") &&
  test_must_fail_with 64 durin secret rekey 2>err.txt &&
  grep_q "give the old key" err.txt &&
  DURIN_MASTER_KEY_FILE="$TRASH/rot.key" \
    durin secret rekey --from "$HOME/.config/durin/master.key" >out.txt &&
  grep_q "^sealed [1-9][0-9]* secrets\{0,1\} again under key" out.txt &&
  new_id=$(durin secret ls --json | jq -r ".[0].key_id") &&
  test "$new_id" != "$old_id" &&
  test -z "$(durin secret ls --json | jq -r ".[] | select(.key_id != \"$new_id\") | .name")" &&
  test "$(durin secret ls --json | jq -r ".[] | select(.name == \"OPENAI_KEY\") | .version")" = $((ver + 1)) &&
  DURIN_MASTER_KEY_FILE="$TRASH/rot.key" \
    durin secret rekey --from "$HOME/.config/durin/master.key" >out.txt &&
  grep_q "^sealed 0 secrets again" out.txt &&
  DURIN_MASTER_KEY_FILE="$TRASH/rot.key" \
    test_must_fail_with 64 durin secret rekey --from "$TRASH/rot.key" 2>err.txt &&
  grep_q "the old key is the current master key" err.txt
'

test_expect_success 'after rekey the new key opens the value and the old one does not' '
  finish_reply &&
  start_fake replies.json &&
  write_spec OPENAI_KEY &&
  DURIN_MASTER_KEY_FILE="$TRASH/rot.key" durin run s.json >out.txt 2>err.txt &&
  test "$(status_of $(run_id_of out.txt))" = succeeded &&
  test_must_fail_with 1 durin run s.json >out.txt 2>err.txt &&
  col_of $(run_id_of out.txt) reason | grep_q "wrong master key" &&
  stop_fake &&
  no_value_in out.txt err.txt
'

test_expect_success 'rm deletes it; ls no longer shows it' '
  durin secret rm OPENAI_KEY 2>err.txt &&
  ! durin secret ls | grep_q OPENAI_KEY &&
  test_must_fail_with 5 durin secret rm OPENAI_KEY 2>err.txt &&
  write_spec OPENAI_KEY &&
  test_must_fail_with 65 durin submit s.json 2>err.txt
'

test_done
