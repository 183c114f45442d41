#!/bin/sh
. "$(dirname "$0")/lib-test.sh"
echo "1..0 # SKIP written next"
exit 0
