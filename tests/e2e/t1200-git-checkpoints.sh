#!/bin/sh
# Git checkpoints of the workspace (issue 18): a run over a git repository
# makes a commit per step that changed files on its branch durin/RUN (none
# for a step that only read), with the trailers docs/internals/git.md
# names, in its own copy (the user's repository is untouched); "git": true
# makes a repository where there is none; a SIGKILL between a step's store
# commit and the branch's move is mended by the restore, with no commit
# made twice; the agent is given its progress files and the branch's log
# at start and resume; `durin log` shows the history.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

command -v git >/dev/null || test_skip_all "git is not installed"
export GIT_AUTHOR_NAME=u GIT_AUTHOR_EMAIL=u@example.com \
  GIT_COMMITTER_NAME=u GIT_COMMITTER_EMAIL=u@example.com

test_cmp_() { diff -u "$1" "$2"; }
cd "$TRASH" || exit 1

make_project
git -C project init -q && git -C project add -A &&
  git -C project commit -q -m "the user's work" || exit 1
echo "uncommitted" >project/scratch.txt

# The user's repository as git shows it: status, refs, index bytes.
user_repo_state() {
  git -C project status --porcelain
  git -C project for-each-ref --format="%(refname) %(objectname)"
  sha256sum <project/.git/index
  git -C project config --local --list
}
user_repo_state >user-before.txt

# The uncommitted file goes into the run's opening commit (step 0). A
# step that writes, one that only reads, one that runs a command that
# writes, one that finishes.
cat >s.json <<'JSON'
{"goal": "g", "workspace": "project",
 "tools": ["bash", "read_file", "write_file", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "PROGRESS.md", "content": "step one done\n"}}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": "PROGRESS.md"}}]},
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo hi > b.txt && rm -f Makefile"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
 ]}}
JSON

# The commits of run $1's branch, newest first: "step N subject" lines.
branch_steps() {
  ws=$(col_of "$1" workspace)
  git -C "$ws" log --format="%(trailers:key=Durin-Step,valueonly,separator=)|%s" "durin/$1"
}
# Whether workspace $1 holds exactly the tree of commit $2 (through an
# index of the test's own: the copy's .git/index is the user's).
tree_is() {
  rm -f "$TRASH/tmp-index"
  GIT_INDEX_FILE="$TRASH/tmp-index" git -C "$1" read-tree "$2" &&
    GIT_INDEX_FILE="$TRASH/tmp-index" git -C "$1" diff --quiet &&
    test -z "$(GIT_INDEX_FILE="$TRASH/tmp-index" git -C "$1" ls-files --others --exclude-standard)"
}
ck_commit() { sql "select json_extract(data, '\$.git_commit') from checkpoints where run_id = '$1'"; }

test_expect_success 'a commit per step that changed files, with its trailers' '
  durin run s.json >out.txt 2>&1 &&
  id=$(run_id_of out.txt) && test "$(status_of $id)" = succeeded &&
  ws=$(col_of $id workspace) &&
  branch_steps $id >steps.txt && cat steps.txt &&
  printf "%s\n" "3|step 3: bash" "1|step 1: write_file" \
    "0|step 0: the workspace as the run found it" "|the user'"'"'s work" >want.txt &&
  test_cmp_ want.txt steps.txt &&
  git -C "$ws" log -1 --format=%B durin/$id >msg.txt &&
  grep_q "^Durin-Run: $id\$" msg.txt && grep_q "^Durin-Step: 3\$" msg.txt &&
  grep_q "^Durin-Calls: call_2_0\$" msg.txt &&
  test "$(ck_commit $id)" = "$(git -C "$ws" rev-parse durin/$id)" &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'workspace_commit'"'"'")" = 3 &&
  test "$(sql "select json_extract(data, '"'"'\$.step'"'"') || '"'"' '"'"' || json_extract(data, '"'"'\$.files'"'"') || '"'"' '"'"' || json_extract(data, '"'"'\$.deletions'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'workspace_commit'"'"' order by seq")" = "0 1 0
1 1 0
3 2 $(wc -l <project/Makefile)" &&
  git -C "$ws" show --stat --format= durin/$id >stat.txt && grep_q "b.txt" stat.txt &&
  grep_q Makefile stat.txt &&
  tree_is "$ws" durin/$id &&
  git -C "$ws" show durin/$id~2:scratch.txt | grep_q uncommitted
'

# A fleet worker snapshots on its thread pool: the same commits. Runs
# `durin worker` until run $1 succeeded, then stops it.
worker_until_done() {
  "$DURIN" worker --poll 50ms --no-watchdog >w.txt 2>&1 &
  wpid=$!
  wait_for 60 "test \"\$(status_of $1)\" = succeeded"
  _rc=$?
  kill "$wpid"; wait "$wpid"
  return $_rc
}

test_expect_success 'a fleet worker makes the same commits' '
  idw=$(durin submit s.json) && worker_until_done $idw &&
  branch_steps $idw >stepsw.txt && cat stepsw.txt &&
  test_cmp_ want.txt stepsw.txt &&
  test "$(ck_commit $idw)" = "$(git -C "$(col_of $idw workspace)" rev-parse durin/$idw)"
'

test_expect_success 'the user repository is untouched' '
  user_repo_state >user-after.txt && test_cmp_ user-before.txt user-after.txt &&
  test -z "$(git -C project branch --list "durin/*")"
'

test_expect_success 'durin log: the commits with their steps, newest first' '
  durin log $id >log.txt && cat log.txt &&
  grep_q "^branch durin/$id\$" log.txt &&
  grep "^step" log.txt | awk "{ print \$1, \$2 }" >got.txt &&
  printf "step 3\nstep 1\nstep 0\n" >want.txt && test_cmp_ want.txt got.txt &&
  grep_q "^start .* the user.s work" log.txt &&
  grep_q "2 files changed, 1 insertion(+)" log.txt &&
  durin log --json $id >log.json &&
  test "$(jq -r "[.[] | .step] | @csv" log.json)" = "3,1,0," &&
  test "$(jq -r ".[0].commit" log.json)" = "$(ck_commit $id)" &&
  durin log --json -n 1 $id | jq -e "length == 1" >/dev/null &&
  durin show $id | grep_q "^commit    $(ck_commit $id | cut -c1-12)"
'

test_expect_success 'durin diff leaves the repository out' '
  durin diff $id >diff.txt && grep_q "^+++ b/b.txt" diff.txt &&
  ! grep_q "\.git/" diff.txt
'

test_expect_success 'durin log of a run without git says why' '
  rm -rf plain && cp -r "$SRCDIR/examples/fix-failing-test/project" plain &&
  sed "s/\"workspace\": \"project\"/\"workspace\": \"plain\"/" s.json >p.json &&
  durin run p.json >out2.txt 2>&1 && id2=$(run_id_of out2.txt) &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id2'"'"' and type like '"'"'workspace%'"'"'")" = 0 &&
  test ! -e "$(col_of $id2 workspace)/.git" &&
  test_must_fail_with 64 durin log $id2 2>err.txt &&
  grep_q "has no git checkpoints" err.txt && grep_q "\"git\": true" err.txt
'

test_expect_success '"git": true makes a repository where there is none' '
  rm -rf plain && cp -r "$SRCDIR/examples/fix-failing-test/project" plain &&
  jq ". + {git: true, workspace: \"plain\"}" s.json >t.json &&
  durin run t.json >out3.txt 2>&1 && id3=$(run_id_of out3.txt) &&
  test "$(status_of $id3)" = succeeded &&
  test ! -e plain/.git &&
  branch_steps $id3 >steps3.txt && cat steps3.txt &&
  printf "%s\n" "3|step 3: bash" "1|step 1: write_file" "0|step 0: the workspace as the run found it" >want.txt &&
  test_cmp_ want.txt steps3.txt &&
  test "$(sql "select json_extract(data, '"'"'\$.step'"'"') from events where run_id = '"'"'$id3'"'"' and type = '"'"'workspace_commit'"'"' order by seq limit 1")" = 0
'

test_expect_success 'bad git settings are refused with what to do' '
  jq ". + {git: \"yes\"}" s.json >b1.json &&
  test_must_fail_with 65 durin run b1.json 2>err.txt &&
  grep_q "field .git. is true" err.txt &&
  jq ". + {git: {enabled: true, progress_files: [\"../x\"]}}" s.json >b2.json &&
  test_must_fail_with 65 durin run b2.json 2>err.txt &&
  grep_q "git.progress_files\[0\]" err.txt &&
  jq ". + {git: {enable: true}}" s.json >b3.json &&
  test_must_fail_with 65 durin run b3.json 2>err.txt &&
  grep_q "did you mean .git.enabled." err.txt &&
  mkdir -p tmpl && jq ". + {git: true, sandbox: {template: \"tmpl\"}}" s.json >b4.json &&
  test_must_fail_with 65 durin run b4.json 2>err.txt &&
  grep_q "sandbox.template" err.txt &&
  rm -rf linked && git -C project worktree add -q ../linked 2>/dev/null &&
  sed "s/\"workspace\": \"project\"/\"workspace\": \"linked\"/" s.json | jq ". + {git: true}" >b5.json &&
  test_must_fail_with 65 durin run b5.json 2>err.txt &&
  grep_q "linked worktree" err.txt &&
  git -C project worktree remove --force ../linked
'

# Two writing steps, then a read and a finish: a crash after the second
# step's store commit, before its branch move, leaves only the restore to
# set the branch (no later step commits).
cat >c.json <<'JSON'
{"goal": "g", "workspace": "project",
 "tools": ["bash", "read_file", "write_file", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "PROGRESS.md", "content": "one\n"}}]},
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "PROGRESS.md", "content": "two\n"}}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": "PROGRESS.md"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
 ]}}
JSON

test_expect_success 'SIGKILL between the store commit and the branch move' '
  env DURIN_CRASH_AT=after_commit:3 "$DURIN" run c.json >out4.txt 2>&1
  test $? = 137 && id4=$(run_id_of out4.txt) && ws=$(col_of $id4 workspace) &&
  x=$(ck_commit $id4) && test -n "$x" &&
  test "$(git -C "$ws" rev-parse durin/$id4)" != "$x" &&
  test "$(git -C "$ws" log -1 --format=%s durin/$id4)" = "step 1: write_file" &&
  durin log $id4 >/dev/null 2>lag.txt && grep_q "checkpoint holds commit $(echo $x | cut -c1-12)" lag.txt &&
  durin resume $id4 >res4.txt 2>&1 && test "$(status_of $id4)" = succeeded &&
  test "$(git -C "$ws" rev-parse durin/$id4)" = "$x" &&
  test "$(ck_commit $id4)" = "$x" &&
  branch_steps $id4 >steps4.txt && cat steps4.txt &&
  test "$(grep -c "^2|" steps4.txt)" = 1 && test "$(grep -c "^1|" steps4.txt)" = 1 &&
  test "$(wc -l <steps4.txt)" = 4 &&
  tree_is "$ws" durin/$id4
'

# SIGKILL at points of every step of c.json, then resume: the branch ends
# at the checkpoint's commit, which holds the workspace, with one commit
# per changing step. (Not after the last commit: an ended run is not
# restored, see docs/internals/git.md.)
crash_resume_holds() {
  env DURIN_CRASH_AT="$1" "$DURIN" run c.json >outc.txt 2>&1
  test $? = 137 || { echo "$1: not killed"; return 1; }
  idc=$(run_id_of outc.txt) && durin resume $idc >resc.txt 2>&1 &&
    test "$(status_of $idc)" = succeeded || { echo "$1: not finished"; cat resc.txt; return 1; }
  wsc=$(col_of $idc workspace)
  test "$(git -C "$wsc" rev-parse durin/$idc)" = "$(ck_commit $idc)" || { echo "$1: branch not at the checkpoint"; return 1; }
  tree_is "$wsc" durin/$idc || { echo "$1: workspace is not the commit"; return 1; }
  test "$(branch_steps $idc | cut -d"|" -f1 | tr "\n" " ")" = "2 1 0  " ||
    { echo "$1: steps $(branch_steps $idc | cut -d"|" -f1 | tr "\n" " ")"; return 1; }
}

test_expect_success 'a crash anywhere in a step leaves one commit per changing step' '
  for p in after_commit:1 after_commit:2 after_commit:4 before_commit:1 \
      before_commit:3 ledger_outcome:2 layer_merge:1 tool_exit:2 \
      model_response:3; do
    crash_resume_holds $p || return 1
  done
'

test_expect_success 'a crash after the last commit: the checkpoint holds the result' '
  cat >e.json <<JSON &&
{"goal": "g", "workspace": "project", "tools": ["write_file", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "one.txt", "content": "1\n"}}]},
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "two.txt", "content": "2\n"}},
                   {"name": "finish", "arguments": {"summary": "ok"}}]}
 ]}}
JSON
  env DURIN_CRASH_AT=after_commit:3 "$DURIN" run e.json >oute.txt 2>&1
  test $? = 137 && ide=$(run_id_of oute.txt) && test "$(status_of $ide)" = succeeded &&
  wse=$(col_of $ide workspace) && xe=$(ck_commit $ide) &&
  test "$(git -C "$wse" log -1 --format=%s durin/$ide)" = "step 1: write_file" &&
  test "$(git -C "$wse" log -1 --format=%s $xe)" = "step 2: write_file" &&
  tree_is "$wse" $xe &&
  durin log $ide >/dev/null 2>lage.txt && grep_q "checkpoint.s commit is its result" lage.txt
'

test_expect_success 'the resumed agent is given its progress file and the branch log' '
  sql "select data from events where run_id = '"'"'$id4'"'"' and type = '"'"'boot'"'"' order by seq" >boot.txt &&
  cat boot.txt && test "$(wc -l <boot.txt)" = 1 &&
  jq -e ".files == [\"PROGRESS.md\"]" boot.txt >/dev/null &&
  jq -r .git_log boot.txt | head -n 1 | grep_q "step 2: write_file\$" &&
  test "$(jq -r .git_log boot.txt | grep -c .)" = 4
'

test_expect_success 'a workspace changed between steps is reported and committed next' '
  cat >m.json <<JSON &&
{"goal": "g", "workspace": "project", "tools": ["write_file", "finish"],
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "one.txt", "content": "1\n"}}]},
   {"tool_calls": [{"name": "write_file", "arguments": {"path": "two.txt", "content": "2\n"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
 ]}}
JSON
  env DURIN_CRASH_AT=after_commit:2 "$DURIN" run m.json >out5.txt 2>&1
  test $? = 137 && id5=$(run_id_of out5.txt) && ws=$(col_of $id5 workspace) &&
  echo "a person was here" >"$ws/hand.txt" &&
  durin resume $id5 >res5.txt 2>&1 && test "$(status_of $id5)" = succeeded &&
  grep_q "differs from its checkpoint" res5.txt &&
  sql "select data from events where run_id = '"'"'$id5'"'"' and type = '"'"'workspace_mismatch'"'"'" >mm.txt &&
  jq -e ".paths == [\"A hand.txt\"]" mm.txt >/dev/null &&
  git -C "$ws" show --stat --format=%s durin/$id5 >last.txt && cat last.txt &&
  grep_q "^step 2: write_file" last.txt && grep_q hand.txt last.txt && grep_q two.txt last.txt
'

FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test

test_expect_success 'the progress files reach the model request' '
  printf "# progress\n- parser fixed\n" >project/PROGRESS.md &&
  head -c 20000 /dev/zero | tr "\\0" x >project/feature-list.json &&
  { echo "[" && chat_completion 1 finish "\"{\\\"summary\\\": \\\"done\\\"}\"" && echo "]"; } >replies.json &&
  start_fake replies.json &&
  cat >f.json <<JSON &&
{"goal": "the goal", "workspace": "project", "tools": ["finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"}}
JSON
  durin run f.json >out6.txt 2>&1 && id6=$(run_id_of out6.txt) &&
  test "$(status_of $id6)" = succeeded &&
  jq -r "[.messages[] | select(.role == \"user\")][0].content" requests.log >pinned.txt &&
  grep_q "^the goal" pinned.txt && grep_q "=== PROGRESS.md ===" pinned.txt &&
  grep_q "parser fixed" pinned.txt && grep_q "=== feature-list.json ===" pinned.txt &&
  grep_q "cut at 8 KiB" pinned.txt &&
  test "$(wc -c <pinned.txt)" -lt 12000 &&
  sql "select data from events where run_id = '"'"'$id6'"'"' and type = '"'"'boot'"'"'" |
    jq -e ".files == [\"PROGRESS.md\", \"feature-list.json\"]" >/dev/null &&
  stop_fake
'

test_done
