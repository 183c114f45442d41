#!/bin/sh
# Workspace templates: runs start from one template directory shared
# copy-on-write (overlayfs), in the sandbox and in the host-side file
# tools alike; each run stores only what it changes, the template never
# changes, and nothing stays mounted on the host.
. "$(dirname "$0")/lib-test.sh"

if ! "$DURIN" sandbox -- true 2>"$TRASH/why"; then
  test_skip_all "this host cannot build the sandbox: $(cat "$TRASH/why")"
fi
if [ "$(id -u)" != 0 ]; then
  test_skip_all "template workspaces mount overlayfs on the host side: root only"
fi

mkdir -p "$TRASH/tmpl/deps" "$TRASH/proj"
echo "lib v1" >"$TRASH/tmpl/deps/lib.txt"
head -c 8000000 /dev/zero >"$TRASH/tmpl/deps/big.bin"
echo main >"$TRASH/proj/main.txt"

# A run that changes a template file, adds and deletes files, reads with
# the host-side tools, and is checked in the same view.
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "proj", "sandbox": {"template": "tmpl"},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "cat deps/lib.txt main.txt; echo changed > deps/lib.txt; echo new > new.txt; rm main.txt"}}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": "deps/lib.txt"}},
                   {"name": "write_file", "arguments": {"path": "deps/from-tool.txt", "content": "w"}},
                   {"name": "list_files", "arguments": {}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "cat deps/from-tool.txt; test -s deps/big.bin && echo big-there"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]},
 "checks": [{"name": "view", "run": "test -f deps/from-tool.txt && test ! -e main.txt && grep -q changed deps/lib.txt"}],
 "max_eval_attempts": 1}
JSON

results() {
  sql "select json_extract(data, '\$.output') from events where run_id = '$1' and type = 'tool_result' order by seq"
}
rundir() { dirname "$(col_of $1 workspace)"; }

test_expect_success 'a run sees the template under its own files, everywhere' '
  durin run s.json >out.txt &&
  id1=$(run_id_of out.txt) &&
  test "$(status_of $id1)" = succeeded &&
  results $id1 >r &&
  grep -q "lib v1" r && grep -q "^main" r &&
  grep -q "^changed" r && grep -q "deps/big.bin" r &&
  grep -q "^w" r && grep -q big-there r
'

test_expect_success 'the template is unchanged; the run stored only its changes' '
  test "$(cat tmpl/deps/lib.txt)" = "lib v1" && test ! -e tmpl/deps/from-tool.txt &&
  up="$(rundir $id1)/layers/upper" &&
  test -f "$up/new.txt" && test -f "$up/deps/lib.txt" &&
  test ! -e "$up/deps/big.bin" &&
  test "$(du -sk "$(rundir $id1)" | cut -f1)" -lt 1000
'

test_expect_success 'a second run (in a worker) starts from the template, not the first run' '
  id2=$(durin submit s.json) || return 1
  "$DURIN" worker --quiet --poll 50ms >wlog 2>&1 &
  wpid=$!
  wait_for 30 "test \$(status_of $id2) = succeeded"; r=$?
  kill -TERM $wpid && wait $wpid && test $r = 0 &&
  results $id2 | grep -q "lib v1"
'

test_expect_success 'diff shows what the agent changed, not the template' '
  durin diff $id1 >d &&
  grep -q "^+changed" d && grep -q "^-main" d && grep -q "^+new" d &&
  ! grep -q big.bin d
'

test_expect_success 'nothing stays mounted on the host' '
  ! grep -q "$TRASH" /proc/self/mountinfo
'

test_expect_success 'a template that does not exist is a spec error' '
  sed "s/\"tmpl\"/\"nope\"/" s.json >bad.json &&
  test_must_fail_with 65 durin run bad.json 2>err &&
  grep -q "sandbox.template" err
'

test_done
