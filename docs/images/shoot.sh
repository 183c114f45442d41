#!/bin/sh
# Takes the README's dashboard screenshots from a real, small fleet.
#
#   docs/images/shoot.sh [build/durin]
#
# Run from anywhere (the default binary is the checkout's build/durin). It
# needs the sandbox (durin sandbox -- true), curl, jq, node with
# tests/js/node_modules (make npm-deps) and Chromium (/usr/bin/chromium, or
# DURIN_CHROMIUM). No network: every model is scripted.
#
# What it does: in a temporary directory, a store of its own
# (DURIN_STORE=sqlite:..., DURIN_DATA_DIR), an admin token, and
# `durin serve` on a free loopback port with a second `durin worker`
# beside it. Through the API it registers a few agents and runs them, as
# a team's console would hold them: examples/fix-failing-test (its
# scripted turns carry usage, so tokens and cost are real), a few more
# that succeed in three tenants with labels, one whose acceptance check
# fails, one stopped by its dollar budget, two waiting for a person (a
# `git push` and a `kubectl apply` their policies ask about), one in
# flight (a ten-minute test suite in bash, cancelled at the end) and one
# scheduled for later. Nothing is written to the store but through the
# API and the runs themselves. Then headless Chromium (playwright-core,
# through tests/js/dashboard/browser.mjs) signs in at 1280x800 and writes
#
#   docs/images/dashboard-runs.png       the runs list
#   docs/images/dashboard-run.png        the fix-failing-test run
#   docs/images/dashboard-approvals.png  the inbox, the push selected
#   docs/images/dashboard-workers.png    the workers
#
# Every process it starts is stopped by its pid, and the directory removed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
durin=$(realpath "${1:-$src/build/durin}")
[ -x "$durin" ] || { echo "shoot.sh: no durin at $durin (build it: make build)" >&2; exit 1; }
[ -d "$src/tests/js/node_modules/playwright-core" ] ||
  { echo "shoot.sh: playwright-core is missing (cd tests/js && npm ci)" >&2; exit 1; }
for c in curl jq node; do
  command -v $c >/dev/null || { echo "shoot.sh: $c is needed" >&2; exit 1; }
done
[ -x "${DURIN_CHROMIUM:-/usr/bin/chromium}" ] ||
  { echo "shoot.sh: no Chromium at ${DURIN_CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)" >&2; exit 1; }
"$durin" sandbox -- true 2>/dev/null ||
  { echo "shoot.sh: this host cannot build the sandbox" >&2; exit 1; }

tmp=$(mktemp -d)
serve_pid="" worker_pid=""
stop() {
  # SIGTERM lets a process finish its steps and release its leases; the
  # run in flight is cancelled first, and a second SIGTERM ends the wait.
  for p in $worker_pid $serve_pid; do
    kill "$p" 2>/dev/null || continue
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  worker_pid="" serve_pid=""
}
cleanup() {
  stop
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

export DURIN_STORE="sqlite:$tmp/d.db" DURIN_DATA_DIR="$tmp/data"
mkdir -p "$tmp/data" "$tmp/ws"
token=$("$durin" token create shots --role admin | tail -n 1)

# The runs' models are scripted and no limiter meters them; the limits
# are what a team would set for its real provider (shown full, unused).
# serve takes one run at a time: the long one, first, so the worker
# drives the others.
"$durin" serve --listen 127.0.0.1:0 --workspace-root "$tmp/ws" --poll 100ms \
  --max-runs 1 --rate-limit anthropic:50:80000 >"$tmp/serve.log" 2>&1 &
serve_pid=$!
"$durin" worker --poll 100ms --max-runs 8 --rate-limit anthropic:50:80000 \
  >"$tmp/worker.log" 2>&1 &
worker_pid=$!
i=0
until grep -q 'serving the API on' "$tmp/serve.log"; do
  i=$((i + 1))
  [ $i -lt 100 ] || { echo "shoot.sh: serve did not start:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
  sleep 0.1
done
url=$(sed -n 's|.*serving the API on \(http://127\.0\.0\.1:[0-9]*\)/v1.*|\1|p' "$tmp/serve.log" | head -n 1)
echo "== serve at $url"

# api METHOD PATH [BODY]: the answer's body on stdout; on an HTTP error,
# says it on stderr and fails.
api() {
  _m=$1 _p=$2
  shift 2
  if [ $# -gt 0 ]; then
    set -- -H 'Content-Type: application/json' --data-binary "$1"
  fi
  _code=$(curl -sS -o "$tmp/answer" -w '%{http_code}' -X "$_m" \
    -H "Authorization: Bearer $token" "$@" "$url$_p" 2>&1) || _code="curl failed: $_code"
  case $_code in
  2??) cat "$tmp/answer" ;;
  *) echo "shoot.sh: $_m $_p: $_code $(cat "$tmp/answer")" >&2; return 1 ;;
  esac
}

# agent NAME SPEC_JSON: keeps the agent's spec; run registers it in the
# tenant of the run (agents are a tenant's own; the same spec twice is
# one version).
mkdir -p "$tmp/agents"
agent() {
  printf '%s\n' "$2" >"$tmp/agents/$1.json"
}

# run AGENT PROJECT TENANT LABELS_JSON [EXTRA_JSON]: a run of AGENT in
# TENANT on a copy of $tmp/projects/PROJECT; prints its id.
run() {
  d=$(mktemp -d -p "$tmp/ws")
  cp -R "$tmp/projects/$2/." "$d/"
  api PUT "/v1/agents/$1?tenant=$3" "$(jq '{spec: .}' "$tmp/agents/$1.json")" >/dev/null &&
  x=${5:-} &&
  { [ -n "$x" ] || x='{}'; } &&
  api POST /v1/runs "$(jq -n --arg a "$1" --arg d "$d" --arg t "$3" \
    --argjson l "$4" --argjson x "$x" \
    '{agent: $a, workspace: {dir: $d}, tenant: $t, labels: $l} + $x')" >"$tmp/run.json" &&
    jq -r .id "$tmp/run.json"
}

# wait_status ID STATUS...: until the run is in one of them (60 s).
wait_status() {
  _id=$1
  shift
  _i=0
  while :; do
    api GET "/v1/runs/$_id" >"$tmp/status.json" || exit 1
    _s=$(jq -r .status "$tmp/status.json")
    for _w in "$@"; do [ "$_s" = "$_w" ] && return 0; done
    _i=$((_i + 1))
    if [ $_i -ge 300 ]; then
      echo "shoot.sh: run $_id is $_s, not $*" >&2
      api GET "/v1/runs/$_id" >&2
      exit 1
    fi
    sleep 0.2
  done
}

# ---- the projects the runs work on ----
P="$tmp/projects"
mkdir -p "$P"
cp -R "$src/examples/fix-failing-test/project" "$P/stats"

mkdir -p "$P/billing/scripts"
cat >"$P/billing/requirements.txt" <<'EOF'
fastapi==0.110.0
pydantic==2.6.4
stripe==8.6.0
uvicorn==0.29.0
EOF
cat >"$P/billing/Makefile" <<'EOF'
test:
	@grep -q '^stripe==8.11.0$$' requirements.txt || { echo "FAIL: stripe is not pinned to 8.11.0"; exit 1; }
	@echo "ok: 42 tests passed"
lint:
	@echo "ok: ruff, mypy"
.PHONY: test lint
EOF

mkdir -p "$P/docs"
cat >"$P/docs/NOTES.md" <<'EOF'
- api: runs can be filtered by label (#412)
- worker: leases renew at a third of their TTL (#418)
- cli: `durin diff --stat` (#421)
- fix: a cancelled run no longer keeps its lease (#425)
EOF
cat >"$P/docs/Makefile" <<'EOF'
test:
	@test -s CHANGELOG.md && grep -q '^## 1\.4\.0' CHANGELOG.md && echo "ok: changelog"
.PHONY: test
EOF

mkdir -p "$P/ledger/tests"
cat >"$P/ledger/Makefile" <<'EOF'
test:
	@sh tests/run.sh
.PHONY: test
EOF
cat >"$P/ledger/tests/run.sh" <<'EOF'
#!/bin/sh
# test_settlement_rounding fails one run in three upstream; here, always.
echo "test_balance ............ ok"
echo "test_transfer ........... ok"
echo "test_settlement_rounding  FAIL: expected 10.05, got 10.04"
exit 1
EOF

mkdir -p "$P/search/src"
for f in config loader cache index query ranker; do
  printf 'CONFIG = {"%s": {"timeout": 30}}\n' "$f" >"$P/search/src/$f.py"
done

mkdir -p "$P/release"
cat >"$P/release/VERSION" <<'EOF'
1.3.2
EOF
cat >"$P/release/CHANGES" <<'EOF'
a41c9e2 api: runs can be filtered by label
7d02b11 worker: renew leases at a third of their TTL
c3f9a80 fix: a cancelled run no longer keeps its lease
EOF

mkdir -p "$P/checkout/k8s"
cat >"$P/checkout/k8s/preview.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: pr-1184
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: checkout
  namespace: pr-1184
spec:
  replicas: 1
EOF

mkdir -p "$P/web"
cat >"$P/web/Makefile" <<'EOF'
test-e2e:
	@echo "running 214 browser tests on 4 shards"; sleep 600; echo ok
.PHONY: test-e2e
EOF

# ---- the agents ----
price='{"input_per_mtok": 3.0, "output_per_mtok": 15.0}'

# The repository's example, its scripted turns inline.
agent fix-failing-test "$(jq --argjson t "$(cat "$src/examples/fix-failing-test/model.json")" \
  'del(.workspace) | .model = {provider: "script", turns: $t, price: .model.price}' \
  "$src/examples/fix-failing-test/agent.json")"

agent bump-dependency "$(jq -n --argjson p "$price" '{
  name: "bump-dependency",
  goal: "Bump stripe to 8.11.0 in requirements.txt and keep the test suite green.",
  system: "You maintain dependencies. Change only what the upgrade needs.",
  tools: ["bash", "read_file", "edit_file", "update_plan", "finish"],
  checks: [{name: "tests", run: "make -s test", timeout_s: 60}],
  budget: {steps: 20, dollars: 0.5, wall_clock_s: 600},
  model: {provider: "script", price: $p, turns: [
    {text: "Reading the pins first.", tool_calls: [
      {name: "update_plan", arguments: {plan: [
        {step: "read the current pins", status: "in_progress"},
        {step: "bump stripe", status: "pending"},
        {step: "run the tests", status: "pending"}]}},
      {name: "read_file", arguments: {path: "requirements.txt"}}],
     usage: {input_tokens: 2140, output_tokens: 88}},
    {text: "stripe is at 8.6.0; 8.11.0 has no breaking change for the calls we make.", tool_calls: [
      {name: "edit_file", arguments: {path: "requirements.txt", old_string: "stripe==8.6.0", new_string: "stripe==8.11.0"}}],
     usage: {input_tokens: 2530, output_tokens: 61}},
    {tool_calls: [{name: "bash", arguments: {command: "make -s test"}}],
     usage: {input_tokens: 2710, output_tokens: 19}},
    {text: "Tests pass.", tool_calls: [{name: "finish", arguments: {summary: "stripe 8.6.0 -> 8.11.0; 42 tests pass."}}],
     usage: {input_tokens: 2890, output_tokens: 35}}]}}')"

agent write-changelog "$(jq -n --argjson p "$price" '{
  name: "write-changelog",
  goal: "Write the 1.4.0 section of CHANGELOG.md from NOTES.md.",
  tools: ["read_file", "write_file", "list_files", "finish"],
  checks: [{name: "changelog", run: "make -s test", timeout_s: 30}],
  budget: {steps: 10, dollars: 0.25},
  model: {provider: "script", price: $p, turns: [
    {tool_calls: [{name: "list_files", arguments: {}}, {name: "read_file", arguments: {path: "NOTES.md"}}],
     usage: {input_tokens: 1320, output_tokens: 40}},
    {text: "Grouping the notes into features and fixes.", tool_calls: [
      {name: "write_file", arguments: {path: "CHANGELOG.md", content: "# Changelog\n\n## 1.4.0\n\n### Added\n- Runs can be filtered by label (#412).\n- `durin diff --stat` (#421).\n\n### Changed\n- Leases renew at a third of their TTL (#418).\n\n### Fixed\n- A cancelled run no longer keeps its lease (#425).\n"}}],
     usage: {input_tokens: 1610, output_tokens: 212}},
    {tool_calls: [{name: "finish", arguments: {summary: "CHANGELOG.md: 1.4.0 with 2 additions, 1 change, 1 fix."}}],
     usage: {input_tokens: 1790, output_tokens: 30}}]}}')"

agent fix-flaky-test "$(jq -n --argjson p "$price" '{
  name: "fix-flaky-test",
  goal: "test_settlement_rounding fails about one CI run in three. Find out why and fix it.",
  tools: ["bash", "read_file", "edit_file", "update_plan", "finish"],
  checks: [{name: "tests", run: "make -s test", timeout_s: 60}],
  max_eval_attempts: 2,
  budget: {steps: 20, dollars: 0.5},
  model: {provider: "script", price: $p, turns: [
    {text: "Reproducing the failure first.", tool_calls: [
      {name: "update_plan", arguments: {plan: [
        {step: "reproduce the failure", status: "in_progress"},
        {step: "find the rounding bug", status: "pending"},
        {step: "fix and re-run", status: "pending"}]}},
      {name: "bash", arguments: {command: "make -s test"}}],
     usage: {input_tokens: 2980, output_tokens: 74}},
    {text: "Off by one cent: the settlement is truncated, not rounded half-even.", tool_calls: [
      {name: "read_file", arguments: {path: "tests/run.sh"}}],
     usage: {input_tokens: 4460, output_tokens: 57}},
    {text: "I believe the failure is timing-dependent; marking it done.", tool_calls: [
      {name: "finish", arguments: {summary: "The test is flaky under load; no code change."}}],
     usage: {input_tokens: 5190, output_tokens: 141}},
    {text: "The check still fails; trying once more.", tool_calls: [
      {name: "finish", arguments: {summary: "Retried: the failure is in the test environment."}}],
     usage: {input_tokens: 6320, output_tokens: 98}}]}}')"

agent migrate-config "$(jq -n --argjson p "$price" '{
  name: "migrate-config",
  goal: "Move every module of src/ from the CONFIG dict to the typed Settings class.",
  tools: ["bash", "read_file", "edit_file", "list_files", "finish"],
  budget: {steps: 40, dollars: 0.15},
  model: {provider: "script", price: $p, max_tokens: 2048, turns: [
    {text: "Six modules to migrate; reading them all.", tool_calls: [{name: "list_files", arguments: {path: "src"}}],
     usage: {input_tokens: 9800, output_tokens: 120}},
    {tool_calls: [{name: "read_file", arguments: {path: "src/config.py"}}],
     usage: {input_tokens: 14200, output_tokens: 96}},
    {tool_calls: [{name: "read_file", arguments: {path: "src/loader.py"}}],
     usage: {input_tokens: 18900, output_tokens: 104}},
    {tool_calls: [{name: "read_file", arguments: {path: "src/cache.py"}}], repeat: 10,
     usage: {input_tokens: 23400, output_tokens: 110}}]}}')"

agent release "$(jq -n --argjson p "$price" '{
  name: "release",
  goal: "Cut release 1.4.0: bump VERSION, write the release notes from CHANGES, push the release branch.",
  tools: ["bash", "read_file", "write_file", "update_plan", "finish"],
  budget: {steps: 15, dollars: 0.5},
  policy: {rules: [{name: "ask-push", tool: "bash", command_prefix: "git push", action: "ask"}]},
  model: {provider: "script", price: $p, turns: [
    {text: "Preparing 1.4.0.", tool_calls: [
      {name: "update_plan", arguments: {plan: [
        {step: "bump VERSION to 1.4.0", status: "in_progress"},
        {step: "write RELEASE_NOTES.md", status: "pending"},
        {step: "push release/1.4", status: "pending"}]}},
      {name: "read_file", arguments: {path: "CHANGES"}}],
     usage: {input_tokens: 1540, output_tokens: 92}},
    {tool_calls: [
      {name: "write_file", arguments: {path: "VERSION", content: "1.4.0\n"}},
      {name: "write_file", arguments: {path: "RELEASE_NOTES.md", content: "# durin 1.4.0\n\n- Runs can be filtered by label.\n- Leases renew at a third of their TTL.\n- A cancelled run no longer keeps its lease.\n"}},
      {name: "update_plan", arguments: {plan: [
        {step: "bump VERSION to 1.4.0", status: "done"},
        {step: "write RELEASE_NOTES.md", status: "done"},
        {step: "push release/1.4", status: "in_progress"}]}}],
     usage: {input_tokens: 1980, output_tokens: 240}},
    {text: "VERSION and the release notes are ready on release/1.4. Pushing the branch starts the publish pipeline (tag, packages, docs), which cannot be undone from here, so I am asking before I push.",
     tool_calls: [{name: "bash", arguments: {command: "git push origin release/1.4"}}],
     usage: {input_tokens: 2350, output_tokens: 71}},
    {tool_calls: [{name: "finish", arguments: {summary: "1.4.0 pushed."}}],
     usage: {input_tokens: 2500, output_tokens: 20}}]}}')"

agent deploy-preview "$(jq -n --argjson p "$price" '{
  name: "deploy-preview",
  goal: "Deploy a preview of pull request 1184 to the staging cluster and post its URL.",
  tools: ["bash", "read_file", "finish"],
  budget: {steps: 10, dollars: 0.25},
  policy: {rules: [{name: "ask-deploy", tool: "bash", command_prefix: "kubectl apply", action: "ask"}]},
  model: {provider: "script", price: $p, turns: [
    {tool_calls: [{name: "read_file", arguments: {path: "k8s/preview.yaml"}}],
     usage: {input_tokens: 1710, output_tokens: 33}},
    {text: "The manifest creates the namespace pr-1184 with one replica of checkout; applying it to staging.",
     tool_calls: [{name: "bash", arguments: {command: "kubectl apply -f k8s/preview.yaml"}}],
     usage: {input_tokens: 2240, output_tokens: 58}},
    {tool_calls: [{name: "finish", arguments: {summary: "Preview at https://pr-1184.staging.example."}}],
     usage: {input_tokens: 2400, output_tokens: 25}}]}}')"

agent e2e-suite "$(jq -n --argjson p "$price" '{
  name: "e2e-suite",
  goal: "Run the browser end-to-end suite and triage any failure.",
  tools: ["bash", "read_file", "finish"],
  limits: {tool_timeout_s: 900},
  budget: {steps: 20, dollars: 0.5, wall_clock_s: 1800},
  model: {provider: "script", price: $p, turns: [
    {text: "Checking how the suite is run.", tool_calls: [
      {name: "read_file", arguments: {path: "Makefile"}}],
     usage: {input_tokens: 1120, output_tokens: 38}},
    {text: "Running the whole suite; it takes about ten minutes.", tool_calls: [
      {name: "bash", arguments: {command: "make -s test-e2e"}}],
     usage: {input_tokens: 1260, output_tokens: 44}},
    {tool_calls: [{name: "finish", arguments: {summary: "214 tests pass."}}],
     usage: {input_tokens: 1400, output_tokens: 20}}]}}')"

# ---- the fleet, oldest first ----
echo "== runs"
e2e=$(run e2e-suite web platform '{"repo": "dashboard", "trigger": "nightly"}')
wait_status "$e2e" running
r1=$(run bump-dependency billing payments '{"repo": "billing-api", "trigger": "renovate"}')
r2=$(run write-changelog docs platform '{"repo": "durin", "trigger": "release"}')
r3=$(run fix-flaky-test ledger payments '{"repo": "ledger", "trigger": "ci-failure"}')
wait_status "$r1" succeeded
wait_status "$r2" succeeded
wait_status "$r3" failed
r4=$(run migrate-config search search '{"repo": "search", "ticket": "SRCH-311"}')
r5=$(run bump-dependency billing payments '{"repo": "checkout", "trigger": "renovate"}')
demo=$(run fix-failing-test stats platform '{"repo": "stats-lib", "trigger": "ci-failure"}')
wait_status "$r4" budget_exceeded
wait_status "$r5" succeeded
wait_status "$demo" succeeded
dep=$(run deploy-preview checkout payments '{"repo": "checkout", "pr": "1184"}')
wait_status "$dep" waiting_approval
rel=$(run release release platform '{"repo": "durin", "trigger": "release"}')
wait_status "$rel" waiting_approval
later=$(run fix-failing-test stats search '{"repo": "search", "trigger": "nightly"}' \
  "{\"not_before_ms\": $(($(date +%s) * 1000 + 3600000))}")
appr=$(api GET "/v1/approvals?run=$rel" | jq -r '.approvals[0].id')
total=$(api GET /v1/runs | jq '.runs | length')
echo "   $total runs: demo $demo, approval $appr, in flight $e2e, scheduled $later"

# ---- the pictures ----
cat >"$tmp/shoot.mjs" <<EOF
import {main, signIn, go} from '$src/tests/js/dashboard/browser.mjs';
const out = process.env.SHOTS_OUT;
const token = process.env.SHOTS_TOKEN;
// The bottom of the element SEL in the page, plus a margin.
const bottom = (page, sel) => page.evaluate((s) =>
  Math.ceil(document.querySelector(s).getBoundingClientRect().bottom + window.scrollY) + 10, sel);
await main(async ({open}) => {
  const page = await open({viewport: {width: 1280, height: 800}});
  await signIn(page, token);
  await page.locator('table[aria-label="Runs"] tbody tr').nth($total - 1).waitFor();
  await page.mouse.move(1279, 799);
  await page.screenshot({path: out + '/dashboard-runs.png'});

  // The run down to its chart: facts, budget, plan, timeline, cost.
  await go(page, '#/runs/$demo', 'run');
  await page.screenshot({path: out + '/dashboard-run.png', fullPage: true,
    clip: {x: 0, y: 0, width: 1280, height: await bottom(page, 'section#cost')}});

  await go(page, '#/approvals/$appr', 'approvals');
  await page.locator('[data-approval-id="$appr"]').waitFor();
  // Down to the decision: the facts, the goal, the agent's words, the call.
  await page.screenshot({path: out + '/dashboard-approvals.png', fullPage: true,
    clip: {x: 0, y: 0, width: 1280, height: await bottom(page, 'section[aria-labelledby="ap-decide"]')}});

  await go(page, '#/workers', 'workers');
  await page.locator('table[aria-label="Workers"] tbody tr').nth(1).waitFor();
  await page.screenshot({path: out + '/dashboard-workers.png', fullPage: true,
    clip: {x: 0, y: 0, width: 1280, height: Math.max(400, await bottom(page, '#main p.small'))}});
});
EOF
echo "== screenshots"
SHOTS_OUT="$here" SHOTS_TOKEN="$token" DASH_URL="$url" node "$tmp/shoot.mjs"

# The run in flight would hold serve for its ten minutes: cancel it.
api POST "/v1/runs/$e2e/cancel" '{}' >/dev/null || true
stop
ls -l "$here"/dashboard-*.png
