#!/bin/sh
# Runs every test (unit and e2e, under ASan+UBSan) and ends with one line
# the CI can read: "N passed, N failed, N skipped".
set -u
build=${1:-build}
# A private PostgreSQL cluster for the store tests' second run (the "pg"
# suite); removed at the end. Without a server those tests skip.
pgdir=$(mktemp -d)
cleanup() {
  "$(dirname "$0")/helpers/pg-cluster.sh" stop "$pgdir" 2>/dev/null
  rm -rf "$pgdir"
}
trap cleanup EXIT
if url=$("$(dirname "$0")/helpers/pg-cluster.sh" start "$pgdir"); then
  export DURIN_TEST_PG="$url"
  echo "PostgreSQL test cluster: $url"
else
  echo "no PostgreSQL test cluster: the pg suite skips"
fi
shift 2>/dev/null; meson test -C "$build" --print-errorlogs --num-processes 2 "$@" 2>&1 |
  tee "$build/test-output.txt" | grep -v '^Compiler for C supports'
log="$build/meson-logs/testlog.json"
if [ ! -f "$log" ]; then
  echo "0 passed, 1 failed, 0 skipped (the test suite did not run)"
  exit 1
fi
passed=$(grep -c '"result": "OK"' "$log")
failed=$(grep -c -E '"result": "(FAIL|ERROR|TIMEOUT|UNEXPECTEDPASS)"' "$log")
skipped=$(grep -c '"result": "SKIP"' "$log")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
