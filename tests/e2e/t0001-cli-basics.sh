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

test_done
