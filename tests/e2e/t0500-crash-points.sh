#!/bin/sh
# SIGKILL at every named point, then resume: the run succeeds, every
# completed tool call ran exactly once (counted outside the store), event
# sequences are contiguous and the checkpoint is valid. Each point is
# killed twice: through `durin run`, and through `durin worker` holding a
# submitted run. Both are the one engine, so the points and their counts
# are the same.
. "$(dirname "$0")/lib-test.sh"

make_project
C="$TRASH/counters"
cat >"$TRASH/s.json" <<JSON
{"sandbox": {"rw": ["$C"]}, "goal": "g", "workspace": "project",
 "tools": ["bash", "read_file", "write_file", "finish"],
 "checks": [{"name": "file", "run": "test \"\$(cat a.txt)\" = hello"}],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo x >> $C/t1"}}]},
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "a.txt", "content": "hello"}},
                   {"name": "read_file", "arguments": {"path": "a.txt"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo x >> $C/t3"}},
                   {"name": "bash", "arguments": {"command": "echo x >> $C/t3b"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
 ]}}
JSON

# How often each point is reached in one uninterrupted run of s.json.
hits() {
  case $1 in
  after_claim | checks_done) echo 1 ;;
  model_response | ledger_intent | ledger_outcome) echo 4 ;;
  tool_exit | before_commit | after_commit) echo 5 ;;
  *) echo 0 ;;
  esac
}

# Crashes that leave an unsafe call's outcome unknown (intent durable, no
# outcome), and what the operator then decides: after tool_exit the call
# ran, so it is skipped; after ledger_intent it never started, so it is
# retried. Either way each call runs exactly once.
needs_human_at() {
  case $1 in
  tool_exit:1 | tool_exit:4 | tool_exit:5) echo --skip-call ;;
  ledger_intent:1 | ledger_intent:3 | ledger_intent:4) echo --retry-call ;;
  *) return 1 ;;
  esac
}

# Kills `durin run SPEC` at point $2; sets $id.
crash_in_run() {
  env DURIN_CRASH_AT="$2" "$DURIN" run "$1" >out.txt 2>&1
  rc=$?
  if [ $rc != 137 ]; then echo "$2: durin exited $rc, not killed"; cat out.txt; return 1; fi
  id=$(run_id_of out.txt)
  [ -n "$id" ] || { echo "$2: no run id"; return 1; }
}

# The same crash in a fleet worker: SPEC submitted, claimed by a worker
# that is killed at the point; `durin resume` then finishes the run (the
# dead worker's lease holds nothing). Sets $id.
crash_in_worker() {
  id=$("$DURIN" submit "$1") && [ -n "$id" ] || { echo "$2: submit failed"; return 1; }
  env DURIN_CRASH_AT="$2" timeout 60 "$DURIN" worker --max-runs 1 --poll 50ms \
    --no-watchdog >w.txt 2>&1
  rc=$?
  if [ $rc != 137 ]; then echo "$2: worker exited $rc, not killed"; cat w.txt; return 1; fi
}

one_crash() {
  rm -rf "$C" && mkdir -p "$C" && crash_in_run s.json "$1" && finish_after_crash "$1"
}

one_worker_crash() {
  rm -rf "$C" && mkdir -p "$C" && crash_in_worker s.json "$1" && finish_after_crash "$1"
}

# After a crash at $1 of run $id: resume (deciding an unknown outcome as an
# operator would) and check that every call ran exactly once.
finish_after_crash() {
  at=$1
  "$DURIN" resume "$id" >res.txt 2>&1
  rc=$?
  if decision=$(needs_human_at "$at"); then
    if [ $rc != 2 ] || [ "$(status_of $id)" != needs_human ]; then
      echo "$at: expected needs_human, got exit $rc / $(status_of $id)"; cat res.txt; return 1
    fi
    grep -q "outcome is unknown" res.txt || { echo "$at: no reason given"; return 1; }
    "$DURIN" resume "$decision" "$id" >res2.txt 2>&1
    rc=$?
  fi
  if [ $rc != 0 ] || [ "$(status_of $id)" != succeeded ]; then
    echo "$at: resume exited $rc, status $(status_of $id)"; cat res.txt; return 1
  fi
  for f in t1 t3 t3b; do
    runs=$(wc -l <"$C/$f" 2>/dev/null || echo 0)
    if [ "$runs" != 1 ]; then echo "$at: $f ran $runs times"; return 1; fi
  done
  events_contiguous "$id" || { echo "$at: events not contiguous"; return 1; }
  checkpoint_valid "$id" || { echo "$at: bad checkpoint"; return 1; }
  test "$(sql "select count(*) from pending where run_id = '$id'")" = 0 ||
    { echo "$at: pending left"; return 1; }
  # Every tool result after the crash that was recorded is reused, not re-run.
  return 0
}

test_expect_success 'an uninterrupted run succeeds and runs each call once' '
  rm -rf "$C" && mkdir -p "$C" &&
  durin run s.json >out.txt &&
  for f in t1 t3 t3b; do test "$(wc -l <"$C/$f")" = 1 || return 1; done
'

for point in after_claim model_response ledger_intent tool_exit \
             ledger_outcome checks_done before_commit after_commit; do
  hit=1
  while [ $hit -le "$(hits $point)" ]; do
    test_expect_success "SIGKILL at $point:$hit, then resume" "one_crash $point:$hit"
    test_expect_success "SIGKILL of a worker at $point:$hit, then resume" \
      "one_worker_crash $point:$hit"
    hit=$((hit + 1))
  done
done

# The same calls, contained: no read-write bind, and each call counts its
# runs in the workspace itself. Every call writes into a layer of its own,
# merged into the workspace only once its outcome is durable, so a call cut
# by a crash left no trace and is simply run again: no crash needs a human,
# and each count in the final workspace is 1.
cat >"$TRASH/c.json" <<JSON
{"goal": "g", "workspace": "project",
 "tools": ["bash", "read_file", "write_file", "edit_file", "finish"],
 "checks": [{"name": "file", "run": "test \"\$(cat a.txt)\" = hullo"}],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo x >> t1; rm -f Makefile"}}]},
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "a.txt", "content": "hello"}},
                   {"name": "read_file", "arguments": {"path": "a.txt"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo x >> t3"}},
                   {"name": "edit_file", "arguments": {"path": "a.txt", "old_string": "hello", "new_string": "hullo"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
 ]}}
JSON

# How often each point is reached in one uninterrupted run of c.json.
contained_hits() {
  case $1 in
  after_claim | checks_done) echo 1 ;;
  model_response | ledger_intent | ledger_outcome | layer_merge) echo 4 ;;
  tool_exit | before_commit | after_commit) echo 5 ;;
  *) echo 0 ;;
  esac
}

# After a crash at $1 of contained run $id: resume once; it succeeds.
finish_contained() {
  at=$1
  "$DURIN" resume "$id" >res.txt 2>&1
  rc=$?
  if [ $rc != 0 ] || [ "$(status_of $id)" != succeeded ]; then
    echo "$at: resume exited $rc, status $(status_of $id)"; cat res.txt; return 1
  fi
  ws=$(find store -maxdepth 4 -type d -name workspace -path "*/$id/*" | head -n 1)
  for f in t1 t3; do
    runs=$(wc -l <"$ws/$f" 2>/dev/null || echo 0)
    if [ "$runs" != 1 ]; then echo "$at: $f ran $runs times"; return 1; fi
  done
  test "$(cat "$ws/a.txt")" = hullo || { echo "$at: a.txt: $(cat "$ws/a.txt")"; return 1; }
  ! test -e "$ws/Makefile" || { echo "$at: the deletion was lost"; return 1; }
  test -z "$(find "$ws/../calls" -mindepth 1 2>/dev/null)" ||
    { echo "$at: layers left:"; find "$ws/../calls"; return 1; }
  test "$(count_status needs_human)" = 0 || { echo "$at: needs_human"; return 1; }
  events_contiguous "$id" || { echo "$at: events not contiguous"; return 1; }
  checkpoint_valid "$id" || { echo "$at: bad checkpoint"; return 1; }
}

contained_crash() { crash_in_run c.json "$1" && finish_contained "$1"; }
contained_worker_crash() { crash_in_worker c.json "$1" && finish_contained "$1"; }

for point in ledger_intent tool_exit ledger_outcome layer_merge after_commit; do
  hit=1
  while [ $hit -le "$(contained_hits $point)" ]; do
    test_expect_success "contained: SIGKILL at $point:$hit, then resume" \
      "contained_crash $point:$hit"
    test_expect_success "contained: SIGKILL of a worker at $point:$hit, then resume" \
      "contained_worker_crash $point:$hit"
    hit=$((hit + 1))
  done
done

test_expect_success 'contained: a call cut after it ran is run again, and the log says so' '
  contained_crash tool_exit:1 &&
  sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'call_repeated'"'"'" | grep -qx 1
'

test_expect_success 'every named crash point is covered here' '
  env DURIN_CRASH_AT=no_such_point "$DURIN" run s.json >/dev/null 2>err
  points=$(sed -n "s/.*known points: \(.*\))/\1/p" err | tr -d ",") &&
  test -n "$points" &&
  for p in $points; do
    [ $p = commit_cut ] && continue # PostgreSQL only: t0700
    case $p in *fork_before_commit | continue_before_commit) continue ;; esac # t1220
    case $p in schedule_fire | schedule_fired) continue ;; esac # t1300
    [ $p = summary_response ] && continue # t1410
    test "$(hits $p)" -gt 0 || test "$(contained_hits $p)" -gt 0 ||
      { echo "point $p not tested"; return 1; }
  done
'

test_expect_success 'a recorded outcome is reused after a crash, not re-run' '
  one_crash ledger_outcome:2 &&
  sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and data like '"'"'%\"reused\":true%'"'"'" | grep -qx 1 &&
  one_worker_crash ledger_outcome:2 &&
  sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and data like '"'"'%\"reused\":true%'"'"'" | grep -qx 1
'

test_done
