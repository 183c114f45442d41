#!/bin/sh
# The whole flow on a throwaway store: a webhook secret in the vault, the
# trigger, durin serve, the recorded delivery sent twice (one run), a
# forged one (401), and the deliveries with their reasons.
#   sh examples/issue-labeled/demo.sh [build/durin]
set -u
durin=$(realpath "${1:-build/durin}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
export DURIN_STORE="sqlite:$tmp/durin.db"
DURIN_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export DURIN_MASTER_KEY
SECRET=$(head -c 24 /dev/urandom | base64)
export SECRET

echo "== 1. the webhook's secret goes into the vault; the trigger names it"
printf '%s' "$SECRET" | "$durin" secret set GITHUB_WEBHOOK
"$durin" trigger add issue-labeled --secret-from GITHUB_WEBHOOK \
  --event issues.labeled --where label.name=agent \
  --goal 'Work on issue #{{issue.number}}: {{issue.title}}\n\n{{issue.body}}' \
  --label 'issue={{issue.number}}' "$here/spec.json"
"$durin" trigger ls

echo "== 2. durin serve receives deliveries at POST /v1/triggers/issue-labeled"
"$durin" serve --listen 127.0.0.1:0 --no-auth >"$tmp/serve.log" 2>&1 &
serve_pid=$!
i=0
until url=$(sed -n 's|.*serving the API on \(http://[0-9.:]*\)/v1.*|\1|p' "$tmp/serve.log") &&
  [ -n "$url" ]; do
  i=$((i + 1))
  [ $i -lt 100 ] || { cat "$tmp/serve.log"; exit 1; }
  sleep 0.1
done
export URL="$url/v1/triggers/issue-labeled"

echo "== 3. the recorded issues.labeled delivery, signed like GitHub does"
sh "$here/send.sh"
echo "== 4. GitHub redelivers it: the same run, nothing new"
sh "$here/send.sh"
echo "== 5. a forged signature: 401, nothing started"
SECRET=not-the-secret sh "$here/send.sh" || true

echo "== 6. the deliveries, with what became of each"
"$durin" trigger deliveries issue-labeled
run=$("$durin" trigger deliveries issue-labeled --json |
  jq -r '[.[] | select(.outcome == "accepted")][0].run_id')
i=0
while [ "$("$durin" show "$run" --json 2>/dev/null | jq -r .status)" != succeeded ]; do
  i=$((i + 1))
  [ $i -lt 300 ] || { echo "the run did not finish"; exit 1; }
  sleep 0.2
done
echo "== 7. the run $run succeeded; its goal came from the issue"
"$durin" show "$run"
