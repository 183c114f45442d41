#!/bin/sh
# Malformed tool calls go back to the model as errors; the run goes on.
. "$(dirname "$0")/lib-test.sh"

make_project
big=$(head -c 3000 /dev/zero | tr '\0' x)
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project",
 "limits": {"max_arg_bytes": 2048},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "launch_missiles", "arguments": {}}]},
   {"tool_calls": [{"name": "bash", "arguments": "{\"command\": \"ls"}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": 42}}]},
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "a", "content": "$big"}}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": "../../etc/passwd"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "printf 'bin\\\\377ary'"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "survived"}}]}
 ]}}
JSON

test_expect_success 'the run survives every malformed call and binary output' '
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' order by seq" >results &&
  sed -n 1p results | grep_q "no tool named .launch_missiles." &&
  sed -n 2p results | grep_q "not valid JSON" &&
  sed -n 3p results | grep_q "must be a string" &&
  sed -n 4p results | grep_q "over the limit of 2048" &&
  sed -n 5p results | grep_q "outside the workspace" &&
  sed -n 6p results | grep_q "bin?ary" &&
  ! test -e project/a
'

test_done
