#!/bin/sh
# CLI basics: help, exit codes, and bad input refused before anything runs.
. "$(dirname "$0")/lib-test.sh"

test_expect_success 'test_must_fail: only an error exit is the failure expected' '
  test_must_fail sh -c "exit 1" && test_must_fail sh -c "exit 64" &&
  test_must_fail sh -c "exit 124" &&
  ! test_must_fail true &&
  ! test_must_fail durin-no-such-command &&
  ! test_must_fail sh -c "exit 126" && ! test_must_fail sh -c "exit 125" &&
  ! test_must_fail sh -c "kill -KILL \$\$" &&
  ! test_must_fail sh -c "kill -SEGV \$\$"
'

test_expect_success 'every command has --help' '
  for c in run resume ls show logs cancel diff; do
    durin $c --help >help.txt && grep_q "usage: durin $c" help.txt || return 1
  done &&
  durin --help | grep_q "exit codes"
'

test_expect_success 'unknown command and option are usage errors' '
  test_must_fail_with 64 durin frobnicate 2>err &&
  grep_q "not a durin command" err &&
  test_must_fail_with 64 durin run --bogus x.json 2>err &&
  grep_q "unknown option" err
'

mkdir -p "$TRASH/ws"
spec() { printf "%s" "$1" >"$TRASH/bad.json"; }
OKM='"model":{"provider":"script","turns":[]}'

expect_spec_error() {
  spec "$1" &&
  test_must_fail_with 65 durin run bad.json 2>err &&
  grep_q "$2" err
}

test_expect_success 'invalid JSON names the line' '
  expect_spec_error "{\"goal\": \"x\",
  \"workspace\": }" "line 2"
'

test_expect_success 'a misspelt field gets a suggestion' '
  expect_spec_error "{\"goal\":\"g\",\"workspace\":\"ws\",$OKM,\"budget\":{\"stpes\":3}}" \
    "did you mean .budget.steps."
'

test_expect_success 'a wrong type names the field and the type' '
  expect_spec_error "{\"goal\":\"g\",\"workspace\":\"ws\",$OKM,\"max_eval_attempts\":\"3\"}" \
    "max_eval_attempts. must be an integer"
'

test_expect_success 'a missing required field is named' '
  expect_spec_error "{\"workspace\":\"ws\",$OKM}" "goal. is required"
'

test_expect_success 'an unknown provider is refused' '
  expect_spec_error "{\"goal\":\"g\",\"workspace\":\"ws\",\"model\":{\"provider\":\"magic\"}}" \
    "not a known provider"
'

test_expect_success 'an unknown tool is refused' '
  expect_spec_error "{\"goal\":\"g\",\"workspace\":\"ws\",$OKM,\"tools\":[\"shell\"]}" \
    "unknown tool .shell."
'

test_expect_success 'OpenAI without a key is refused before anything runs' '
  test_must_fail_with 65 env -u OPENAI_API_KEY "$DURIN" run --model openai:gpt-4o-mini "$SRCDIR/examples/fix-failing-test/agent.json" 2>err &&
  grep_q "needs an API key: set OPENAI_API_KEY" err
'

test_expect_success 'refused specs leave nothing behind' '
  durin ls >ls.txt &&
  test "$(wc -l <ls.txt)" = 1 &&
  ! test -d store/runs
'

test_expect_success 'a bad store URL says so plainly' '
  test_must_fail_with 4 durin --store mysql://x ls 2>err &&
  grep_q "unsupported store URL" err &&
  test_must_fail_with 4 durin --store "sqlite:/proc/nope/x.db" ls 2>err &&
  grep_q "cannot" err
'

test_expect_success 'an unwritable store is reported' '
  mkdir ro && chmod 500 ro &&
  if [ "$(id -u)" = 0 ]; then
    # root ignores directory permissions; use a file where a dir is needed
    : >notadir &&
    test_must_fail_with 4 durin --store "sqlite:notadir/x.db" ls 2>err
  else
    test_must_fail_with 4 durin --store "sqlite:ro/x.db" ls 2>err
  fi &&
  grep_q "cannot" err
'

test_expect_success 'unknown runs are reported' '
  test_must_fail_with 5 durin show rnope 2>err &&
  grep_q "no run" err &&
  test_must_fail_with 5 durin resume rnope 2>err
'

test_expect_success 'DURIN_CRASH_AT is validated' '
  test_must_fail_with 64 env DURIN_CRASH_AT=nowhere "$DURIN" ls 2>err &&
  grep_q "unknown crash point" err
'

test_expect_success 'durin help CMD prints that command'"'"'s help' '
  durin help ls >h && grep_q "usage: durin ls" h &&
  durin help approvals | grep_q "usage: durin approvals" &&
  durin help | grep_q "exit codes" &&
  test_must_fail_with 64 durin help frobnicate 2>err &&
  grep_q "not a durin command" err
'

test_expect_success 'an unknown option is named as one, with usage, also with a value' '
  for c in ls show logs diff cancel pause unpause approvals approve reject \
    submit limits sandbox; do
    test_must_fail_with 64 durin $c --bogus value 2>err &&
    grep_q "$c: unknown option .--bogus." err &&
    grep_q "usage: durin $c" err || { cat err; return 1; }
  done &&
  test_must_fail_with 64 durin policy check --bogus value s.json 2>err &&
  grep_q "unknown option .--bogus." err && grep_q "usage: durin policy" err &&
  test_must_fail_with 64 durin worker --bogus value 2>err &&
  grep_q "worker: unknown option .--bogus." err && grep_q "usage: durin worker" err
'

test_expect_success 'ls --help names its options and every status' '
  durin ls --help >h &&
  for w in --json --status --limit queued running waiting_approval sleeping \
    evaluating paused needs_human succeeded failed cancelled budget_exceeded; do
    grep -q -e "$w" h || { echo "no $w"; return 1; }
  done &&
  test_must_fail_with 64 durin ls --limit lots 2>err && grep_q "limit" err
'

test_expect_success 'limits --json: one object per limit' '
  durin limits set tenant:acme 3 && durin limits set key:deploy 1 &&
  durin limits --json >j &&
  grep -qx "{\"scope\":\"tenant:acme\",\"max\":3}" j &&
  grep -qx "{\"scope\":\"key:deploy\",\"max\":1}" j && test $(wc -l <j) = 2
'

make_project
printf "%s" "{\"goal\":\"g\",\"workspace\":\"project\",$OKM}" >"$TRASH/q.json"

test_expect_success 'a deduplicated submit prints only the id on stdout' '
  id=$(durin submit --dedupe-key nightly q.json) &&
  durin submit --dedupe-key nightly q.json >out 2>err &&
  test "$(cat out)" = "$id" &&
  grep_q "already active with dedupe key .nightly." err
'

test_expect_success 'diff: a file only the workspace has is new; binary ones say their size' '
  ws=$(col_of $id workspace) &&
  mkdir -p "$ws/build" && printf "a\0b\0c" >"$ws/build/app" &&
  sed -i "s/(n - 1)/n/" "$ws/src/stats.c" && echo news >"$ws/NEWS" &&
  rm "$ws/tests/test_stats.c" && mkfifo "$ws/pipe" &&
  timeout 20 "$DURIN" diff $id >d && ! grep_q pipe d &&
  grep -qx "new file build/app (binary, 5 bytes)" d &&
  ! grep_q "^Binary files" d &&
  grep -qx "new file mode 100644" d && grep -qx "+news" d &&
  grep -qx "deleted file mode 100644" d &&
  grep -qx "+  return sum / n;" d && grep -qx -e "-  return sum / (n - 1);" d
'

test_expect_success 'diff --stat is a diffstat' '
  dels=$(wc -l <project/tests/test_stats.c) &&
  durin diff --stat $id >s &&
  grep -q "^ NEWS  *|  *1 +$" s &&
  grep -q "^ build/app  *| Bin 0 -> 5 bytes$" s &&
  grep -q "^ src/stats.c  *|  *2 +-$" s &&
  grep -q "^ tests/test_stats.c  *|  *$dels -*$" s &&
  grep -qx " 4 files changed, 2 insertions(+), $((dels + 1)) deletions(-)" s
'

# A call run outside its layer (--sandbox none, writable binds) can leave
# directories nested as deep as a path allows: diff walks them, it does
# not run out of stack (each level used to hold 16 KB of it).
test_expect_success 'diff walks a tree nested 1,500 levels deep' '
  ws=$(col_of $id workspace) &&
  (cd "$ws" && i=0 && while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done && echo deep >f) &&
  durin diff --stat $id >s &&
  grep -q "d/d/d/.*f" s
'

if ! durin sandbox --workspace "$TRASH" -- true 2>/dev/null; then
  test_skip 'make demo prints the run summary once' 'no sandbox on this host'
else
  test_expect_success 'make demo prints the run summary once' '
    mkdir demo && (cd demo && "$SRCDIR/examples/fix-failing-test/demo.sh" "$DURIN") >demo.out 2>&1 &&
    test "$(grep -c "^status  *succeeded" demo.out)" = 1 &&
    grep_q "^summary " demo.out && grep_q "files\? changed" demo.out
  '
fi

test_expect_success 'examples/phased-fix goes through its phases' '
  sh "$SRCDIR/examples/phased-fix/demo.sh" "$DURIN" >phased.out 2>&1 &&
  test "$(grep -c "^status  *succeeded" phased.out)" = 1 &&
  grep_q "phase .explore. ended, .fix. begins" phased.out &&
  grep_q "phase .fix. ended, .wrap-up. begins" phased.out &&
  grep_q "^### Phase explore" phased.out
'

test_done
