#!/bin/sh
# Phases and context resets (issue 20, docs/internals/context.md), end to
# end: a phase boundary writes its artifact and the next request holds it
# instead of the old messages; a reset at the cap keeps every request on
# the wire under it and carries the goal, the plan and the latest handoff;
# SIGKILL during a phase summary and during a reset resumes with one
# artifact, not two; a fork at a summary step is refused; run_status tells
# the agent its phase and artifacts.
. "$(dirname "$0")/lib-test.sh"
: "${FAKE_MODEL:?set FAKE_MODEL to the fake server binary}"

command -v git >/dev/null || test_skip_all "no git on this host"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com \
  GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
RUNS="$TRASH/store/runs"
# Set by the tests; empty when one failed early.
id="" wid="" wid2="" rid="" S="" n="" cid="" fork=""

# The project is a git repository, so runs can be forked.
make_project
git -C "$TRASH/project" init -q &&
  git -C "$TRASH/project" add -A &&
  git -C "$TRASH/project" commit -q -m initial || exit 1

FAKE_KEY_VALUE=sk-test
export FAKE_KEY=sk-test

call() { # call TOOL ARGS_JSON
  echo "{\"name\": \"$1\", \"arguments\": $2}"
}
# js TEXT: TEXT as a JSON string.
js() { jq -n --arg a "$1" '$a'; }
ev() { # ev ID TYPE JQ: the JQ of each event of TYPE, one per line
  sql "select data from events where run_id = '$1' and type = '$2' order by seq" |
    jq -r "$3"
}
count_of() { sql "select count(*) from events where run_id = '$1' and type = '$2'"; }

ARTIFACT=$(call artifact '{"decided": ["DECIDED-ALPHA use the Makefile"],
  "found": ["FOUND-BRAVO tests live in tests/"],
  "commitments": ["OPEN-CHARLIE fix the failing test"], "notes": "NOTE-DELTA"}')

# Three phases: planning (its own tools, ends at update_plan), work (ends
# after 2 steps), final. Steps: 1 bash (refused), 2 read_file, 3
# update_plan, 4 the planning summary, 5 bash, 6 run_status, 7 the work
# summary, 8 finish.
cat >"$TRASH/phases.json" <<JSON
{"goal": "GOAL-ECHO fix the failing test", "workspace": "project",
 "context": {"max_bytes": 100000},
 "phases": [
   {"name": "planning", "share": 0.3, "tools": ["read_file", "list_files", "update_plan"],
    "until": "update_plan"},
   {"name": "work", "until": {"steps": 2}},
   {"name": "final"}],
 "model": {"provider": "script",
  "summaries": [{"tool_calls": [$ARTIFACT]}],
  "turns": [
   {"tool_calls": [$(call bash '{"command": "echo refused"}')]},
   {"tool_calls": [$(call read_file '{"path": "Makefile"}')]},
   {"tool_calls": [$(call update_plan '{"plan": [{"step": "PLAN-FOXTROT fix it", "status": "in_progress"}]}')]},
   {"tool_calls": [$(call bash '{"command": "echo working"}')]},
   {"tool_calls": [$(call run_status '{}')]},
   {"tool_calls": [$(call finish '{"summary": "fixed"}')]}]}}
JSON

test_expect_success 'a phased run succeeds with one artifact per phase boundary' '
  durin run phases.json >out.txt 2>err.txt &&
  id=$(run_id_of out.txt) &&
  test "$(status_of $id)" = succeeded &&
  test "$(count_of $id phase_ended)" = 2 &&
  test "$(count_of $id phase_complete)" = 2 &&
  test "$(ev $id phase_ended .phase | tr "\n" " ")" = "planning work " &&
  test "$(ev $id phase_ended .next | tr "\n" " ")" = "work final " &&
  ev $id phase_ended ".artifact | tojson" >arts.txt &&
  head -n 1 arts.txt >art1.json &&
  test "$(jq -r ".decided[0]" art1.json)" = "DECIDED-ALPHA use the Makefile" &&
  test "$(jq -r ".found[0]" art1.json)" = "FOUND-BRAVO tests live in tests/" &&
  test "$(jq -r ".commitments[0]" art1.json)" = "OPEN-CHARLIE fix the failing test" &&
  test "$(jq -r .notes art1.json)" = NOTE-DELTA &&
  test "$(jq -r ".files_read[0]" art1.json)" = Makefile &&
  jq -r ".plan_open[]?, .plan_done[]?" art1.json | grep_q PLAN-FOXTROT &&
  # The second summary was not scripted: the plain one.
  sed -n 2p arts.txt | jq -r .notes | grep_q "scripted summary 2" &&
  # Each summary is a model_response of its own role, at steps 4 and 7.
  test "$(sql "select step from events where run_id = '"'"'$id'"'"' and type = '"'"'model_response'"'"' and data like '"'"'%\"role\":\"summary\"%'"'"' order by seq" | tr "\n" " ")" = "4 7 " &&
  events_contiguous $id && checkpoint_valid $id &&
  durin logs $id >logs.txt &&
  durin show $id >show.txt &&
  grep_q DECIDED-ALPHA logs.txt
'

test_expect_success 'a tool the phase does not have is refused, not run' '
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and step = 1" >r1.txt &&
  jq -e ".ok == false" r1.txt >/dev/null &&
  jq -r .output r1.txt | grep_q "not one of the tools of phase .planning." &&
  # The work phase has every tool: its bash ran.
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and step = 5" |
    jq -r .output | grep_q working
'

test_expect_success 'run_status in phase 2 names the phase and its artifacts' '
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' and step = 6" >rs.txt &&
  test "$(wc -l <rs.txt)" = 1 &&
  jq -r .output rs.txt >status.json &&
  test "$(jq -r .phase.name status.json)" = work &&
  test "$(jq -r .phase.index status.json)" = 1 &&
  test "$(jq -r ".artifacts | length" status.json)" = 1 &&
  test "$(jq -r ".artifacts[0].phase" status.json)" = planning &&
  test "$(jq -r ".artifacts[0].decided[0]" status.json)" = "DECIDED-ALPHA use the Makefile" &&
  test "$(jq -r ".artifacts[0].commitments[0]" status.json)" = "OPEN-CHARLIE fix the failing test"
'

test_expect_success 'a fork at a summary step is refused; after it, it works' '
  test_must_fail durin fork $id --at-step 4 --queue >f1.txt 2>f1.err &&
  grep_q "step 4 is a summary" f1.err &&
  test_must_fail durin fork $id --at-step 7 --queue >f2.txt 2>f2.err &&
  grep_q "step 7 is a summary" f2.err &&
  durin fork $id --at-step 5 --queue >fork.txt &&
  fork=$(sed -n "s/^run \(r[0-9a-f]*\) forked from .*/\1/p" fork.txt) &&
  test -n "$fork" &&
  test "$(status_of $fork)" = queued &&
  sql "select data from checkpoints where run_id = '"'"'$fork'"'"'" >fork.ck &&
  test "$(jq -r .step fork.ck)" = 5 &&
  test "$(jq -r .phase.name fork.ck)" = work &&
  test "$(jq -r .phase.index fork.ck)" = 1 &&
  test "$(jq -r ".artifacts | length" fork.ck)" = 1 &&
  test "$(jq -r ".artifacts[0].decided[0]" fork.ck)" = "DECIDED-ALPHA use the Makefile" &&
  # The fork goes on from there: the work phase ends, then the final one.
  durin resume $fork >fres.txt 2>&1 &&
  test "$(status_of $fork)" = succeeded &&
  test "$(count_of $fork phase_ended)" = 2 &&
  events_contiguous $fork && checkpoint_valid $fork
'

# ---- on the wire: the fake OpenAI server ----

# completion N TOOL ARGS_JSON: a reply with one call (ARGS_JSON as text).
completion() { chat_completion "$1" "$2" "$(js "$3")"; }

test_expect_success 'the request after a phase summary holds its artifact, not the old messages' '
  { echo "[" &&
    completion 1 bash "{\"command\": \"echo ZQ-OLD-OUTPUT | tr Q W\"}" && echo , &&
    completion 2 update_plan "{\"plan\": [{\"step\": \"PLAN-GOLF\", \"status\": \"done\"}]}" && echo , &&
    completion 3 artifact "{\"decided\": [\"DECIDED-HOTEL\"], \"found\": [\"FOUND-INDIA on the wire\"]}" && echo , &&
    completion 4 finish "{\"summary\": \"done\"}" &&
    echo "]"; } >replies.json &&
  jq -e . replies.json >/dev/null &&
  start_fake replies.json &&
  cat >w.json <<JSON &&
{"goal": "GOAL-JULIET print", "workspace": "project",
 "tools": ["bash", "update_plan", "finish"],
 "phases": [{"name": "look", "until": "update_plan"}, {"name": "end"}],
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:$PORT/v1", "api_key_env": "FAKE_KEY"}}
JSON
  durin run w.json >out.txt 2>err.txt &&
  wid=$(run_id_of out.txt) &&
  stop_fake &&
  test "$(status_of $wid)" = succeeded &&
  test "$(wc -l <requests.log)" = 4 &&
  test "$(count_of $wid phase_ended)" = 1 &&
  # Request 3 is the summary: the artifact tool only, the whole phase.
  test "$(sed -n 3p requests.log | jq -c "[.tools[].function.name]")" = "[\"artifact\"]" &&
  sed -n 3p requests.log | grep_q ZW-OLD-OUTPUT &&
  sed -n 2p requests.log | grep_q ZW-OLD-OUTPUT &&
  ! sed -n 1p requests.log | grep_q ZW-OLD-OUTPUT &&
  # Request 4: the pinned message holds the artifact, the goal and the
  # plan, and nothing of the first phase.
  sed -n 4p requests.log >r4.json &&
  jq -r "first(.messages[] | select(.role == \"user\")) | .content" r4.json >first.txt &&
  grep_q DECIDED-HOTEL first.txt &&
  grep_q "FOUND-INDIA on the wire" first.txt &&
  grep_q GOAL-JULIET first.txt &&
  grep_q PLAN-GOLF first.txt &&
  test "$(jq "[.messages[] | select(.role != \"system\")] | length" r4.json)" = 1 &&
  # The command may be named in the handoff of the dropped turns; its
  # output is not.
  ! grep_q ZW-OLD-OUTPUT r4.json
'

# The reset run on the wire. Every request is answered in order, the
# summaries' too, so the reply list must hold an artifact where each
# summary request comes. The run is deterministic: the list is found by
# running it, putting an artifact reply at the first request that was a
# summary but got an agent's reply, and running it again, until the two
# agree. After the update_plan and NBASH bash calls come a dozen
# finishes, so a try whose replies are off still ends at once.
NBASH=24
reset_replies() { # reset_replies "SUMMARY INDEXES" (0-based request indexes)
  agent=0 k=0 i=0
  echo "["
  while [ $agent -le $((NBASH + 12)) ]; do
    [ $i = 0 ] || echo ,
    case " $1 " in
    *" $i "*)
      k=$((k + 1))
      completion s$i artifact "{\"commitments\": [\"HANDOFF-$k-KILO go on printing\"]}" ;;
    *)
      if [ $agent = 0 ]; then
        completion a$i update_plan "{\"plan\": [{\"step\": \"PLAN-LIMA print\", \"status\": \"in_progress\"}]}"
      elif [ $agent -le $NBASH ]; then
        completion a$i bash '{"command": "yes o | head -c 2500"}'
      else
        completion a$i finish "{\"summary\": \"printed\"}"
      fi
      agent=$((agent + 1)) ;;
    esac
    i=$((i + 1))
  done
  echo "]"
}
# The 0-based indexes of the summary requests in requests.log.
summary_indexes() {
  jq -c "[.tools[]?.function.name] | index(\"artifact\") != null" requests.log |
    awk "\$1 == \"true\" { printf \"%s \", NR - 1 }"
}
CAP=15000

test_expect_success 'a reset at the cap: every request on the wire is under it' '
  cat >reset.json <<JSON &&
{"goal": "GOAL-MIKE print outputs", "workspace": "project",
 "tools": ["bash", "update_plan", "finish"],
 "context": {"max_bytes": 60000, "reset_at": 0.25},
 "model": {"provider": "openai", "name": "gpt-4o-mini",
           "base_url": "http://127.0.0.1:PORT/v1", "api_key_env": "FAKE_KEY"}}
JSON
  S="" tries=0 &&
  while :; do
    tries=$((tries + 1)) &&
    reset_replies "$S" >replies.json &&
    jq -e . replies.json >/dev/null &&
    start_fake replies.json &&
    sed "s/PORT/$PORT/" reset.json >reset-run.json &&
    durin run reset-run.json >out.txt 2>err.txt
    rc=$?
    stop_fake
    got=$(summary_indexes) &&
    echo "try $tries: summaries at [$S], got [$got], exit $rc" &&
    if [ "$got" = "$S" ]; then break; fi &&
    test $tries -lt 12 &&
    # The first request where they differ: everything before it is right.
    first=$( (echo "$S" | tr " " "\n"; echo "$got" | tr " " "\n") | grep . |
      sort -n | uniq -u | head -n 1) &&
    S=$(for x in $got; do [ $x -le $first ] && printf "%s " $x; done; true) ||
    return 1
  done &&
  test $rc = 0 &&
  rid=$(run_id_of out.txt) &&
  test "$(status_of $rid)" = succeeded &&
  test -n "$S" &&
  # Bytes, not characters (LC_ALL=C): the body as the provider sent it.
  LC_ALL=C awk "{ print length(\$0) }" requests.log >sizes.txt &&
  echo "request sizes: $(tr "\n" " " <sizes.txt)" &&
  LC_ALL=C awk "length(\$0) > $CAP { bad = 1 } END { exit bad }" requests.log &&
  # It came near the cap: the window was used, not reset at once.
  LC_ALL=C awk "length(\$0) > $CAP / 2 { big = 1 } END { exit !big }" requests.log &&
  test "$(count_of $rid context_reset)" = "$(echo $S | wc -w)" &&
  test "$(ev $rid context_reset .count | tr "\n" " ")" = "$(seq -s " " 1 $(echo $S | wc -w)) " &&
  ev $rid context_reset .cap_bytes | sort -u >caps.txt &&
  test "$(cat caps.txt)" = $CAP
'

test_expect_success 'after a reset every request carries the goal, the plan and the latest handoff' '
  first=${S%% *} && k=0 i=0 &&
  while read -r line; do
    case " $S " in
    *" $i "*) k=$((k + 1)) ;;
    *)
      if [ $i -gt $first ]; then
        printf "%s\n" "$line" |
          jq -r "first(.messages[] | select(.role == \"user\")) | .content" >pin.txt &&
        grep_q GOAL-MIKE pin.txt &&
        grep_q PLAN-LIMA pin.txt &&
        grep_q "HANDOFF-$k-KILO" pin.txt &&
        if [ $k -gt 1 ]; then ! grep_q "HANDOFF-$((k - 1))-KILO" pin.txt; fi ||
          { echo "request $i (after summary $k):"; cat pin.txt; return 1; }
      fi ;;
    esac
    i=$((i + 1))
  done <requests.log &&
  test $k -ge 1
'

# ---- SIGKILL while a summary is asked for ----

crash_run() { # crash_run SPEC POINT: killed at POINT; sets $cid
  env DURIN_CRASH_AT="$2" "$DURIN" run "$1" >cout.txt 2>&1
  rc=$?
  if [ $rc != 137 ]; then echo "$2: durin exited $rc, not killed"; cat cout.txt; return 1; fi
  cid=$(run_id_of cout.txt)
  test -n "$cid"
}

test_expect_success 'SIGKILL during the first phase summary, then resume: one artifact' '
  crash_run phases.json summary_response:1 &&
  test "$(count_of $cid phase_complete)" = 1 &&
  test "$(count_of $cid phase_ended)" = 0 &&
  durin resume $cid >res.txt 2>&1 &&
  test "$(status_of $cid)" = succeeded &&
  test "$(ev $cid phase_ended .phase | tr "\n" " ")" = "planning work " &&
  test "$(ev $cid phase_ended ".artifact.decided[0]" | head -n 1)" = "DECIDED-ALPHA use the Makefile" &&
  test "$(sql "select count(*) from events where run_id = '"'"'$cid'"'"' and type = '"'"'model_response'"'"' and data like '"'"'%\"role\":\"summary\"%'"'"'")" = 2 &&
  events_contiguous $cid && checkpoint_valid $cid
'

test_expect_success 'SIGKILL during the second phase summary, then resume: one artifact' '
  crash_run phases.json summary_response:2 &&
  test "$(count_of $cid phase_ended)" = 1 &&
  durin resume $cid >res.txt 2>&1 &&
  test "$(status_of $cid)" = succeeded &&
  test "$(ev $cid phase_ended .phase | tr "\n" " ")" = "planning work " &&
  events_contiguous $cid && checkpoint_valid $cid
'

test_expect_success 'a fleet worker killed during a phase summary: resume writes one artifact' '
  wid2=$(durin submit phases.json) && test -n "$wid2" &&
  env DURIN_CRASH_AT=summary_response:1 timeout 60 "$DURIN" worker --max-runs 1 \
    --poll 50ms --no-watchdog >w.txt 2>&1
  rc=$?
  test $rc = 137 || { echo "worker exited $rc, not killed"; cat w.txt; return 1; }
  test "$(count_of $wid2 phase_complete)" = 1 &&
  test "$(count_of $wid2 phase_ended)" = 0 &&
  durin resume $wid2 >res.txt 2>&1 &&
  test "$(status_of $wid2)" = succeeded &&
  test "$(ev $wid2 phase_ended .phase | tr "\n" " ")" = "planning work " &&
  events_contiguous $wid2 && checkpoint_valid $wid2
'

BIG=$(call bash '{"command": "yes x | head -c 1500"}')
cat >"$TRASH/resets.json" <<JSON
{"goal": "GOAL-NOVEMBER print", "workspace": "project",
 "context": {"max_bytes": 40000, "reset_at": 0.25},
 "budget": {"wall_clock_s": 300},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [$(call update_plan '{"plan": [{"step": "PLAN-OSCAR", "status": "in_progress"}]}')]},
   {"repeat": 16, "tool_calls": [$BIG]},
   {"tool_calls": [$(call finish '{"summary": "printed"}')]}]}}
JSON

test_expect_success 'SIGKILL during a reset, then resume: no count twice' '
  durin run resets.json >out.txt 2>&1 &&
  nid=$(run_id_of out.txt) &&
  test "$(status_of $nid)" = succeeded &&
  n=$(count_of $nid context_reset) &&
  echo "uninterrupted: $n resets" &&
  test "$n" -ge 2 &&
  crash_run resets.json summary_response:1 &&
  test "$(count_of $cid context_reset)" = 0 &&
  durin resume $cid >res.txt 2>&1 &&
  test "$(status_of $cid)" = succeeded &&
  ev $cid context_reset .count >counts.txt &&
  test "$(head -n 1 counts.txt)" = 1 &&
  test "$(tr "\n" " " <counts.txt)" = "$(seq -s " " 1 $(wc -l <counts.txt)) " &&
  test "$(wc -l <counts.txt)" = "$n" &&
  test "$(ev $cid context_reset .state.handoff.notes | head -n 1)" = "scripted summary 1" &&
  events_contiguous $cid && checkpoint_valid $cid
'

test_expect_success 'SIGKILL during a later reset, then resume: no count twice' '
  crash_run resets.json summary_response:2 &&
  test "$(count_of $cid context_reset)" = 1 &&
  durin resume $cid >res.txt 2>&1 &&
  test "$(status_of $cid)" = succeeded &&
  test "$(ev $cid context_reset .count | tr "\n" " ")" = "$(seq -s " " 1 $n) " &&
  events_contiguous $cid && checkpoint_valid $cid
'

# 10,000 steps with context.reset_at: every request the run made (its
# size as each model_response records it) is under the cap, the resets
# count 1..N, and the run ends well. The requests' contents (goal, plan,
# latest handoff) are checked request by request in tests/unit/t-context.c.
test_expect_success 'a 10,000-step run stays under the cap at every request' '
  head -c 1500 /dev/zero | tr "\\000" y >project/big.txt &&
  cat >long.json <<JSON &&
{"goal": "read big.txt many times", "workspace": "project",
 "context": {"max_bytes": 40000, "reset_at": 0.25},
 "budget": {"steps": 20000, "tool_calls": 20000},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "update_plan", "arguments": {"plan": [{"step": "read it", "status": "in_progress"}]}}]},
   {"tool_calls": [{"name": "read_file", "arguments": {"path": "big.txt"}}], "repeat": 9998},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "read"}}]}]}}
JSON
  durin run long.json >out.txt 2>&1 &&
  lid=$(run_id_of out.txt) &&
  test "$(status_of $lid)" = succeeded &&
  durin logs --json $lid >long.jsonl &&
  jq -s "[.[] | select(.type == \"model_response\" and .data.role != \"summary\")] | length" long.jsonl >agent.txt &&
  test "$(cat agent.txt)" = 10000 &&
  jq -s "[.[] | select(.type == \"model_response\") | .data.request_bytes] | max" long.jsonl >max.txt &&
  echo "largest request: $(cat max.txt) bytes (cap 10000)" &&
  test "$(cat max.txt)" -le 10000 &&
  jq -s "[.[] | select(.type == \"model_response\" and (.data.request_bytes == null))] | length" long.jsonl | grep -qx 0 &&
  jq -s "[.[] | select(.type == \"context_reset\") | .data.count]" long.jsonl >counts.json &&
  n=$(jq length counts.json) && echo "resets: $n" &&
  test "$n" -gt 100 &&
  jq -e "[range(1; $n + 1)] == ." counts.json >/dev/null &&
  jq -s "[.[] | select(.type == \"context_reset\") | .data.cap_bytes] | unique" long.jsonl | jq -e ". == [10000]" >/dev/null
'

test_done
