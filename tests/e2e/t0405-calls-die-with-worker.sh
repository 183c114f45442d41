#!/bin/sh
# Nothing a tool call starts outlives the process that started it: after
# SIGKILL of `durin run` or of a worker in the middle of a call, the
# sandbox and the command under it are gone at once, and the command never
# finishes its work. (The sandbox init used to lose its parent-death
# signal when it changed credentials, and went on under PID 1.)
. "$(dirname "$0")/lib-test.sh"

[ -e /proc/self/ns/user ] || test_skip_all "no user namespaces"
mkdir -p "$TRASH/ws"
# A marker argument nothing else on the host uses, to find the command.
MARK="durin-t0404-$$"
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "ws", "tools": ["bash", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "(exec -a $MARK sleep 4); echo survived >> f"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}]}}
JSON

# The call is running when its marked process exists.
running() { test "$(count_cmdline "$MARK 4")" -ge 1; }
survivors() { find "$TRASH/ws" "$TRASH/store" -name f; }

test_expect_success 'SIGKILL of durin run kills the call it was running' '
  "$DURIN" run --no-wait s.json >run.out 2>&1 &
  p=$! &&
  wait_for 20 running &&
  kill -KILL $p && { wait $p; true; } &&
  wait_for 5 "! running" &&
  sleep 5 &&
  test -z "$(survivors)"
'

test_expect_success 'SIGKILL of a worker kills the call it was running' '
  id=$(durin submit s.json) &&
  "$DURIN" worker --lease-ttl 2s >w.log 2>&1 &
  wp=$! &&
  bg_pids="$bg_pids $wp" &&
  wait_for 20 running &&
  kill -KILL $wp && { wait $wp; true; } &&
  wait_for 5 "! running" &&
  sleep 5 &&
  test -z "$(survivors)"
'

test_done
