#!/bin/sh
# Self-test of the tools in tests/js (run after `make npm-deps`): the SSE
# client against sse-fake-server.mjs, the webhook receiver against
# deliveries signed here with node's own crypto (not the package it checks
# with), and `openapi-check.sh selftest`. Prints TAP and a closing
# "N passed, N failed" line; exit 0 when all pass. Needs node and curl.
set -u
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d)
pids=""
n=0
failed=0
# shellcheck disable=SC2154 # p is the trap's own loop variable
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$t"' EXIT
ok() {
  n=$((n + 1))
  if [ "$1" = 0 ]; then echo "ok $n - $2"; else
    echo "not ok $n - $2"; failed=$((failed + 1)); fi
}
# start NAME CMD...: runs CMD in the background with stdout to $t/NAME.port,
# waits for its first line (the port) and sets $port.
start() {
  name=$1
  shift
  "$@" >"$t/$name.port" 2>"$t/$name.err" &
  pids="$pids $!"
  last_pid=$!
  i=0
  while [ ! -s "$t/$name.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  port=$(head -n 1 "$t/$name.port")
}
sse() { node "$here/sse-client.mjs" "$@"; }

# --- SSE client
start sse node "$here/sse-fake-server.mjs" --token sek --events 7 --drop-after 3 \
  --retry 200 --log "$t/sse-req.log"
url="http://127.0.0.1:$port/v1/runs/r1/events/stream"
sse "$url" --token sek --out "$t/a.jsonl" --timeout 10
rc=$?
[ $rc = 0 ] && [ "$(grep -c '"event":"step"' "$t/a.jsonl")" = 7 ] &&
  [ "$(tail -n 1 "$t/a.jsonl")" = '{"id":"8","event":"end","data":"{}"}' ] &&
  head -n 1 "$t/a.jsonl" | grep -qx '{"id":"1","event":"step","data":"{\\"seq\\":1}"}'
ok $? "sse: all 7 events once each, then end; exit $rc"
[ "$(sed -n 's/.*"last_event_id":\([^,]*\),.*/\1/p' "$t/sse-req.log" | tr '\n' ' ')" = 'null "3" "6" ' ]
ok $? "sse: reconnects after server drops send Last-Event-ID 3 then 6"
sse "$url" --token sek --last-event-id 4 --until-event step --out "$t/b.jsonl" --timeout 10
rc=$?
[ $rc = 0 ] && [ "$(cat "$t/b.jsonl")" = '{"id":"5","event":"step","data":"{\"seq\":5}"}' ] &&
  tail -n 1 "$t/sse-req.log" | grep -q '"last_event_id":"4"'
ok $? "sse: --last-event-id 4 resumes at 5; --until-event stops there (exit $rc)"
sse "$url" --token wrong --out "$t/c.jsonl" --timeout 10 2>"$t/c.err"
rc=$?
[ $rc = 2 ] && grep -q 'HTTP 401' "$t/c.err"
ok $? "sse: a 401 fails for good with exit 2 (got $rc)"
kill "$last_pid"
start slow node "$here/sse-fake-server.mjs" --events 100 --interval 1000
sse "http://127.0.0.1:$port/" --timeout 1 --out "$t/d.jsonl" 2>/dev/null
rc=$?
[ $rc = 1 ] && [ "$(wc -l <"$t/d.jsonl")" -ge 1 ]
ok $? "sse: --timeout exits 1 (got $rc), messages so far are in the file"
kill "$last_pid"
start retry node "$here/sse-fake-server.mjs" --events 2 --drop-after 1 --retry 1200
s=$(date +%s%N)
sse "http://127.0.0.1:$port/" --timeout 10 --out "$t/e.jsonl"
ms=$((($(date +%s%N) - s) / 1000000))
[ $ms -ge 1200 ] && [ $ms -lt 3000 ]
ok $? "sse: the server's retry: 1200 sets the reconnect delay (took $ms ms)"
kill "$last_pid"

# --- webhook receiver
secret="whsec_$(node -e 'console.log(require("crypto").randomBytes(24).toString("base64"))')"
start wh node "$here/webhook-receiver.mjs" --secret "$secret" --log "$t/wh.jsonl" \
  --fail-first 1 --down-until-file "$t/down"
# send ID BODY [SECRET [TS]]: POSTs BODY signed the Standard Webhooks way.
send() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
    const [port, id, body, secret, ts] = process.argv.slice(1);
    const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
    const sig = require("crypto").createHmac("sha256", key)
      .update(`${id}.${ts}.${body}`).digest("base64");
    fetch(`http://127.0.0.1:${port}/hook`, {method: "POST", body,
      headers: {"content-type": "application/json", "webhook-id": id,
        "webhook-timestamp": ts, "webhook-signature": `v1,bogus v1,${sig}`}})
      .then((r) => console.log(r.status));' \
    "$port" "$1" "$2" "${3:-$secret}" "${4:-$(date +%s)}"
}
body='{"type":"run.completed","timestamp":"2026-01-01T00:00:00Z","data":{"run_id":"r1"}}'
other="whsec_$(node -e 'console.log(require("crypto").randomBytes(24).toString("base64"))')"
got="$(send msg_1 "$body") $(send msg_1 "$body") $(send msg_2 "$body" "$other")"
got="$got $(send msg_3 "$body" "$secret" $(($(date +%s) - 600)))"
touch "$t/down"
got="$got $(send msg_4 "$body")"
rm "$t/down"
got="$got $(send msg_4 "$body")"
[ "$got" = "503 204 401 401 503 204" ]
ok $? "webhook: answers 503 (fail-first), 204, 401 (wrong key), 401 (stale), 503 (down), 204: $got"
[ "$(grep -c '"verified":true' "$t/wh.jsonl")" = 4 ] &&
  grep -q '"id":"msg_1","type":"run.completed","verified":true,"status":204' "$t/wh.jsonl" &&
  grep -q '"id":"msg_3",.*"error":"Message timestamp too old","status":401' "$t/wh.jsonl" &&
  grep -q '"body":{"type":"run.completed"' "$t/wh.jsonl"
ok $? "webhook: the log has one line per delivery with id, type, verified, status, body"
kill "$last_pid"

# --- OpenAPI
"$here/openapi-check.sh" selftest >"$t/openapi.tap" 2>&1
rc=$?
sed 's/^/# openapi: /' "$t/openapi.tap"
ok $rc "openapi-check.sh selftest"

echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ $failed = 0 ]
