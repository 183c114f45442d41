#!/bin/sh
# The review artifact (docs/internals/review.md): review.json and
# REVIEW.md in the run's directory whenever a run stops, for a run that
# succeeded, one whose checks failed, one over budget and one that needs
# a person, checked field by field; `durin review` prints the same from
# the store, and GET /v1/runs/{id}/review too; a run still going gets one
# that says so; a worker driving many runs writes it. And `deliver`: the
# run's branch pushed to a local bare repository, a failed push recorded,
# a bad `deliver` refused; with git checkpoints, the diff is the run's
# branch.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>/dev/null ||
  test_skip_all "this host cannot build the sandbox"
command -v jq >/dev/null && command -v curl >/dev/null ||
  test_skip_all "curl and jq are needed (make test installs them)"

make_project
dir_of() { dirname "$(col_of "$1" workspace)"; }
rj() { jq -r "$2" "$(dir_of "$1")/review.json"; }
# The review printed by durin equals the worker's files.
same_as_files() {
  durin review "$1" >md.txt && cmp md.txt "$(dir_of "$1")/REVIEW.md" &&
  durin review --json "$1" >js.txt && cmp js.txt "$(dir_of "$1")/review.json"
}

# spec FILE TURNS [EXTRA]: a script run on the project.
spec() {
  cat >"$TRASH/$1" <<JSON
{"name": "rv", "goal": "make the greeting right", "workspace": "project",
 "model": {"provider": "script", "turns": [$2],
           "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
 "checks": [{"name": "greeting", "run": "sh check.sh"}],
 "max_eval_attempts": 2${3:+, $3}}
JSON
}
PLAN='{"name": "update_plan", "arguments": {"plan": [{"step": "write hello", "status": "done"}]}}'
WRITE='{"name": "write_file", "arguments": {"path": "hello.txt", "content": "hello\n"}}'
FINISH='{"tool_calls": [{"name": "finish", "arguments": {"summary": "wrote hello.txt"}}], "usage": {"input_tokens": 100, "output_tokens": 10}}'
cat >"$TRASH/project/check.sh" <<'SH'
echo "running the greeting check"
if grep -qx hello hello.txt 2>/dev/null; then echo "1 passed, 0 failed"; exit 0; fi
echo "FAIL: expected hello in hello.txt"
echo "1 failed"
exit 1
SH

test_expect_success 'a succeeded run: review.json field by field' '
  spec ok.json "{\"text\": \"writing\", \"tool_calls\": [$PLAN, $WRITE], \"usage\": {\"input_tokens\": 50, \"output_tokens\": 5}}, $FINISH" &&
  durin run ok.json >out.txt 2>err.txt && OK=$(run_id_of out.txt) &&
  test "$(rj $OK .v)" = 1 &&
  test "$(rj $OK .run.id)" = $OK && test "$(rj $OK .run.name)" = rv &&
  test "$(rj $OK .goal)" = "make the greeting right" &&
  test "$(rj $OK .status)" = succeeded && test "$(rj $OK .terminal)" = true &&
  test "$(rj $OK .reason)" = "acceptance checks passed" &&
  test "$(rj $OK .summary)" = "wrote hello.txt" &&
  test "$(rj $OK ".plan[0].step")" = "write hello" &&
  test "$(rj $OK .diff.source)" = workspace &&
  rj $OK .diff.patch | grep -qx "+hello" &&
  rj $OK .diff.stat | grep -q "hello.txt | 1 +" &&
  test "$(rj $OK .diff.truncated)" = false &&
  test "$(rj $OK .checks.passed)" = true &&
  test "$(rj $OK ".checks.attempts | length")" = 1 &&
  test "$(rj $OK ".checks.last.results[0].name")" = greeting &&
  test "$(rj $OK ".checks.last.results[0].failing_lines | length")" = 0 &&
  test "$(rj $OK .evaluator.verdict)" = null &&
  test "$(rj $OK .evaluator.note)" = "no evaluator configured" &&
  test "$(rj $OK .usage.steps)" = 2 &&
  test "$(rj $OK .usage.input_tokens)" = 150 &&
  test "$(rj $OK .usage.output_tokens)" = 15 &&
  test "$(rj $OK .usage.evaluator.steps)" = 0 &&
  test "$(rj $OK .usage.agent.input_tokens)" = 150 &&
  test "$(rj $OK ".usage.cost_usd > 0")" = true &&
  test "$(rj $OK ".time.duration_ms >= 0 and .time.finished_ms >= .time.started_ms")" = true &&
  test "$(rj $OK "[.timeline[].tool] | join(\",\")")" = update_plan,write_file,finish &&
  test "$(rj $OK ".timeline[1].args")" = hello.txt &&
  test "$(rj $OK ".timeline[0].args")" = "a plan of 1 step(s)" &&
  test "$(rj $OK ".timeline[1].ok")" = true &&
  test "$(rj $OK ".timeline[1].step")" = 1 &&
  test "$(rj $OK ".approvals | length")" = 0 &&
  test "$(rj $OK .delivery)" = null &&
  test "$(rj $OK ".needs_person | length")" = 0
'

test_expect_success 'REVIEW.md has its sections; durin review prints the same' '
  md="$(dir_of $OK)/REVIEW.md" &&
  head -n 1 "$md" | grep -qx "# Review of run $OK (rv)" &&
  grep -q "^\*\*Outcome: succeeded\*\* — acceptance checks passed" "$md" &&
  for s in "Goal" "What needs a person" "The agent'"'"'s summary" "Plan" \
           "Evaluator" "Checks" "Changes" "Timeline" "Approvals" "Cost and time"; do
    grep -qx "## $s" "$md" || { echo "no section $s"; return 1; }
  done &&
  grep -qx "+hello" "$md" && grep -qx "No verdict: no evaluator configured." "$md" &&
  same_as_files $OK
'

EVAL='"evaluator": {"model": {"provider": "script", "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}, "turns": [
  {"tool_calls": [{"name": "read_file", "arguments": {"path": "hello.txt"}}], "usage": {"input_tokens": 30, "output_tokens": 3}},
  {"tool_calls": [{"name": "verdict", "arguments": {"verdict": "needs_human", "reasons": ["the greeting may need a comma"]}}], "usage": {"input_tokens": 40, "output_tokens": 4}}]}}'

test_expect_success 'an evaluator that asks for a person: its verdict, steps and cost apart' '
  spec ev.json "{\"tool_calls\": [$WRITE], \"usage\": {\"input_tokens\": 50, \"output_tokens\": 5}}, $FINISH" "$EVAL" &&
  test_must_fail_with 2 durin run ev.json >out.txt 2>err.txt && EV=$(run_id_of out.txt) &&
  test "$(rj $EV .status)" = needs_human &&
  test "$(rj $EV .evaluator.configured)" = true &&
  test "$(rj $EV .evaluator.verdict)" = needs_human &&
  test "$(rj $EV .evaluator.source)" = evaluator &&
  test "$(rj $EV ".evaluator.reasons | join(\",\")")" = "the greeting may need a comma" &&
  test "$(rj $EV ".evaluator.verdicts | length")" = 1 &&
  test "$(rj $EV .usage.evaluator.steps)" = 2 &&
  test "$(rj $EV .usage.evaluator.input_tokens)" = 70 &&
  test "$(rj $EV .usage.evaluator.output_tokens)" = 7 &&
  test "$(rj $EV .usage.agent.input_tokens)" = 150 &&
  test "$(rj $EV .usage.agent.steps)" = 2 && test "$(rj $EV .usage.steps)" = 4 &&
  test "$(rj $EV ".usage.input_tokens")" = 220 &&
  test "$(rj $EV "[.timeline[] | select(.role == \"evaluator\") | .tool] | join(\",\")")" = read_file,verdict &&
  test "$(rj $EV "[.needs_person[].kind] | join(\",\")")" = verdict &&
  test "$(rj $EV ".needs_person[0].what")" = "the evaluator asks a person to judge: the greeting may need a comma" &&
  test "$(rj $EV ".needs_person[0].command")" = "durin resume $EV  |  durin cancel $EV" &&
  md="$(dir_of $EV)/REVIEW.md" &&
  grep -qx "Verdict: \*\*needs_human\*\*, after 1 attempt(s)." "$md" &&
  grep -qx -- "- the greeting may need a comma" "$md" &&
  grep -q "^| 3 | read_file (evaluator) | hello.txt | ok |" "$md" &&
  same_as_files $EV
'

test_expect_success 'a failed run: every attempt, the failing lines cited' '
  spec bad.json "$FINISH, $FINISH" &&
  test_must_fail_with 1 durin run bad.json >out.txt 2>err.txt && BAD=$(run_id_of out.txt) &&
  test "$(rj $BAD .status)" = failed &&
  rj $BAD .reason | grep -q "acceptance checks failed 2 time" &&
  test "$(rj $BAD .checks.passed)" = false &&
  test "$(rj $BAD ".checks.attempts | length")" = 2 &&
  test "$(rj $BAD ".checks.attempts[1].attempt")" = 2 &&
  test "$(rj $BAD ".checks.last.results[0].exit_code")" = 1 &&
  test "$(rj $BAD "[.checks.last.results[0].failing_lines[] | \"\(.line):\(.text)\"] | join(\"|\")")" = \
    "2:FAIL: expected hello in hello.txt|3:1 failed" &&
  test "$(rj $BAD ".needs_person[0].kind")" = checks &&
  test "$(rj $BAD ".needs_person[0].command")" = "durin continue $BAD \"MESSAGE\"" &&
  test "$(rj $BAD .diff.patch)" = "" &&
  md="$(dir_of $BAD)/REVIEW.md" &&
  grep -qx "### FAIL \`greeting\` (exit 1)" "$md" &&
  grep -qx -- "- line 2: \`FAIL: expected hello in hello.txt\`" "$md" &&
  grep -qx "Nothing changed." "$md" &&
  same_as_files $BAD
'

test_expect_success 'a budget-exceeded run: the budget named, what to do' '
  spec budget.json "{\"tool_calls\": [$WRITE], \"usage\": {\"input_tokens\": 50, \"output_tokens\": 5}}, $FINISH" \
    "\"budget\": {\"steps\": 1}" &&
  test_must_fail_with 1 durin run budget.json >out.txt 2>err.txt && BU=$(run_id_of out.txt) &&
  test "$(rj $BU .status)" = budget_exceeded &&
  test "$(rj $BU .reason)" = "step budget of 1 used up" &&
  test "$(rj $BU .usage.steps)" = 1 &&
  test "$(rj $BU ".needs_person[0].kind")" = budget &&
  test "$(rj $BU ".needs_person[0].what")" = "the run spent its budget: step budget of 1 used up" &&
  test "$(rj $BU ".needs_person[0].command")" = "durin continue --add-steps 10 $BU \"MESSAGE\"" &&
  test "$(rj $BU .summary)" = null &&
  test "$(rj $BU ".checks.last")" = null &&
  rj $BU .diff.patch | grep -qx "+hello" &&
  grep -qx "No checks ran." "$(dir_of $BU)/REVIEW.md" &&
  same_as_files $BU
'

BASH_RM='{"text": "cleaning", "tool_calls": [{"name": "bash", "arguments": {"command": "rm -f stale.txt"}}]}'
ASK='"policy": {"rules": [{"name": "ask-rm", "tool": "bash", "command_prefix": "rm", "action": "ask"}]}'

test_expect_success 'a run still going: durin review says so, with the approval to decide' '
  spec wait.json "$BASH_RM, $FINISH" "$ASK, \"approvals\": {\"max_rejections\": 1}" &&
  test_must_fail_with 2 durin run --no-wait wait.json >out.txt 2>err.txt &&
  NH=$(run_id_of out.txt) && test "$(status_of $NH)" = waiting_approval &&
  test ! -e "$(dir_of $NH)/review.json" &&
  durin review --json $NH >js.txt 2>err.txt &&
  grep -q "run $NH has not ended (waiting_approval)" err.txt &&
  test "$(jq -r .terminal js.txt)" = false &&
  A=$(jq -r ".approvals[0].id" js.txt) &&
  test "$(jq -r ".approvals[0].state" js.txt)" = pending &&
  test "$(jq -r ".needs_person[0].kind" js.txt)" = approval &&
  test "$(jq -r ".needs_person[0].command" js.txt)" = "durin approve $A  |  durin reject $A --reason TEXT" &&
  durin review $NH >md.txt 2>/dev/null &&
  grep -q "^> The run has not ended (status waiting_approval)" md.txt
'

test_expect_success 'a needs_human run: who decided, and the command that goes on' '
  DURIN_REVIEWER=alice durin reject $A --reason "keep stale.txt" &&
  test_must_fail_with 2 durin resume $NH >out.txt 2>err.txt &&
  test "$(status_of $NH)" = needs_human &&
  test "$(rj $NH .status)" = needs_human && test "$(rj $NH .terminal)" = false &&
  rj $NH .reason | grep -q "rejected 1 time" &&
  test "$(rj $NH ".approvals[0].state")" = rejected &&
  test "$(rj $NH ".approvals[0].decided_by")" = alice &&
  test "$(rj $NH ".approvals[0].comment")" = "keep stale.txt" &&
  test "$(rj $NH ".approvals[0].args")" = "rm -f stale.txt" &&
  test "$(rj $NH ".approvals[0].rule")" = spec:ask-rm &&
  test "$(rj $NH ".needs_person[0].kind")" = needs_human &&
  test "$(rj $NH ".needs_person[0].command")" = "durin resume $NH" &&
  grep -q "\*\*rejected\*\* by alice at " "$(dir_of $NH)/REVIEW.md" &&
  same_as_files $NH
'

# A worker that drives many runs writes the review off its loop (the
# thread pool and the store thread), as durin run does in place.
start_worker() {
  "$DURIN" worker --poll 50ms >"$TRASH/w.log" 2>&1 &
  WPID=$!
  bg_pids="$bg_pids $WPID"
}
stop_worker() { kill "$WPID" && wait "$WPID"; return 0; }

test_expect_success 'a run a worker drives gets its review too' '
  spec wk.json "{\"tool_calls\": [$WRITE]}, $FINISH" &&
  start_worker &&
  WK=$(durin submit wk.json) &&
  { wait_for 60 "test -s \"\$(dir_of $WK)/REVIEW.md\""; ok=$?; stop_worker; test $ok = 0; } &&
  test "$(rj $WK .status)" = succeeded &&
  rj $WK .diff.patch | grep -qx "+hello" &&
  same_as_files $WK
'

# A call that can reach outside the workspace (a read-write bind), cut
# by a crash after it ran: its outcome is unknown, and the person decides.
test_expect_success 'a call of unknown outcome: the review names both ways on' '
  mkdir -p cnt &&
  spec unk.json "{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"echo x >> $TRASH/cnt/t\"}}]}, {\"tool_calls\": [$WRITE]}, $FINISH" \
    "\"sandbox\": {\"rw\": [\"$TRASH/cnt\"]}" &&
  test_must_fail_with 137 env DURIN_CRASH_AT=tool_exit:1 "$DURIN" run unk.json >out.txt 2>&1 &&
  UN=$(run_id_of out.txt) && test ! -e "$(dir_of $UN)/review.json" &&
  test_must_fail_with 2 durin resume $UN >out.txt 2>&1 &&
  test "$(rj $UN .status)" = needs_human &&
  test "$(rj $UN ".needs_person[0].kind")" = needs_human &&
  rj $UN ".needs_person[0].what" | grep -q "outcome is unknown" &&
  test "$(rj $UN ".needs_person[0].command")" = "durin resume $UN --retry-call  |  durin resume $UN --skip-call" &&
  same_as_files $UN
'

test_expect_success 'deliver is validated with clear errors' '
  spec d1.json "$FINISH" "\"deliver\": {\"remote\": \"relative/path\"}" &&
  test_must_fail_with 65 durin run d1.json >out.txt 2>err.txt &&
  grep -q "deliver.remote.*absolute path" err.txt &&
  spec d2.json "$FINISH" "\"deliver\": {\"remote\": \"/x\", \"branch\": \"a..b\"}" &&
  test_must_fail_with 65 durin run d2.json >out.txt 2>err.txt &&
  grep -q "deliver.branch.*not a branch name" err.txt &&
  spec d3.json "$FINISH" "\"deliver\": {\"remote\": \"/x\", \"on\": [\"running\"]}" &&
  test_must_fail_with 65 durin run d3.json >out.txt 2>err.txt &&
  grep -q "deliver.on\[0\] is not a final state" err.txt &&
  spec d4.json "$FINISH" "\"deliver\": {\"remote\": \"/x\", \"when\": 1}" &&
  test_must_fail_with 65 durin run d4.json >out.txt 2>err.txt &&
  grep -q "deliver.when" err.txt
'

# The project as a git repository (submit copies its .git along): the
# run's history is the branch durin/RUN, a commit per changing step.
git_project() {
  git -C project init -q -b main && git -C project add -A &&
  git -C project -c user.name=t -c user.email=t@t commit -qm start
}
delivered_events() {
  sql "select count(*) from events where run_id = '$1' and type = '$2'"
}

test_expect_success 'deliver: the run branch is pushed to a bare repository' '
  git_project && git init -q --bare remote.git &&
  spec dv.json "{\"tool_calls\": [$WRITE]}, $FINISH" \
    "\"deliver\": {\"remote\": \"$TRASH/remote.git\", \"branch\": \"review/greeting\"}" &&
  durin run dv.json >out.txt 2>err.txt && DV=$(run_id_of out.txt) &&
  ws=$(col_of $DV workspace) && tip=$(git -C "$ws" rev-parse durin/$DV) &&
  test "$(git -C remote.git rev-parse review/greeting)" = "$tip" &&
  test "$(rj $DV .delivery.ok)" = true &&
  test "$(rj $DV .delivery.commit)" = "$tip" &&
  test "$(rj $DV .delivery.branch)" = review/greeting &&
  test "$(rj $DV .delivery.remote)" = "$TRASH/remote.git" &&
  test "$(delivered_events $DV delivered)" = 1 &&
  grep -q "^Pushed branch review/greeting (commit ${tip%${tip#????????????}}) to " "$(dir_of $DV)/REVIEW.md" &&
  same_as_files $DV
'

test_expect_success 'with git checkpoints the diff is the branch, from the run start to its last commit' '
  test "$(rj $DV .diff.source)" = git &&
  test "$(rj $DV .diff.to)" = "$tip" &&
  test "$(rj $DV .diff.from)" = "$(git -C project rev-parse main)" &&
  rj $DV .diff.patch | grep -qx "+hello" &&
  ! rj $DV .diff.patch | grep -q "\.git/" &&
  test "$(rj $DV ".commits | length")" -ge 1 &&
  test "$(rj $DV ".commits[-1].commit")" = "$tip" &&
  grep -q "^From commit .* to ${tip%${tip#????????????}} (branch durin/$DV)" "$(dir_of $DV)/REVIEW.md" &&
  grep -qx "## Commits" "$(dir_of $DV)/REVIEW.md"
'

test_expect_success 'deliver with "git": true: a project that was no repository gets a branch' '
  mkdir -p plain && cp "$TRASH/project/check.sh" plain/ && git init -q --bare plain.git &&
  spec gp.json "{\"tool_calls\": [$WRITE]}, $FINISH" \
    "\"git\": true, \"deliver\": {\"remote\": \"$TRASH/plain.git\"}" &&
  sed -i "s|\"workspace\": \"project\"|\"workspace\": \"plain\"|" gp.json &&
  durin run gp.json >out.txt 2>err.txt && GP=$(run_id_of out.txt) &&
  test "$(rj $GP .delivery.ok)" = true &&
  test "$(git -C plain.git rev-parse durin/$GP)" = "$(rj $GP .delivery.commit)" &&
  test ! -e plain/.git &&
  test "$(rj $GP .diff.source)" = git &&
  test "$(rj $GP ".commits[0].step")" = 0 &&
  test "$(rj $GP .diff.from)" = "$(rj $GP ".commits[0].commit")" &&
  test "$(rj $GP .diff.patch)" = "$(printf "diff --git a/hello.txt b/hello.txt\nnew file mode 100644\nindex 0000000..ce01362\n--- /dev/null\n+++ b/hello.txt\n@@ -0,0 +1 @@\n+hello")"
'

test_expect_success 'deliver: a push that fails is recorded and needs a person' '
  spec df.json "{\"tool_calls\": [$WRITE]}, $FINISH" "\"deliver\": {\"remote\": \"$TRASH/no-such.git\"}" &&
  durin run df.json >out.txt 2>err.txt && DF=$(run_id_of out.txt) &&
  test "$(status_of $DF)" = succeeded &&
  test "$(rj $DF .delivery.ok)" = false &&
  rj $DF .delivery.error | grep -q "cannot push to .$TRASH/no-such.git." &&
  test "$(rj $DF ".needs_person[0].kind")" = delivery &&
  test "$(delivered_events $DF delivery_failed)" = 1
'

test_expect_success 'deliver: only in the states its on lists' '
  spec dn.json "$FINISH, $FINISH" "\"deliver\": {\"remote\": \"$TRASH/remote.git\"}" &&
  test_must_fail_with 1 durin run dn.json >out.txt 2>err.txt && DN=$(run_id_of out.txt) &&
  test "$(rj $DN .delivery)" = null &&
  test "$(delivered_events $DN delivered)$(delivered_events $DN delivery_failed)" = 00
'

test_expect_success 'GET /v1/runs/{id}/review: the same, JSON or Markdown, per tenant' '
  VIEW=$(make_token eyes viewer) && OTHER=$(make_token other viewer acme) &&
  start_serve &&
  test "$(api $VIEW GET /v1/runs/$BAD/review)" = 200 &&
  jq -S . "$TRASH/.body" >api.json && jq -S . "$(dir_of $BAD)/review.json" >file.json &&
  cmp api.json file.json &&
  test "$(api $VIEW GET /v1/runs/$NH/review -H "Accept: text/markdown")" = 200 &&
  grep -qi "^content-type: text/markdown; charset=utf-8" "$TRASH/.headers" &&
  cmp "$TRASH/.body" "$(dir_of $NH)/REVIEW.md" &&
  test "$(api $OTHER GET /v1/runs/$BAD/review)" = 404 &&
  test "$(api - GET /v1/runs/$BAD/review)" = 401 &&
  stop_serve
'

# The log is scrubbed as it is written; the workspace is not, so the
# worker scrubs the diff of the review it writes with the run's secrets.
test_expect_success 'a secret a command wrote into the workspace is not in the review file' '
  DURIN_MASTER_KEY=$(head -c 32 /dev/urandom | base64) && export DURIN_MASTER_KEY &&
  printf "%s\n" "tok-4f9a8b7c6d5e" | durin secret set TOK 2>/dev/null &&
  spec sec.json "{\"tool_calls\": [{\"name\": \"bash\", \"arguments\": {\"command\": \"printenv TOK > leak.txt\"}}, $WRITE]}, $FINISH" \
    "\"secrets\": [{\"secret\": \"TOK\", \"env\": \"TOK\", \"tool\": \"bash\"}]" &&
  durin run sec.json >out.txt 2>err.txt && SE=$(run_id_of out.txt) &&
  grep -qx tok-4f9a8b7c6d5e "$(col_of $SE workspace)/leak.txt" &&
  ! grep -q tok-4f9a8b7c6d5e "$(dir_of $SE)/review.json" "$(dir_of $SE)/REVIEW.md" &&
  rj $SE .diff.patch | grep -qx "+\[secret:TOK\]" &&
  unset DURIN_MASTER_KEY
'

test_expect_success 'a lost review file: durin review builds it from the store' '
  rm "$(dir_of $OK)/review.json" &&
  durin review --json $OK >js.txt &&
  test "$(jq -r .status js.txt)" = succeeded &&
  test_must_fail_with 5 durin review r0000nosuchrun 2>err.txt
'

test_done
