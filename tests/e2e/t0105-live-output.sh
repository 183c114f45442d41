#!/bin/sh
# What a person watches: the live status line on a terminal, and logs -f
# following a run that another process is driving.
. "$(dirname "$0")/lib-test.sh"

make_project
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"repeat": 5, "tool_calls": [{"name": "bash", "arguments": {"command": "sleep 0.2"}}],
    "usage": {"input_tokens": 100, "output_tokens": 10}},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

if command -v script >/dev/null 2>&1; then
  test_expect_success 'a terminal gets a live status line' '
    script -qec "\"$DURIN\" run s.json" typescript </dev/null >/dev/null 2>&1 &&
    grep -a -q "step 3 | running bash | [0-9]* tokens | .0.0000 | " typescript &&
    grep -a -q "run succeeded" typescript
  '
else
  test_skip 'a terminal gets a live status line' 'script(1) is not installed'
fi

test_expect_success 'without a terminal there is no status line' '
  durin run s.json >plain.txt 2>plain.err &&
  ! grep -q "running bash" plain.txt plain.err
'

test_expect_success 'logs -f follows a run driven elsewhere until it ends' '
  "$DURIN" run s.json >bg.txt 2>&1 &
  i=0; while [ -z "$(run_id_of bg.txt)" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done &&
  id=$(run_id_of bg.txt) &&
  timeout 30 "$DURIN" logs -f $id >follow.txt &&
  wait &&
  grep_q "run succeeded" follow.txt &&
  test "$(grep -c "^\[step" follow.txt)" -ge "$(sql "select count(*) from events where run_id = '"'"'$id'"'"'")"
'

test_done
