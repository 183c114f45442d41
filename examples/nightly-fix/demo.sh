#!/bin/sh
# The demo of a schedule: "every night at 3 (Berlin time), look at the
# failing tests and propose the smallest fix". A throwaway store; the
# night is simulated with durin's test clock (DURIN_TEST_NOW_FILE, which
# only the scheduler and `durin schedule` read), so nobody waits for 3am.
set -u
durin=$(realpath "${1:-build/durin}")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
serve=""
trap '[ -z "$serve" ] || kill "$serve" 2>/dev/null; wait; rm -rf "$tmp"' EXIT
export DURIN_STORE="sqlite:$tmp/store/durin.db" DURIN_TEST_NOW_FILE="$tmp/now"
# 2030-03-30 20:00 UTC: that night Berlin changes to summer time (02:00
# becomes 03:00), and the 03:00 tick still fires, once.
echo 1901131200000 >"$tmp/now"

echo "== 1. add the schedule: every night at 3, Berlin time"
"$durin" schedule add nightly --cron "0 3 * * *" --tz Europe/Berlin \
  "$here/spec.json" || exit 1

echo "== 2. durin serve fires the ticks (any number of them may run)"
"$durin" serve --listen 127.0.0.1:0 >"$tmp/serve.log" 2>&1 &
serve=$!
sleep 1

echo "== 3. the night passes: it is 03:00:30 CEST in Berlin (01:00:30 UTC)"
echo 1901149230000 >"$tmp/now"
i=0
until "$durin" schedule history nightly | grep -q fired; do
  i=$((i + 1))
  [ $i -lt 100 ] || { echo "no tick fired:"; cat "$tmp/serve.log"; exit 1; }
  sleep 0.2
done
"$durin" schedule history nightly
id=$("$durin" schedule ls nightly --json | sed -n 's/.*"last_run":"\([^"]*\)".*/\1/p')
i=0
until "$durin" show "$id" 2>/dev/null | grep -q succeeded; do
  i=$((i + 1))
  [ $i -lt 150 ] || { echo "the run did not end:"; cat "$tmp/serve.log"; exit 1; }
  sleep 0.2
done

echo "== 4. the run it started, and what it proposes"
"$durin" show "$id"
"$durin" diff "$id"
echo "== 5. the schedule: last tick, its run, the next ticks"
"$durin" schedule ls
