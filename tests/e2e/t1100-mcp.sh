#!/bin/sh
# MCP servers in real runs: the reference servers from npm
# (@modelcontextprotocol/server-everything over stdio in the run's sandbox
# and over streamable HTTP, server-filesystem on the workspace) and a fake
# one (tests/helpers/mcp-fake.py) that misbehaves on demand. Their tools
# are offered as SERVER__TOOL, go through policy and the ledger, and an
# MCP call cut by a crash follows the ledger's rules.
. "$(dirname "$0")/lib-test.sh"

BIN="$SRCDIR/tests/js/node_modules/.bin"
[ -x "$BIN/mcp-server-everything" ] && [ -x "$BIN/mcp-server-filesystem" ] ||
  test_skip_all "no MCP reference servers (make npm-deps)"
command -v node >/dev/null || test_skip_all "no node"
FAKE="$SRCDIR/tests/helpers/mcp-fake.py"
# In the sandbox when this host can build it; the servers need the
# packages and the fake server read-only.
SB=""
BOX=", \"sandbox\": {\"ro\": [\"$SRCDIR/tests/js/node_modules\", \"$SRCDIR/tests/helpers\"]}"
if ! "$DURIN" sandbox -- true 2>/dev/null; then
  SB="--sandbox none"
  BOX=""
fi
make_project

# A spec: mcp_servers $1, script turns $2, extra fields $3.
spec() {
  cat >"$TRASH/s.json" <<JSON
{"goal": "use the servers", "workspace": "project",
 "mcp_servers": $1,
 "model": {"provider": "script", "turns": [$2,
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}
 $BOX ${3-}}
JSON
}
everything="{\"everything\": {\"command\": [\"$BIN/mcp-server-everything\", \"stdio\"]}}"
fake() { echo "{\"fake\": {\"command\": [\"python3\", \"$FAKE\", \"${1:-good}\"]${2-}}}"; }
call() { echo "{\"name\": \"$1\", \"arguments\": $2}"; }
# Result text of run $1's tool_result number $2 (from 1).
result_of() {
  sql "select json_extract(data, '\$.output') from events where run_id = '$1' and type = 'tool_result' order by seq limit 1 offset $(( $2 - 1 ))"
}
ok_of() {
  sql "select json_extract(data, '\$.ok') from events where run_id = '$1' and type = 'tool_result' order by seq limit 1 offset $(( $2 - 1 ))"
}
ws_of() { sql "select workspace from runs where id = '$1'"; }

test_expect_success 'server-everything over stdio: echo and get-sum in a real run' '
  spec "$everything" "{\"tool_calls\": [$(call everything__echo "{\"message\": \"hello mcp\"}"),
    $(call everything__get-sum "{\"a\": 2, \"b\": 40}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(result_of $id 1)" = "Echo: hello mcp" &&
  test "$(result_of $id 2)" = "The sum of 2 and 40 is 42." &&
  # Both are readOnlyHint: pure, no ledger rows.
  test "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"'")" = 0 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_tools'"'"'" >tools.json &&
  grep_q "\"name\": *\"everything__echo\", *\"effect\": *\"pure\"" tools.json &&
  grep_q "\"protocol\": *\"2025-11-25\"" tools.json &&
  events_contiguous $id
'

FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test
test_expect_success 'the model is offered the tools, named SERVER__TOOL, with their schemas' '
  { echo "[" &&
    chat_completion 1 everything__echo "\"{\\\"message\\\": \\\"via openai\\\"}\"" && echo , &&
    chat_completion 2 finish "\"{\\\"summary\\\": \\\"ok\\\"}\"" &&
    echo "]"; } >replies.json &&
  start_fake replies.json &&
  cat >o.json <<JSON &&
{"goal": "g", "workspace": "project", "tools": ["finish"],
 "mcp_servers": $everything,
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"}
 $BOX}
JSON
  durin run $SB o.json >out.txt 2>err.txt;
  stop_fake;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(result_of $id 1)" = "Echo: via openai" &&
  head -n 1 requests.log >req1 &&
  grep_q "\"name\": *\"everything__echo\"" req1 &&
  grep_q "\"name\": *\"everything__get-sum\"" req1 &&
  grep_q "\"message\": *{\"type\": *\"string\"" req1
'

test_expect_success 'a spec override makes a tool unsafe: it gets a ledger intent and outcome' '
  spec "{\"everything\": {\"command\": [\"$BIN/mcp-server-everything\", \"stdio\"], \"tools\": {\"echo\": {\"effect\": \"unsafe\"}}}}" \
    "{\"tool_calls\": [$(call everything__echo "{\"message\": \"x\"}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 1")" = 1
'

test_expect_success 'server-filesystem works on the run workspace' '
  spec "{\"fs\": {\"command\": [\"$BIN/mcp-server-filesystem\", \".\"]}}" \
    "{\"tool_calls\": [$(call fs__write_file "{\"path\": \"note.txt\", \"content\": \"from mcp\"}"),
      $(call fs__list_directory "{\"path\": \".\"}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(cat "$(ws_of $id)/note.txt")" = "from mcp" &&
  result_of $id 2 | grep_q "note.txt"
'

test_expect_success 'an isError result goes back to the model as a failed call' '
  spec "$(fake)" "{\"tool_calls\": [$(call fake__fail "{}"), $(call fake__ok "{\"text\": \"still here\"}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(ok_of $id 1)" = 0 &&
  result_of $id 1 | grep_q "the disk is on fire" &&
  test "$(result_of $id 2)" = "ok: still here"
'

test_expect_success 'a tool with an invalid inputSchema is left out, saying why' '
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_tools'"'"'" >tools.json &&
  grep_q "badschema.*left out.*inputSchema" tools.json &&
  ! grep_q "\"fake__badschema\"" tools.json &&
  grep_q "badschema.*left out" err.txt
'

test_expect_success 'tools listed over several pages are all offered' '
  spec "$(fake paged)" "{\"tool_calls\": [$(call fake__slow "{}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(result_of $id 1)" = "slow done"
'

test_expect_success 'progress notifications show in the log' '
  n=$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_progress'"'"'") &&
  test "$n" = 3 &&
  durin logs $id | grep_q "step 3" &&
  grep_q "\"progressToken\": \"$id:1:0\"" "$(ws_of $id)/mcp-fake.log"
'

test_expect_success 'policy decides on SERVER__TOOL, and "SERVER__*" matches all of a server' '
  spec "$(fake)" "{\"tool_calls\": [$(call fake__ok "{\"text\": \"x\"}"), $(call fake__fail "{}")]}" \
    ", \"policy\": {\"tools\": {\"fake__ok\": \"allow\"}, \"rules\": [{\"name\": \"no-fake\", \"tool\": \"fake__*\", \"action\": \"deny\"}]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  result_of $id 1 | grep_q "denied by policy (spec no-fake)" &&
  result_of $id 2 | grep_q "denied by policy (spec no-fake)" &&
  ! grep_q "tools/call" "$(ws_of $id)/mcp-fake.log"
'

test_expect_success 'MCP calls count against the tool-call budget' '
  spec "$(fake)" "{\"repeat\": 10, \"tool_calls\": [$(call fake__ok "{\"text\": \"again\"}")]}" \
    ", \"budget\": {\"steps\": 0, \"tool_calls\": 2}" &&
  durin run $SB s.json >out.txt 2>err.txt;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = budget_exceeded &&
  col_of $id reason | grep_q "tool-call budget of 2" &&
  test "$(sql "select tool_calls from runs where id = '"'"'$id'"'"'")" = 2
'

test_expect_success 'a server that never finishes its opening fails the run, saying so' '
  spec "$(fake mute ", \"timeout_s\": 1")" "{\"tool_calls\": [$(call fake__ok "{\"text\": \"x\"}")]}" &&
  test_must_fail durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  col_of $id reason | grep_q "did not finish its opening (initialize, tools/list) within 1000 ms"
'

test_expect_success 'a server on an unsupported protocol version fails the run, saying so' '
  spec "$(fake oldversion)" "{\"tool_calls\": [$(call fake__ok "{\"text\": \"x\"}")]}" &&
  test_must_fail durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  col_of $id reason | grep_q "protocol version .2024-11-05."
'

for bad in garbage huge stray; do
  test_expect_success "a server that answers $bad is cut off; the model and the log say why" '
    spec "$(fake)" "{\"tool_calls\": [$(call fake__$bad "{}"), $(call fake__ok "{\"text\": \"x\"}")]}" &&
    durin run $SB s.json >out.txt 2>err.txt &&
    id=$(run_id_of out.txt) &&
    test "$(status_of $id)" = succeeded &&
    test "$(ok_of $id 1)" = 0 &&
    result_of $id 1 >r1 &&
    grep_q "mcp server .fake. sent .*cut off" r1 &&
    result_of $id 2 | grep_q "not running" &&
    test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_notice'"'"'")" -ge 1
  '
done

test_expect_success 'a server that answers and exits at once: the answer counts' '
  for i in 1 2 3; do
    spec "$(fake)" "{\"tool_calls\": [$(call fake__lastword "{}")]}" &&
    durin run $SB s.json >out.txt 2>err.txt &&
    id=$(run_id_of out.txt) &&
    test "$(result_of $id 1)" = "said before exiting" || return 1
  done
'

test_expect_success 'a server that dies mid-call fails the call and is restarted' '
  spec "$(fake)" "{\"tool_calls\": [$(call fake__die "{}")]},
    {\"tool_calls\": [$(call fake__ok "{\"text\": \"again\"}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  result_of $id 1 | grep_q "exited with status 3.*dying on purpose" &&
  grep_q "restarting it in 500 ms" err.txt
'

test_expect_success 'a call over its timeout is cancelled with notifications/cancelled' '
  spec "$(fake good ", \"timeout_s\": 1")" "{\"tool_calls\": [$(call fake__slow "{\"seconds\": 30}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  result_of $id 1 | grep_q "did not answer within 1000 ms" &&
  grep_q "notifications/cancelled.*\"requestId\": 3" "$(ws_of $id)/mcp-fake.log"
'

test_expect_success 'durin cancel stops an MCP call in flight with notifications/cancelled' '
  spec "$(fake)" "{\"tool_calls\": [$(call fake__slow "{\"seconds\": 60}")]}" &&
  rm -f rc && ( "$DURIN" run $SB s.json >bg.txt 2>&1; echo $? >rc ) &
  i=0; while [ -z "$(run_id_of bg.txt)" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done &&
  id=$(run_id_of bg.txt) &&
  i=0; while [ "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_progress'"'"'" 2>/dev/null)" != 3 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done &&
  durin cancel $id >c.txt &&
  i=0; while [ ! -s rc ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done &&
  test "$(status_of $id)" = cancelled &&
  grep_q "notifications/cancelled" "$(ws_of $id)/mcp-fake.log"
'

test_expect_success 'a crash after an unsafe MCP call, before its outcome: needs_human on resume' '
  spec "$(fake good ", \"tools\": {\"ok\": {\"effect\": \"unsafe\"}}")" \
    "{\"tool_calls\": [$(call fake__ok "{\"text\": \"once\"}")]}" &&
  env DURIN_CRASH_AT=tool_exit "$DURIN" run $SB s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = running &&
  test "$(sql "select count(*) from ledger where run_id = '"'"'$id'"'"' and done = 0")" = 1 &&
  test_must_fail durin resume $SB $id >res.txt 2>&1 &&
  test "$(status_of $id)" = needs_human &&
  col_of $id reason | grep_q "fake__ok"
'

test_expect_success 'a server that calls the tool read-only after the crash: still needs_human' '
  spec "$(fake flip)" "{\"tool_calls\": [$(call fake__ok "{\"text\": \"once\"}")]}" &&
  env DURIN_CRASH_AT=tool_exit "$DURIN" run $SB s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = running &&
  test "$(sql "select effect from ledger where run_id = '"'"'$id'"'"'")" = unsafe &&
  touch "$(ws_of $id)/flip-readonly" &&
  test_must_fail durin resume $SB $id >res.txt 2>&1 &&
  test "$(status_of $id)" = needs_human &&
  test "$(grep -c "\"name\": \"ok\"" "$(ws_of $id)/mcp-fake.log")" = 1
'

test_expect_success 'a server that no longer lists the tool after the crash: needs_human, then skip' '
  spec "$(fake flip)" "{\"tool_calls\": [$(call fake__ok "{\"text\": \"once\"}")]}" &&
  env DURIN_CRASH_AT=tool_exit "$DURIN" run $SB s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = running &&
  touch "$(ws_of $id)/flip-gone" &&
  test_must_fail durin resume $SB $id >res.txt 2>&1 &&
  test "$(status_of $id)" = needs_human &&
  col_of $id reason | grep_q "no longer lists the tool" &&
  durin resume $SB --skip-call $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  result_of $id 1 | grep_q "outcome unknown" &&
  test "$(grep -c "\"name\": \"ok\"" "$(ws_of $id)/mcp-fake.log")" = 1
'

test_expect_success 'the same crash with an idempotent MCP call: run again on resume' '
  spec "$(fake)" "{\"tool_calls\": [$(call fake__ok "{\"text\": \"twice\"}")]}" &&
  env DURIN_CRASH_AT=tool_exit "$DURIN" run $SB s.json >out.txt 2>&1;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = running &&
  durin resume $SB $id >res.txt 2>&1 &&
  test "$(status_of $id)" = succeeded &&
  test "$(result_of $id 1)" = "ok: twice" &&
  test "$(grep -c "\"name\": \"ok\"" "$(ws_of $id)/mcp-fake.log")" = 2 &&
  # The tools were recorded once: the resumed worker found the same list.
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_tools'"'"'")" = 1
'

test_expect_success 'SIGKILL of the worker during an MCP call: the ledger rules hold' '
  spec "$(fake good ", \"tools\": {\"slow\": {\"effect\": \"unsafe\"}}")" \
    "{\"tool_calls\": [$(call fake__slow "{\"seconds\": 60}")]}" &&
  "$DURIN" run $SB s.json >kill.txt 2>&1 &
  pid=$! &&
  i=0; while [ -z "$(run_id_of kill.txt)" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done &&
  id=$(run_id_of kill.txt) &&
  i=0; while ! in_tool $id 2>/dev/null && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done &&
  kill -KILL $pid; wait $pid;
  test "$(status_of $id)" = running &&
  test_must_fail durin resume $SB $id >res.txt 2>&1 &&
  test "$(status_of $id)" = needs_human
'

# The fake server of the next test, by its log (named after this test's
# directory: the same test may run at once on the other store): how many
# run.
WK="wk-$(basename "$TRASH").log"
fakes() {
  for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f" 2>/dev/null; echo; done |
    grep -c "mcp-fake.py good $WK \$"
}
test_expect_success 'a worker SIGKILLed during an idempotent MCP call: its server dies, another worker runs the call again' '
  cat >wk.json <<JSON &&
{"goal": "g", "workspace": "project",
 "mcp_servers": {"fake": {"command": ["python3", "$FAKE", "good", "$WK"],
                          "tools": {"slow": {"effect": "idempotent"}}}},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [$(call fake__slow "{\"seconds\": 3}")]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}
 $BOX}
JSON
  id=$(durin submit wk.json) || return 1
  "$DURIN" worker $SB --lease-ttl 2s >w1.log 2>&1 &
  wp=$!
  bg_pids="$bg_pids $wp"
  wait_for 60 "in_tool $id" &&
  wait_for 10 "test \$(fakes) -ge 1" &&
  kill -KILL $wp && { wait $wp; true; } &&
  wait_for 10 "test \$(fakes) = 0" &&
  test "$(status_of $id)" = running || return 1
  "$DURIN" worker $SB --lease-ttl 2s --poll 100ms >w2.log 2>&1 &
  wp=$!
  bg_pids="$bg_pids $wp"
  wait_for 90 "test \"\$(status_of $id)\" = succeeded" &&
  kill -TERM $wp && { wait $wp; true; } &&
  test "$(result_of $id 1)" = "slow done" &&
  test "$(grep -c "\"name\": \"slow\"" "$(ws_of $id)/$WK")" = 2
'

test_expect_success 'a worker server ("scope": "worker") is started once and shared by its runs' '
  cat >servers.json <<JSON &&
{"shared": {"command": ["python3", "$FAKE", "good", "$TRASH/shared.log"]}}
JSON
  cat >sw.json <<JSON &&
{"goal": "g", "workspace": "project",
 "mcp_servers": {"shared": {"scope": "worker", "tools": {"ok": {"effect": "unsafe"}}}},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [$(call shared__ok "{\"text\": \"hi\"}")]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
  a=$(durin submit sw.json) && b=$(durin submit sw.json) || return 1
  "$DURIN" worker $SB --mcp-servers servers.json --poll 100ms >sw.log 2>&1 &
  wp=$!
  bg_pids="$bg_pids $wp"
  wait_for 60 "test \"\$(status_of $a)\$(status_of $b)\" = succeededsucceeded" &&
  kill -TERM $wp && { wait $wp; true; } &&
  test "$(grep -c "\"method\": \"initialize\"" shared.log)" = 1 &&
  test "$(grep -c "\"method\": \"tools/call\"" shared.log)" = 2 &&
  test "$(result_of $a 1)" = "ok: hi" &&
  # The run effect override applies: an unsafe call with its ledger rows.
  test "$(sql "select count(*) from ledger where run_id = '"'"'$a'"'"' and done = 1")" = 1 &&
  sql "select data from events where run_id = '"'"'$a'"'"' and type = '"'"'mcp_tools'"'"'" | grep_q "\"scope\": *\"worker\""
'

test_expect_success 'a spec naming a worker server this process lacks fails, saying so' '
  test_must_fail durin run $SB sw.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = failed &&
  col_of $id reason | grep_q "this worker has no server of that name"
'

test_expect_success 'streamable HTTP: server-everything on loopback' '
  port=$(python3 -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])") || return 1
  PORT=$port "$BIN/mcp-server-everything" streamableHttp >http.log 2>&1 &
  hp=$!
  bg_pids="$bg_pids $hp"
  i=0; while ! grep_q "listening" http.log && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
  spec "{\"web\": {\"url\": \"http://127.0.0.1:$port/mcp\", \"headers\": {\"X-Test\": \"yes\"}}}" \
    "{\"tool_calls\": [$(call web__echo "{\"message\": \"over http\"}"),
      $(call web__get-sum "{\"a\": 1, \"b\": 2}"),
      $(call web__trigger-long-running-operation "{\"duration\": 1, \"steps\": 2}")]}" &&
  durin run $SB s.json >out.txt 2>err.txt;
  kill $hp; wait $hp;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(result_of $id 1)" = "Echo: over http" &&
  test "$(result_of $id 2)" = "The sum of 1 and 2 is 3." &&
  result_of $id 3 | grep_q "completed" &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_tools'"'"'" | grep_q "\"transport\": *\"http\"" &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_progress'"'"'")" -ge 1
'

test_expect_success 'streamable HTTP: a header from the vault, a session, JSON answers, 2025-03-26' '
  (
    unset DURIN_MASTER_KEY DURIN_MASTER_KEY_FILE CREDENTIALS_DIRECTORY XDG_CONFIG_HOME
    export HOME="$TRASH/home"
    durin secret keygen >/dev/null 2>&1 &&
    printf "%s\n" "tok-9f8e7d6c5b4a3921" | durin secret set MCP_TOKEN 2>/dev/null || exit 1
    rm -f hport
    python3 "$FAKE" http "$TRASH/hport" "$TRASH/http-fake.log" &
    fp=$!
    i=0; while [ ! -s hport ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    spec "{\"h\": {\"url\": \"http://127.0.0.1:$(cat hport)/mcp\", \"headers\": {\"Authorization\": {\"secret\": \"MCP_TOKEN\", \"format\": \"Bearer {}\"}}}}" \
      "{\"tool_calls\": [$(call h__whoami "{}")]}"
    durin run $SB s.json >out.txt 2>err.txt
    rc=$?
    kill $fp; wait $fp
    exit $rc
  ) &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  grep_q "\"Authorization\": \"Bearer tok-9f8e7d6c5b4a3921\"" http-fake.log &&
  grep_q "\"MCP-Protocol-Version\": \"2025-03-26\"" http-fake.log &&
  # What the tool said back is scrubbed before the model or the log see it.
  result_of $id 1 | grep_q "you are Bearer \[secret:MCP_TOKEN\]" &&
  ! sql "select data from events where run_id = '"'"'$id'"'"'" | grep_q tok-9f8e7d6c5b4a3921 &&
  ! grep_q tok-9f8e7d6c5b4a3921 out.txt err.txt &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_tools'"'"'" | grep_q "\"protocol\": *\"2025-03-26\""
'

test_expect_success 'what a dying server says on stderr is scrubbed of secrets' '
  spec "$(fake)" "{\"tool_calls\": [$(call fake__die "{\"say\": \"tok-9f8e7d6c5b4a3921\"}")]}" &&
  HOME="$TRASH/home" durin run $SB s.json >out.txt 2>err.txt;
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'mcp_notice'"'"'" >notice &&
  grep_q "dying on purpose \[secret:MCP_TOKEN\]" notice &&
  # The model sent the value itself (in its arguments); nothing the
  # server said back keeps it.
  ! sql "select data from events where run_id = '"'"'$id'"'"' and type in ('"'"'mcp_notice'"'"', '"'"'tool_result'"'"')" | grep_q tok-9f8e7d6c5b4a3921 &&
  ! grep_q tok-9f8e7d6c5b4a3921 err.txt
'

test_expect_success 'a header secret the tenant does not have is refused at submit' '
  spec "{\"h\": {\"url\": \"http://127.0.0.1:9/mcp\", \"headers\": {\"Authorization\": {\"secret\": \"NO_SUCH\"}}}}" \
    "{\"tool_calls\": []}" &&
  test_must_fail_with 65 durin run $SB s.json 2>err &&
  grep_q "mcp_servers.h.headers.Authorization.secret" err
'

test_expect_success 'a bad mcp_servers field is refused with its path' '
  spec "{\"Bad Name\": {\"command\": [\"x\"]}}" "{\"tool_calls\": []}" &&
  test_must_fail_with 65 durin run $SB s.json 2>err &&
  grep_q "mcp_servers.*Bad Name.*not a server name" err &&
  spec "{\"a\": {\"command\": [\"x\"], \"url\": \"http://x\"}}" "{\"tool_calls\": []}" &&
  test_must_fail_with 65 durin run $SB s.json 2>err &&
  grep_q "mcp_servers.a. needs exactly one" err &&
  spec "{\"a\": {\"command\": [\"x\"], \"tools\": {\"t\": {\"effect\": \"maybe\"}}}}" "{\"tool_calls\": []}" &&
  test_must_fail_with 65 durin run $SB s.json 2>err &&
  grep_q "mcp_servers.a.tools.t.effect" err
'

test_done
