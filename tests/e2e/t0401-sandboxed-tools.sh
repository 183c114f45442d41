#!/bin/sh
# The built-in tools and the acceptance checks run in the sandbox by
# default, in `durin run` and in workers; --sandbox none is an explicit,
# loud opt-out; a host that cannot build the sandbox is told before
# anything is submitted.
. "$(dirname "$0")/lib-test.sh"

if ! "$DURIN" sandbox -- true 2>"$TRASH/why"; then
  test_skip_all "this host cannot build the sandbox: $(cat "$TRASH/why")"
fi

make_project
mkdir -p "$TRASH/shared" "$TRASH/readonly"
echo host-secret >"$TRASH/secret"
echo visible >"$TRASH/readonly/data"

# $1 as a JSON string.
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }

# A run whose one bash call runs $1, with extra spec fields $2.
spec() {
  cat >"$TRASH/s.json" <<JSON
{"goal": "probe", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": $(json_str "$1")}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}
 ${2-}}
JSON
}

# The bash call's result text of run $1.
result_of() {
  sql "select json_extract(data, '\$.output') from events where run_id = '$1' and type = 'tool_result' order by seq limit 1"
}

test_expect_success 'bash runs in the sandbox: its own id, pid and network namespaces' '
  spec "id -u; hostname; ls /proc | grep -c \"^[0-9]\"; cat /proc/net/dev | grep -c :" &&
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  result_of $id >r &&
  sed -n 2p r | grep -qx 1000 &&
  sed -n 3p r | grep -qx sandbox &&
  test "$(sed -n 4p r)" -lt 10 &&
  sed -n 5p r | grep -qx 1
'

test_expect_success 'host files outside the workspace are out of reach' '
  spec "cat $TRASH/secret; echo x > $TRASH/planted; echo ws > in-ws; cat in-ws" &&
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  result_of $id >r &&
  ! grep -q host-secret r && test ! -e "$TRASH/planted" &&
  grep -q "^ws$" r &&
  ws=$(sql "select workspace from runs where id = '"'"'$id'"'"'") &&
  test "$(cat "$ws/in-ws")" = ws &&
  test "$(stat -c %u "$ws/in-ws")" = "$(stat -c %u "$ws")"
'

test_expect_success 'the spec grants extra read-only and read-write paths' '
  spec "cat $TRASH/readonly/data; echo no > $TRASH/readonly/x; echo yes > $TRASH/shared/y" \
    ", \"sandbox\": {\"ro\": [\"$TRASH/readonly\"], \"rw\": [\"$TRASH/shared\"]}" &&
  durin run s.json >out.txt &&
  result_of $(run_id_of out.txt) >r &&
  grep -q "^visible$" r && test ! -e "$TRASH/readonly/x" &&
  test "$(cat "$TRASH/shared/y")" = yes
'

test_expect_success 'a bad sandbox field in the spec is refused with its name' '
  spec "true" ", \"sandbox\": {\"rw\": [\"$TRASH/nonexistent\"]}" &&
  test_must_fail_with 65 durin run s.json 2>err &&
  grep -q "sandbox.rw\[0\]" err &&
  spec "true" ", \"sandbox\": {\"rw\": [\"/\"]}" &&
  test_must_fail_with 65 durin run s.json 2>err &&
  grep -q "undo the sandbox" err
'

test_expect_success 'the spec sets the memory limit: a hog is killed' '
  spec "python3 -c \"b = bytearray(300 << 20)\" || echo killed \$?" \
    ", \"sandbox\": {\"memory_mb\": 64}" &&
  durin run s.json >out.txt &&
  result_of $(run_id_of out.txt) | grep -q "killed 137"
'

test_expect_success 'acceptance checks run in the sandbox too' '
  cat >s.json <<JSON &&
{"goal": "check", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "checks": [{"name": "escape", "run": "touch $TRASH/from-check; ! cat $TRASH/secret"}],
 "max_eval_attempts": 1}
JSON
  durin run s.json >out.txt &&
  test ! -e "$TRASH/from-check"
'

test_expect_success 'workers run tool calls in the sandbox' '
  spec "id -u; cat $TRASH/secret" &&
  id=$(durin submit s.json) || return 1
  "$DURIN" worker --quiet --poll 50ms >wlog 2>&1 &
  wpid=$!
  wait_for 30 "test \$(status_of $id) = succeeded"; r=$?
  kill -TERM $wpid && wait $wpid && test $r = 0 &&
  result_of $id >r &&
  sed -n 2p r | grep -qx 1000 && ! grep -q host-secret r
'

test_expect_success 'links planted by a command do not lead the host-side file tools out' '
  cat >s.json <<JSON &&
{"goal": "links", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "ln -s $TRASH/secret leak; ln -s $TRASH up; ln -s / root; ln $TRASH/secret hard; mkdir -p d; ln -s ../../.. d/esc; true"}}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": "leak"}},
                   {"name": "read_file", "arguments": {"path": "root/etc/hostname"}},
                   {"name": "read_file", "arguments": {"path": "d/esc/secret"}},
                   {"name": "write_file", "arguments": {"path": "up/planted", "content": "x"}},
                   {"name": "edit_file", "arguments": {"path": "leak", "old_string": "host", "new_string": "hacked"}},
                   {"name": "list_files", "arguments": {"path": "root"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  sql "select json_extract(data, '"'"'\$.ok'"'"') || json_extract(data, '"'"'\$.output'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' order by seq" >res &&
  ! grep -q host-secret res && test ! -e "$TRASH/planted" &&
  test "$(cat "$TRASH/secret")" = host-secret &&
  test "$(grep -c "^0" res)" = 6
'

test_expect_success '--sandbox none runs on the host, with a loud warning' '
  spec "cat $TRASH/secret" &&
  durin run --sandbox none s.json >out.txt 2>err &&
  grep -q "WARNING: --sandbox none" err &&
  result_of $(run_id_of out.txt) | grep -q host-secret
'

test_expect_success '--sandbox takes on or none' '
  test_must_fail_with 64 durin run --sandbox off s.json 2>err &&
  grep -q "on.*or.*none" err
'

test_expect_success 'no sandbox on this host: exit 70, what to do, nothing submitted' '
  before=$(sql "select count(*) from runs") &&
  DURIN_SANDBOX_HELPER=/bin/false test_must_fail_with 70 durin run s.json 2>err &&
  grep -q "cannot build the sandbox" err && grep -q -- "--sandbox none" err &&
  test "$(sql "select count(*) from runs")" = "$before"
'

test_done
