#!/bin/sh
# The demo behind `make demo`: an agent fixes a failing test durably. The
# run is killed with SIGKILL after step 3, resumed, and finishes without
# repeating a completed tool call. With DURIN_MODEL set (e.g.
# openai:gpt-4o-mini or anthropic:claude-sonnet-4-5) and that provider's
# key (OPENAI_API_KEY or ANTHROPIC_API_KEY), the same example runs on a
# real model instead of the scripted one.
set -u
durin=$(realpath "${1:-build/durin}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A real model when DURIN_MODEL names one and its provider's key is set.
case "${DURIN_MODEL:-}" in
anthropic:*) key=${ANTHROPIC_API_KEY:-} ;;
*) key=${OPENAI_API_KEY:-} ;;
esac
if [ -n "${DURIN_MODEL:-}" ] && [ -n "$key" ]; then
  echo "== using the real model $DURIN_MODEL"
else
  unset DURIN_MODEL
  echo "== using the scripted model (set DURIN_MODEL and its API key for a real one)"
fi

echo "== 1. run the agent; it is killed with SIGKILL after step 3"
# after_commit:4 = the opening commit, then steps 1, 2 and 3.
(DURIN_CRASH_AT=after_commit:4 "$durin" run "$here/agent.json"; echo $? >"$tmp/rc") |
  tee "$tmp/out"
id=$(sed -n 's/^run \(r[0-9a-f]*\) submitted$/\1/p' "$tmp/out")
echo "   durin exited with status $(cat "$tmp/rc") (137 = SIGKILL)"
if [ -z "$id" ]; then
  echo "demo: the run did not start" >&2
  exit 1
fi

echo
echo "== 2. resume run $id from its last committed step"
"$durin" resume "$id"
rc=$?

# `durin resume` ended with the run's summary block; `durin show` would
# print it again, so only what show adds follows: plan, result, checks.
echo
echo "== 3. the agent's plan, result and checks (durin show $id)"
"$durin" show "$id" | sed '1,/^workspace /d'
echo
echo "== 4. what the agent changed (durin diff --stat $id, then durin diff)"
"$durin" diff --stat "$id"
echo
"$durin" diff "$id"
exit $rc
