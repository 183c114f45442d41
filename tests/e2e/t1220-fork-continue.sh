#!/bin/sh
# Fork a run at a step (its log and its workspace's git commit of that
# step) and continue an ended run with a new instruction.
. "$(dirname "$0")/lib-test.sh"

command -v git >/dev/null || test_skip_all "no git on this host"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com \
  GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com

RUNS="$TRASH/store/runs"

# A project that is a git repository, as the run's workspace.
make_project
git -C "$TRASH/project" init -q &&
  git -C "$TRASH/project" add -A &&
  git -C "$TRASH/project" commit -q -m initial || exit 1

# Steps 1..5 each write notes/step-K.txt and set notes/counter to K; step
# 6 finishes. Turns 7 and 8 are for the continue.
turn() {
  printf '{"tool_calls": [{"name": "write_file", "arguments": {"path": "notes/step-%s.txt", "content": "%s\\n"}}, {"name": "write_file", "arguments": {"path": "notes/counter", "content": "%s\\n"}}]}' "$1" "$1" "$1"
}
FINISH='{"tool_calls": [{"name": "finish", "arguments": {"summary": "notes written"}}]}'
EXTRA='{"tool_calls": [{"name": "write_file", "arguments": {"path": "notes/extra.txt", "content": "one more\n"}}]}'
cat >"$TRASH/s.json" <<JSON
{"goal": "write the notes", "workspace": "project",
 "model": {"provider": "script", "turns": [$(turn 1), $(turn 2), $(turn 3),
   $(turn 4), $(turn 5), $FINISH, $EXTRA, $FINISH]},
 "checks": [{"name": "notes", "run": "test -f notes/step-5.txt"}],
 "budget": {"steps": 6}}
JSON

ev_count() { sql "select count(*) from events where run_id = '$1'"; }
# The log as text: seq, step, type, data.
ev_dump() {
  sql "select seq || ' ' || step || ' ' || type || ' ' || data from events where run_id = '$1' and seq <= $2 order by seq"
}
ev_data() {
  sql "select data from events where run_id = '$1' and type = '$2' order by seq"
}
ck_of() { sql "select data from checkpoints where run_id = '$1'"; }
ck_step() { sql "select json_extract(data, '\$.step') from checkpoints where run_id = '$1'"; }
seq_of() { sql "select min(seq) from events where run_id = '$1' and type = '$2'"; }
type_at() { sql "select type from events where run_id = '$1' and seq = $2"; }
count_of() { sql "select count(*) from events where run_id = '$1' and type = '$2'"; }
max_step_before() { sql "select max(step) from events where run_id = '$1' and seq < $2"; }
spec_of() { sql "select spec from run_specs where run_id = '$1'"; }
last_of() { sql "select data from events where run_id = '$1' and type = '$2' order by seq desc limit 1"; }
branch_of() { git -C "$RUNS/$1/workspace" rev-parse --verify -q "refs/heads/durin/$1"; }

# The commit of step K on RUN's branch (its Durin-Step trailer).
commit_at() {
  git -C "$RUNS/$1/workspace" log --format='%H %(trailers:key=Durin-Step,valueonly,separator=)' "durin/$1" |
    awk -v k="$2" '$2 == k { print $1; exit }'
}

test_expect_success 'a six-step run with git checkpoints' '
  durin run s.json >out.txt &&
  orig=$(run_id_of out.txt) &&
  test "$(status_of $orig)" = succeeded &&
  test "$(col_of $orig steps)" = 6 &&
  test "$(count_of $orig workspace_commit)" = 5 &&
  test -n "$(commit_at $orig 3)" &&
  orig_events=$(ev_count $orig) &&
  ev_dump $orig $orig_events >orig.log &&
  ck_of $orig >orig.ck &&
  orig_branch=$(branch_of $orig) &&
  test -n "$orig_branch"
'

test_expect_success 'fork at step 3 reproduces step 3 (tree, log, checkpoint)' '
  durin fork $orig --at-step 3 --queue >fork.txt &&
  fork=$(sed -n "s/^run \(r[0-9a-f]*\) forked from .*/\1/p" fork.txt) &&
  test -n "$fork" &&
  test "$(status_of $fork)" = queued &&
  fws="$RUNS/$fork/workspace" &&
  test "$(cat "$fws/notes/counter")" = 3 &&
  test -f "$fws/notes/step-3.txt" &&
  test ! -e "$fws/notes/step-4.txt" &&
  step3=$(commit_at $orig 3) &&
  git -C "$RUNS/$orig/workspace" archive "$step3" |
    (mkdir want && cd want && tar xf -) &&
  (cd "$fws" && find . -path ./.git -prune -o -type f -print | sort) >got.list &&
  (cd want && find . -type f -print | sort) >want.list &&
  diff -u want.list got.list &&
  diff -r -x .git want "$fws" &&
  test "$(git -C "$fws" rev-parse "durin/$fork")" = "$step3" &&
  test "$(sql "select json_extract(data, '"'"'\$.git_commit'"'"') from checkpoints where run_id = '"'"'$fork'"'"'")" = "$step3" &&
  k=$(seq_of $fork forked) &&
  ev_dump $orig $((k - 1)) >orig.prefix &&
  ev_dump $fork $((k - 1)) >fork.prefix &&
  diff -u orig.prefix fork.prefix &&
  test "$(max_step_before $fork $k)" = 3 &&
  test "$(ck_step $fork)" = 3 &&
  test "$(col_of $fork steps)" = 3 &&
  ev_data $fork forked | grep_q "\"at_step\":3" &&
  durin logs $fork | grep_q "forked from $orig at step 3"
'

test_expect_success 'the original is untouched' '
  test "$(ev_count $orig)" = "$orig_events" &&
  ck_of $orig >now.ck &&
  diff -u orig.ck now.ck &&
  test "$(branch_of $orig)" = "$orig_branch" &&
  test "$(status_of $orig)" = succeeded
'

test_expect_success 'the fork goes on from step 3 to its own end' '
  durin resume $fork >fresume.txt &&
  test "$(status_of $fork)" = succeeded &&
  test "$(col_of $fork steps)" = 6 &&
  test "$(cat "$RUNS/$fork/workspace/notes/counter")" = 5 &&
  test "$(git -C "$RUNS/$fork/workspace" rev-parse "durin/$fork~2")" = "$step3" &&
  git -C "$RUNS/$fork/workspace" log -1 --format=%B "durin/$fork" | grep_q "Durin-Run: $fork" &&
  test "$(count_of $fork resumed)" = 1 &&
  test "$(ev_count $orig)" = "$orig_events"
'

test_expect_success 'a fork of the fork, and a fork at step 0' '
  durin fork $fork --at-step 2 --queue >fork3.txt &&
  fork3=$(sed -n "s/^run \(r[0-9a-f]*\) forked from .*/\1/p" fork3.txt) &&
  test "$(cat "$RUNS/$fork3/workspace/notes/counter")" = 2 &&
  test "$(ck_step $fork3)" = 2 &&
  durin fork $orig --at-step 0 --queue >fork0.txt &&
  fork0=$(sed -n "s/^run \(r[0-9a-f]*\) forked from .*/\1/p" fork0.txt) &&
  test ! -e "$RUNS/$fork0/workspace/notes" &&
  test "$(ck_step $fork0)" = 0 &&
  test "$(seq_of $fork0 forked)" = 2
'

test_expect_success 'a fork at the step that ended the run is a new attempt' '
  durin fork $orig --at-step 6 --queue >fork6.txt &&
  fork6=$(sed -n "s/^run \(r[0-9a-f]*\) forked from .*/\1/p" fork6.txt) &&
  test "$(seq_of $fork6 run_finished)" -lt "$(seq_of $fork6 forked)" &&
  test "$(sql "select json_extract(data, '"'"'\$.eval_attempts'"'"') from checkpoints where run_id = '"'"'$fork6'"'"'")" = 0 &&
  test -z "$(sql "select json_extract(data, '"'"'\$.summary'"'"') from checkpoints where run_id = '"'"'$fork6'"'"'")" &&
  test "$(cat "$RUNS/$fork6/workspace/notes/counter")" = 5
'

test_expect_success 'fork with a new goal: the pinned goal changes, the agent is told' '
  durin fork $orig --at-step 2 --goal "write only the first notes" --queue >fork2.txt &&
  fork2=$(sed -n "s/^run \(r[0-9a-f]*\) forked from .*/\1/p" fork2.txt) &&
  spec_of $fork2 | grep_q "write only the first notes" &&
  ev_data $fork2 user_message | grep_q "its goal has changed" &&
  test "$(cat "$RUNS/$fork2/workspace/notes/counter")" = 2
'

test_expect_success 'a fork killed before its commit made no run; the original is as it was' '
  runs_before=$(sql "select count(*) from runs") &&
  test_must_fail_with 137 env DURIN_CRASH_AT=fork_before_commit "$DURIN" fork $orig --at-step 2 --queue &&
  test "$(sql "select count(*) from runs")" = "$runs_before" &&
  test "$(ev_count $orig)" = "$orig_events" &&
  ck_of $orig >now.ck && diff -u orig.ck now.ck
'

test_expect_success 'fork refuses a step the run does not have' '
  test_must_fail durin fork $orig --at-step 9 2>err.txt &&
  grep_q "has no step 9: its log holds steps 0 to 6" err.txt &&
  test_must_fail durin fork $orig --at-step x 2>err.txt &&
  grep_q "step number" err.txt
'

test_expect_success 'fork refuses a run without git checkpoints, saying what to do' '
  rm -rf plain && cp -r "$SRCDIR/examples/fix-failing-test/project" plain &&
  sed "s/\"project\"/\"plain\"/" s.json >plain.json &&
  durin run plain.json >pout.txt &&
  plain=$(run_id_of pout.txt) &&
  runs_before=$(ls "$RUNS" | wc -l) &&
  test_must_fail durin fork $plain --at-step 2 2>err.txt &&
  grep_q "no git checkpoints" err.txt &&
  grep_q "git repository" err.txt &&
  test "$(ls "$RUNS" | wc -l)" = "$runs_before"
'

test_expect_success 'continue refuses a run that has not ended' '
  durin submit s.json >sub.txt &&
  queued=$(sed -n "s/^\(r[0-9a-f]*\)$/\1/p; s/^run \(r[0-9a-f]*\) submitted$/\1/p" sub.txt | head -n 1) &&
  test -n "$queued" &&
  test_must_fail durin continue $queued "more" 2>err.txt &&
  grep_q "is queued, not finished" err.txt &&
  grep_q "durin cancel" err.txt &&
  test "$(status_of $queued)" = queued
'

test_expect_success 'continue refuses a spent budget, and says how to raise it' '
  test_must_fail durin continue $orig "write one more note" 2>err.txt &&
  grep_q "step budget of 6 used up" err.txt &&
  grep_q -- "--add-steps" err.txt &&
  test "$(ev_count $orig)" = "$orig_events"
'

test_expect_success 'a continue killed before its commit changed nothing' '
  test_must_fail_with 137 env DURIN_CRASH_AT=continue_before_commit "$DURIN" continue --add-steps 2 $orig "write one more note" &&
  test "$(status_of $orig)" = succeeded &&
  test "$(ev_count $orig)" = "$orig_events" &&
  ck_of $orig >now.ck && diff -u orig.ck now.ck &&
  spec_of $orig | grep_q "\"steps\":6"
'

test_expect_success 'continue appends a new attempt to the same log' '
  durin continue --add-steps 2 $orig "write one more note" >cont.txt &&
  test "$(status_of $orig)" = succeeded &&
  ev_dump $orig $orig_events >after.prefix &&
  diff -u orig.log after.prefix &&
  test "$(type_at $orig $((orig_events + 1)))" = run_continued &&
  test "$(type_at $orig $((orig_events + 2)))" = user_message &&
  ev_data $orig run_continued | grep_q "\"attempt\":2" &&
  ev_data $orig user_message | grep_q "write one more note" &&
  test "$(cat "$RUNS/$orig/workspace/notes/extra.txt")" = "one more" &&
  test "$(col_of $orig steps)" = 8 &&
  last_of $orig checks | grep_q "\"attempt\":1" &&
  spec_of $orig | grep_q "\"steps\":8" &&
  events_contiguous $orig &&
  durin logs $orig | grep_q "continued (attempt 2): write one more note"
'

J='Content-Type: application/json'
if "$DURIN" sandbox -- true 2>/dev/null; then
  # The original's budget is 8 steps now (the continue above raised it),
  # and its fork takes its spec as it is.
  test_expect_success 'the API: fork 201 with Location, continue 202; the serve drives both' '
    OPER=$(make_token ops operator) && test -n "$OPER" &&
    start_serve &&
    test "$(api $OPER POST /v1/runs/$orig/fork -H "$J" -d "{\"at_step\": 1}")" = 201 &&
    afork=$(body_field .id) &&
    test "$(sed -n "s/^Location: *//Ip" .headers | tr -d "\r")" = "/v1/runs/$afork" &&
    step1=$(commit_at $orig 1) && test -n "$step1" &&
    ev_data $afork forked | grep_q "\"commit\":\"$step1\"" &&
    test "$(sql "select created_by from runs where id = '"'"'$afork'"'"'")" = ops &&
    wait_for 60 "test \"\$(status_of $afork)\" = succeeded" &&
    spec_of $afork | grep_q "\"steps\":8" &&
    test "$(api $OPER POST /v1/runs/$afork/continue -H "$J" -d "{\"message\": \"more\"}")" = 202 &&
    test "$(body_field .id)" = "$afork" &&
    wait_for 60 "test \"\$(status_of $afork)\" = succeeded && test \"\$(col_of $afork steps)\" = 8" &&
    test "$(cat "$RUNS/$afork/workspace/notes/extra.txt")" = "one more" &&
    test "$(api $OPER GET /v1/runs/$afork/timeline)" = 200 &&
    grep_q "forked from $orig at step 1" .body &&
    grep_q "continued (attempt 2): more" .body &&
    test "$(api $OPER POST /v1/runs/$afork/continue -H "$J" -d "{\"message\": \"again\"}")" = 409 &&
    body_field .error.message | grep_q "add_steps" &&
    stop_serve
  '
else
  test_skip 'the API: fork and continue' "this host cannot build the sandbox (durin serve needs it)"
fi

test_done
