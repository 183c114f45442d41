#!/bin/sh
# The context window holds through a real provider (issue 13, defects 1
# and 2): with tool outputs larger than the window, no request is over
# context.max_bytes or context.max_messages, the outputs stay whole in the
# log, and the goal and plan open every request, also after compaction.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

make_project

FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test

completion() { chat_completion "$@"; } # completion N TOOL ARGS_JSON_STRING

test_expect_success 'no request exceeds the window; outputs stay whole in the log' '
  { echo "[" &&
    completion 0 update_plan "\"{\\\"plan\\\": [{\\\"step\\\": \\\"print big outputs\\\", \\\"status\\\": \\\"in_progress\\\"}]}\"" &&
    for i in 1 2 3 4 5 6; do
      n=60000; [ $((i % 2)) = 1 ] && n=210000
      echo , &&
      completion $i bash "\"{\\\"command\\\": \\\"head -c $n /dev/zero | tr \\\\\\\\\\\\\\\\0 o\\\"}\""
    done &&
    echo , &&
    completion 9 finish "\"{\\\"summary\\\": \\\"done\\\"}\"" &&
    echo "]"; } >replies.json &&
  jq -e . replies.json >/dev/null &&
  start_fake replies.json &&
  cat >s.json <<JSON &&
{"goal": "print big outputs", "system": "be brief", "workspace": "project",
 "tools": ["bash", "update_plan", "finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"},
 "limits": {"output_bytes": 262144},
 "context": {"max_bytes": 100000, "max_messages": 4}}
JSON
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(wc -l <requests.log)" = 8 &&
  awk "{ print length(\$0) }" requests.log >sizes.txt &&
  echo "request sizes: $(tr "\n" " " <sizes.txt)" &&
  awk "length(\$0) > 100000 { bad = 1 } END { exit bad }" requests.log &&
  jq -c "[.messages[] | select(.role != \"system\")] | length" requests.log >counts.txt &&
  echo "messages: $(tr "\n" " " <counts.txt)" &&
  awk "\$1 > 4 { bad = 1 } END { exit bad }" counts.txt &&
  jq -r ".messages[1].content" requests.log | grep -c "print big outputs" >plans.txt &&
  jq -e "select(.messages | length > 2) | .messages[1].content | test(\"\\\\[in_progress\\\\] print big outputs\")" requests.log >/dev/null &&
  test "$(jq -r ".messages[1].content | test(\"in_progress\")" requests.log | sort -u | tr "\n" " ")" = "false true " &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and length(data) > 210000")" = 3 &&
  test "$(sql "select count(*) from events where run_id = '"'"'$id'"'"' and type = '"'"'compaction'"'"'")" -gt 0 &&
  grep_q "cut here to fit the context window" requests.log &&
  stop_fake
'

test_expect_success 'a window filled by many turns stays within max_bytes on the wire' '
  { echo "[" &&
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
      completion $i bash "\"{\\\"command\\\": \\\"head -c 7000 /dev/zero | tr \\\\\\\\0 o\\\"}\"" &&
      echo ,
    done &&
    completion 99 finish "\"{\\\"summary\\\": \\\"done\\\"}\"" &&
    echo "]"; } >replies.json &&
  jq -e . replies.json >/dev/null &&
  start_fake replies.json &&
  cat >s.json <<JSON &&
{"goal": "print outputs", "workspace": "project", "tools": ["bash", "finish"],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"},
 "context": {"max_bytes": 30000}}
JSON
  durin run s.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  awk "{ print length(\$0) }" requests.log >sizes.txt &&
  echo "request sizes: $(tr "\n" " " <sizes.txt)" &&
  awk "length(\$0) > 30000 { bad = 1 } END { exit bad }" requests.log &&
  awk "length(\$0) > 15000 { big = 1 } END { exit !big }" requests.log &&
  stop_fake
'

test_expect_success 'limits.output_bytes has an upper bound' '
  cat >s.json <<JSON &&
{"goal": "g", "workspace": "project", "model": {"provider": "script", "turns": []},
 "limits": {"output_bytes": 100000000}}
JSON
  test_must_fail durin run s.json >out.txt 2>err.txt &&
  grep_q "limits.output_bytes" err.txt
'

test_done
