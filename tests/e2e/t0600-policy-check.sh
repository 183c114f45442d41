#!/bin/sh
# `durin policy check` explains a decision without running anything; a
# bad policy in a spec is refused at submit, with the field named.
. "$(dirname "$0")/lib-test.sh"

make_project
cat >"$TRASH/s.json" <<'JSON'
{"goal": "g", "workspace": "project", "model": {"provider": "script", "turns": []},
 "policy": {"default": "ask", "rules": [
   {"name": "no-rm", "tool": "bash", "command_prefix": "rm", "action": "deny"},
   {"name": "git", "tool": "bash", "command_prefix": "git", "action": "allow"},
   {"name": "src", "path": "src/**", "access": "write", "action": "allow"}]}}
JSON
echo '{"rules": [{"name": "no-push", "command_prefix": "git push", "action": "deny"}]}' >"$TRASH/server.json"
check() { durin policy check s.json --call "$1" ${2:+--server "$2"}; }

test_expect_success 'an allowed command, and the rule that allowed it' '
  check "{\"name\": \"bash\", \"arguments\": {\"command\": \"git status\"}}" >out &&
  grep -q "^allow: rule .git. (spec)" out
'

test_expect_success 'sh -c, env and quoting do not hide a denied command' '
  test_must_fail_with 2 check "{\"name\": \"bash\", \"arguments\": {\"command\": \"git log; env X=1 sh -c \\\"r\\\\\\\"m\\\\\\\" -rf /\\\"\"}}" >out &&
  grep -q "^deny: rule .no-rm." out && grep -q "judged: rm -rf /" out
'

test_expect_success 'the server policy only tightens' '
  test_must_fail_with 2 check "{\"name\": \"bash\", \"arguments\": {\"command\": \"git push\"}}" server.json >out &&
  grep -q "(server)" out
'

test_expect_success 'paths: ../ resolves, leaving the workspace is denied, other writes ask' '
  check "{\"name\": \"write_file\", \"arguments\": {\"path\": \"tests/../src/x.c\", \"content\": \"\"}}" >out &&
  grep -q "^allow: rule .src." out &&
  test_must_fail_with 2 check "{\"name\": \"read_file\", \"arguments\": {\"path\": \"../../etc/passwd\"}}" >out &&
  grep -q "outside the workspace" out &&
  test_must_fail_with 1 check "{\"name\": \"write_file\", \"arguments\": {\"path\": \"Makefile\", \"content\": \"\"}}"
'

test_expect_success 'a bad policy is refused at submit, nothing is stored' '
  sed "s/\"command_prefix\": \"rm\"/\"comand_prefix\": \"rm\"/" s.json >bad.json &&
  test_must_fail_with 65 durin submit bad.json 2>err &&
  grep -q "comand_prefix" err &&
  test ! -e "$DB" -o "$(sql "select count(*) from runs")" = 0
'

test_expect_success 'a tool the spec does not list is denied, as the run refuses it' '
  sed "s/\"turns\": \[\]}/\"turns\": []}, \"tools\": [\"read_file\"]/" s.json >narrow.json &&
  grep_q "\"tools\": \[\"read_file\"\]" narrow.json &&
  test_must_fail_with 2 durin policy check narrow.json --call "{\"name\": \"bash\", \"arguments\": {\"command\": \"git status\"}}" >out &&
  grep -q "^deny: rule .tools. (spec): .bash. is not one of the spec.s tools (read_file" out &&
  test_must_fail_with 2 durin policy check narrow.json --call "{\"name\": \"write_file\", \"arguments\": {\"path\": \"src/x.c\", \"content\": \"\"}}" >out &&
  grep -q "^deny: rule .tools." out
'

test_expect_success 'policy check --json: the decision as one object' '
  check "{\"name\": \"bash\", \"arguments\": {\"command\": \"git status; git log\"}}" >plain &&
  durin policy check s.json --json --call "{\"name\": \"bash\", \"arguments\": {\"command\": \"git status; git log\"}}" >out &&
  test $(wc -l <out) = 1 &&
  grep -q "^{\"decision\":\"allow\",\"rule\":\"git\",\"origin\":\"spec\",\"why\":" out &&
  grep -q "\"judged\":\[\"git status\",\"git log\"\]}$" out &&
  test_must_fail_with 2 durin policy check s.json --json --call "{\"name\": \"bash\", \"arguments\": {\"command\": \"rm x\"}}" >out &&
  grep -q "^{\"decision\":\"deny\",\"rule\":\"no-rm\"" out
'

test_done
