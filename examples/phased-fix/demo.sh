#!/bin/sh
# The demo of phases: explore until the plan is written, fix until the
# tests pass, then wrap up; each phase starts from the goal, the plan and
# the artifacts of the ones before, not from their messages. A throwaway
# store; the model is scripted (model.json, and "summaries" in spec.json
# for the artifacts), so no API key is needed.
set -u
durin=$(realpath "${1:-build/durin}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DURIN_STORE="sqlite:$tmp/store/durin.db"

echo "== 1. the run, through its three phases"
"$durin" run "$here/spec.json" >"$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; exit 1; }
id=$(sed -n 's/^run  *\(r[0-9a-f]*\) .*/\1/p' "$tmp/out.txt" | head -1)
[ -n "$id" ] || { cat "$tmp/out.txt"; exit 1; }
"$durin" show "$id"

echo "== 2. where each phase ended, and what it handed over"
"$durin" logs "$id" | grep -E "phase|summary model"

echo "== 3. the review: the phases' artifacts beside the change"
"$durin" review "$id" | sed -n '/^## Phases/,/^## Evaluator/p' | sed '$d'
