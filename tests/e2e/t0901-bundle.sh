#!/bin/sh
# durin bundle ID and GET /v1/runs/{id}/bundle: one tar.zst with a run's
# log, last state, trace, tool calls, workspace and its diff, check
# outputs, approvals and environment; checked here file by file against
# what the store and the other commands say.
. "$(dirname "$0")/lib-test.sh"

make_project

# A run that plans, writes a file, runs a call that fails (exit 3), asks
# for approval of an rm, finishes while its check fails, fixes that and
# finishes again.
cat >"$TRASH/s.json" <<'JSON'
{"name": "bundled", "goal": "leave a trail", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"text": "planning", "tool_calls": [
     {"name": "update_plan", "arguments": {"plan": [
       {"step": "write notes", "status": "in_progress"},
       {"step": "clean up", "status": "pending"}]}},
     {"name": "bash", "arguments": {"command": "echo hello > notes.txt"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo 'it broke, \"badly\"'; echo second line; exit 3"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "rm -f Makefile"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "first try"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo ok > done.txt"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "notes written, Makefile gone"}}]}]},
 "tools": ["bash", "update_plan", "finish"],
 "checks": [{"name": "done file", "run": "cat done.txt"}],
 "max_eval_attempts": 3,
 "policy": {"rules": [
   {"name": "ask-rm", "tool": "bash", "command_prefix": "rm", "action": "ask"}]}}
JSON

test_cmp_() { diff -u "$1" "$2"; }
STORE_KIND=sqlite
[ "${DURIN_TEST_STORE:-}" = pg ] && STORE_KIND=postgres

# unpack FILE DIR: the bundle's files under DIR.
unpack() { rm -rf "$2" && mkdir -p "$2" && tar --zstd -xf "$1" -C "$2"; }

test_expect_success 'a run with tool calls, a failure, an approval and checks' '
  test_must_fail_with 2 durin run --no-wait s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) && test -n "$id" &&
  test "$(status_of $id)" = waiting_approval &&
  a=$(sql "select id from approvals where run_id = '"'"'$id'"'"'") &&
  DURIN_REVIEWER=alice durin approve $a --comment "fine by me" &&
  durin resume $id >r.txt &&
  test "$(status_of $id)" = succeeded &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'checks'"'"'")" = 2
'

test_expect_success 'durin bundle writes durin-bundle-ID.tar.zst here' '
  durin bundle $id 2>e &&
  test -s durin-bundle-$id.tar.zst && grep -q "wrote durin-bundle-$id.tar.zst" e &&
  unpack durin-bundle-$id.tar.zst b &&
  for f in session.jsonl last_state.json trace.json tool_calls.csv \
    workspace.tar.zst workspace.diff approvals.json env.txt; do
    test -f b/$f || { echo "missing $f"; return 1; }
  done &&
  test -d b/checks &&
  ( cd b && find . -type f | sort ) >files && cat files
'

test_expect_success 'session.jsonl: every event, one JSON object a line, as logs --json' '
  test "$(wc -l <b/session.jsonl)" = "$(sql "select count(*) from events where run_id = '"'"'$id'"'"'")" &&
  jq -e . b/session.jsonl >/dev/null &&
  jq -r .seq b/session.jsonl >seqs && sql "select seq from events where run_id = '"'"'$id'"'"' order by seq" >want &&
  test_cmp_ want seqs &&
  durin logs --json $id >logs.json && cmp logs.json b/session.jsonl
'

test_expect_success 'last_state.json: the checkpoint (step, plan, summary) and the run row' '
  test "$(jq -r .checkpoint.step b/last_state.json)" = "$(sql "select step from checkpoints where run_id = '"'"'$id'"'"'")" &&
  test "$(jq -r ".checkpoint.plan[0].step" b/last_state.json)" = "write notes" &&
  test "$(jq -r .checkpoint.summary b/last_state.json)" = "notes written, Makefile gone" &&
  test "$(jq -r .run.status b/last_state.json)" = succeeded &&
  test "$(jq -r .run.id b/last_state.json)" = $id &&
  test "$(jq -r .run.attempts b/last_state.json)" = "$(col_of $id attempt)" &&
  jq -e ".run.recoveries == 0 and (.run.lease | has(\"owner\")) and (.run.times.created | test(\"T\"))" b/last_state.json
'

test_expect_success 'tool_calls.csv: a header and a row per tool result; the failure is marked' '
  head -n 1 b/tool_calls.csv | tr -d "\r" >h &&
  echo "ts,step,tool,call_id,args_sha256,latency_ms,status,exit_code,error" >hw &&
  test_cmp_ hw h &&
  n=$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"'") &&
  test "$(python3 -c "import csv,sys; print(len(list(csv.reader(open(sys.argv[1], newline=\"\"))))-1)" b/tool_calls.csv)" = "$n" &&
  python3 - b/tool_calls.csv <<-\PY
	import csv, sys
	rows = list(csv.DictReader(open(sys.argv[1], newline="")))
	bad = [r for r in rows if r["status"] == "failed"]
	assert len(bad) == 2, rows  # the exit 3, and the first finish (check failed)
	sh = [r for r in bad if r["tool"] == "bash"]
	assert len(sh) == 1 and sh[0]["exit_code"] == "3", sh
	assert "it broke" in sh[0]["error"] and "second line" not in sh[0]["error"], sh
	assert all(r["ts"].endswith("Z") and "T" in r["ts"] for r in rows)
	assert all(len(r["args_sha256"]) == 64 for r in rows)
	assert sum(r["status"] == "ok" for r in rows) >= 4
	PY
'

test_expect_success 'tool_calls.csv: the approved call hashes as its approval does' '
  h=$(sql "select call_hash from approvals where run_id = '"'"'$id'"'"'") &&
  grep -q ",$h," b/tool_calls.csv
'

test_expect_success 'workspace.diff is durin diff; workspace.tar.zst unpacks to the workspace' '
  durin diff $id >d && cmp d b/workspace.diff && grep -q "notes.txt" d &&
  mkdir ws && tar --zstd -xf b/workspace.tar.zst -C ws &&
  diff -r ws "$(col_of $id workspace)" &&
  test "$(cat ws/notes.txt)" = hello && test ! -e ws/Makefile
'

test_expect_success 'checks/: each attempt with its outputs' '
  test "$(jq -r .passed b/checks/attempt-1/result.json)" = false &&
  test "$(jq -r .passed b/checks/attempt-2/result.json)" = true &&
  test "$(jq -r ".results[0].name" b/checks/attempt-2/result.json)" = "done file" &&
  grep -q "No such file" b/checks/attempt-1/1-done_file.txt &&
  test "$(cat b/checks/attempt-2/1-done_file.txt)" = ok
'

test_expect_success 'approvals.json: the decided approval' '
  test "$(jq -r "length" b/approvals.json)" = 1 &&
  test "$(jq -r ".[0].id" b/approvals.json)" = $a &&
  test "$(jq -r ".[0].state" b/approvals.json)" = approved &&
  durin approvals --all --json >all && grep "$a" all | jq -S . >one &&
  jq -S ".[0]" b/approvals.json >mine && test_cmp_ one mine
'

test_expect_success 'env.txt: version, commit, model, spec hash, workers, store kind; no URL' '
  cat b/env.txt &&
  grep -qx "durin_version [0-9.]*" b/env.txt &&
  grep -q "^durin_commit ." b/env.txt &&
  grep -qx "model $(col_of $id model)" b/env.txt &&
  grep -qx "spec_sha256 $(sql "select spec from run_specs where run_id = '"'"'$id'"'"'" | tr -d "\n" | sha256sum | cut -d" " -f1)" b/env.txt &&
  grep -qx "store $STORE_KIND" b/env.txt &&
  grep -q "^workers ." b/env.txt && grep -qx "lease_owner none" b/env.txt &&
  ! grep -rqF "$DURIN_STORE" b
'

test_expect_success 'trace.json is the run'"'"'s trace, as durin trace prints it; no errors.txt' '
  test ! -e b/errors.txt &&
  jq -e "[.resourceSpans[].scopeSpans[].spans[]] | length > 0" b/trace.json &&
  (unset OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES; durin trace $id) | jq -S . >t1 &&
  jq -S . b/trace.json >t2 && test_cmp_ t1 t2
'

test_expect_success '-o - writes to stdout; -o FILE there' '
  durin bundle -o - $id >s.tar.zst && unpack s.tar.zst s &&
  ( cd s && find . -type f | sort ) >files-s && test_cmp_ files files-s &&
  durin bundle -o sub.tar.zst $id && test -s sub.tar.zst
'

test_expect_success 'an unknown run: exit 5 and a clear message, no file' '
  test_must_fail_with 5 durin bundle r0000000000000000 2>e &&
  cat e && grep -q "r0000000000000000" e &&
  test ! -e durin-bundle-r0000000000000000.tar.zst
'

test_expect_success 'an unwritable -o: a clear error, nothing half-written' '
  mkdir ro && chmod 555 ro &&
  if [ "$(id -u)" = 0 ]; then out=/proc/durin-bundle.tar.zst; else out=ro/b.tar.zst; fi &&
  test_must_fail durin bundle -o $out $id 2>e &&
  cat e && grep -q "cannot write .$out" e &&
  test -z "$(ls ro)" && test ! -e "$out" &&
  test_must_fail durin bundle -o nodir/b.tar.zst $id 2>e &&
  grep -q "cannot write .nodir/b.tar.zst.*No such file" e && test ! -e nodir
'

test_expect_success 'a write that fails halfway (a file size limit between the workspace and the bundle): an error, no file left' '
  w=$(col_of $id workspace) &&
  head -c 2250000 /dev/urandom | base64 >"$w/big.txt" &&
  python3 -c "import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (3500000, 3500000))
os.execv(sys.argv[1], sys.argv[1:])" "$DURIN" bundle -o big.tar.zst $id 2>e;
  rc=$? && rm -f "$w/big.txt" && cat e && test $rc = 4 &&
  grep -q "bundle of run .$id.: cannot write" e && test -z "$(ls | grep "^big.tar.zst")"
'

test_expect_success 'GET /v1/runs/{id}/bundle: the same files for a viewer' '
  start_serve &&
  V=$(make_token eyes viewer) && B=$(make_token other viewer tb) && test -n "$V" &&
  test "$(api "$V" GET /v1/runs/$id/bundle)" = 200 &&
  grep -qi "^content-type: application/zstd" "$TRASH/.headers" &&
  grep -qi "^content-disposition: attachment; filename=\"durin-bundle-$id.tar.zst\"" "$TRASH/.headers" &&
  cp "$TRASH/.body" api.tar.zst && unpack api.tar.zst api &&
  ( cd api && find . -type f | sort ) >files-api && test_cmp_ files files-api &&
  for f in session.jsonl last_state.json trace.json tool_calls.csv workspace.diff env.txt approvals.json; do
    cmp b/$f api/$f || { echo "$f differs"; return 1; }
  done
'

test_expect_success 'GET /v1/runs/{id}/bundle: another tenant 404, no token 401, unknown 404' '
  test "$(api "$B" GET /v1/runs/$id/bundle)" = 404 &&
  test "$(body_field .error.code)" = not_found &&
  test "$(api - GET /v1/runs/$id/bundle)" = 401 &&
  test "$(api "$V" GET /v1/runs/r0000000000000000/bundle)" = 404 &&
  stop_serve
'

test_done
