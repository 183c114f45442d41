#!/bin/sh
# The project's tests: sh tests/run.sh (exit 0 when all pass).
. "$(dirname "$0")/../src/slug.sh"
fails=0
check() {
  got=$(slug "$1")
  if [ "$got" = "$2" ]; then echo "ok   slug '$1' = '$2'"; else
    echo "FAIL slug '$1' = '$got', want '$2'"; fails=$((fails + 1)); fi
}
check "Hello World" "hello-world"
check "  padded  " "padded"
check "a  --  b" "a-b"
check "C99 & C11" "c99-c11"
[ "$fails" = 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }
