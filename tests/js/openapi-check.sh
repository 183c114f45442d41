#!/bin/sh
# OpenAPI checks for the e2e tests, with third-party tools from
# tests/js/node_modules (`make npm-deps` installs them):
#
#   openapi-check.sh lint OPENAPI
#       `redocly lint` with tests/js/redocly.yaml (Redocly's recommended
#       ruleset, warnings as errors). Exit 0 when the document is clean.
#
#   openapi-check.sh proxy OPENAPI UPSTREAM PORT [LOG]
#       Starts `prism proxy OPENAPI UPSTREAM --errors` on 127.0.0.1:PORT in
#       the background, waits until it listens (up to 30 s; it takes about
#       1.5 s), and prints its pid (stop it with `kill PID`). Prism's output
#       goes to LOG (default: $TMPDIR/prism-PORT.log). PORT 0 lets the kernel
#       pick one (then give LOG, and read the port with `port LOG`). Exit 1
#       if it does not come up. Extra prism options can go in PRISM_OPTS,
#       e.g. PRISM_OPTS=--validate-request=false.
#
#   openapi-check.sh port LOG
#       Prints the port of the prism whose LOG that is ("Prism is listening
#       on http://127.0.0.1:PORT").
#
#   openapi-check.sh check-response HEADERS [BODY]
#       For a response fetched through the proxy (`curl -D HEADERS -o BODY`):
#       exit 1, printing why, if prism flagged it, i.e. the headers carry
#       `sl-violations`, or BODY is one of prism's own error documents
#       (type https://stoplight.io/prism/errors#...: the upstream's answer
#       was replaced, or the request never reached it). Exit 0 otherwise.
#
#   openapi-check.sh selftest
#       Proves the above on openapi-example/: the example lints clean, a
#       conforming upstream answer passes the proxy, non-conforming ones are
#       flagged. Prints TAP.
#
# How prism proxy --errors reports a violation (prism 5.14):
# - Every violation it finds in the upstream's response is listed in the
#   response header `sl-violations`: a JSON array of {location, severity,
#   code?, message}. A conforming response has no such header. This header
#   is THE check: it is there for both severities.
# - severity "Error" (body or header does not match the schema, undeclared
#   media type): with --errors prism replaces the upstream's answer with
#   status 500, Content-Type application/problem+json, body
#   {"type":"https://stoplight.io/prism/errors#VIOLATIONS", ...,
#    "validation":[...same list...]}.
# - severity "Warning" (a status code the operation does not declare): the
#   upstream's status and body pass through unchanged (so a 500 from the
#   upstream stays 500), only `sl-violations` tells.
# - Requests are validated first and, when invalid, answered by prism itself
#   without reaching the upstream: 401 ...#UNAUTHORIZED (the operation's
#   security is not met, e.g. no bearer token; even with
#   --validate-request=false), 422 ...#UNPROCESSABLE_ENTITY (parameters or
#   body do not match; not with --validate-request=false), 404
#   ...#NO_PATH_MATCHED_ERROR, 405 ...#NO_METHOD_MATCHED_ERROR (route or
#   method not in the document). These have no sl-violations header; their
#   body's type names them. A test that sends a bad request on purpose, to
#   see durin's own 4xx, sets PRISM_OPTS=--validate-request=false.
# - Prism reads the whole upstream response before answering: an SSE stream
#   arrives only when the upstream ends it. Test streams directly, not
#   through prism.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/node_modules/.bin
# No telemetry or update check from Redocly (redocly.yaml says telemetry:
# off too); the update notice is also off whenever stderr is not a tty.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true

need() {
  [ -x "$bin/$1" ] || {
    echo "openapi-check: $bin/$1 missing; run 'make npm-deps'" >&2
    exit 2
  }
}

cmd_lint() {
  need redocly
  # Redocly CLI prints a Node 20 deprecation box on stderr; it is only noise.
  "$bin/redocly" lint --config "$here/redocly.yaml" --format stylish "$1"
}

cmd_port() {
  sed -n 's|.*Prism is listening on http://[^:]*:\([0-9][0-9]*\).*|\1|p' "$1" | head -n 1
}

cmd_proxy() {
  need prism
  doc=$1 upstream=$2 port=$3
  if [ $# -lt 4 ] && [ "$port" = 0 ]; then
    echo "openapi-check: proxy with PORT 0 needs LOG (the port is read from it)" >&2
    exit 64
  fi
  log=${4:-${TMPDIR:-/tmp}/prism-$port.log}
  : >"$log"
  # shellcheck disable=SC2086 # PRISM_OPTS is a list of words
  "$bin/prism" proxy "$doc" "$upstream" --errors --host 127.0.0.1 --port "$port" \
    ${PRISM_OPTS:-} </dev/null >>"$log" 2>&1 &
  pid=$!
  i=0
  until grep -q "Prism is listening on" "$log"; do
    if ! kill -0 "$pid" 2>/dev/null || [ $i -ge 300 ]; then
      echo "openapi-check: prism did not start; its log $log:" >&2
      tail -n 20 "$log" >&2
      kill "$pid" 2>/dev/null
      exit 1
    fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "$pid"
}

cmd_check_response() {
  hdrs=$1 body=${2:-/dev/null}
  if v=$(grep -i '^sl-violations:' "$hdrs"); then
    echo "openapi-check: prism flagged the response: $v"
    return 1
  fi
  if grep -q 'stoplight.io/prism/errors#' "$body" 2>/dev/null; then
    echo "openapi-check: prism answered instead of the upstream: $(head -c 400 "$body")"
    return 1
  fi
  return 0
}

cmd_selftest() {
  need redocly
  need prism
  command -v curl >/dev/null || { echo "1..0 # SKIP no curl"; return 0; }
  t=$(mktemp -d)
  n=0 failed=0 upid="" ppid_=""
  trap 'kill $upid $ppid_ 2>/dev/null; rm -rf "$t"' EXIT
  ok() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then echo "ok $n - $2"; else
      echo "not ok $n - $2"; failed=$((failed + 1)); fi
  }
  cmd_lint "$here/openapi-example/openapi.json" >"$t/lint.out" 2>&1
  ok $? "the example document lints clean"
  node -e 'const d=JSON.parse(require("fs").readFileSync(process.argv[1]));
    delete d.info.license; console.log(JSON.stringify(d))' \
    "$here/openapi-example/openapi.json" >"$t/nolicense.json"
  cmd_lint "$t/nolicense.json" >"$t/lint2.out" 2>&1
  [ $? = 1 ] && grep -q info-license "$t/lint2.out"
  ok $? "a document without info.license fails the lint (warnings are errors)"

  node "$here/openapi-example/upstream.mjs" >"$t/up.port" &
  upid=$!
  i=0
  while [ ! -s "$t/up.port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  up=$(head -n 1 "$t/up.port")
  start=$(date +%s%N)
  ppid_=$(cmd_proxy "$here/openapi-example/openapi.json" "http://127.0.0.1:$up" 0 "$t/prism.log")
  ok $? "prism proxy starts (in $(( ($(date +%s%N) - start) / 1000000 )) ms)"
  port=$(cmd_port "$t/prism.log")
  get() {
    curl -s -D "$t/h" -o "$t/b" -w '%{http_code}' -H 'Authorization: Bearer tok' \
      "http://127.0.0.1:$port/v1/runs/$1"
  }
  s=$(get r1); cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 200 ]
  ok $? "a conforming 200 passes (status $s, no sl-violations)"
  s=$(get r404); cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 404 ]
  ok $? "a conforming declared 404 passes (status $s)"
  s=$(get r2); ! cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 500 ] &&
    grep -qi '^sl-violations:.*"severity":"Error".*"code":"enum"' "$t/h" &&
    grep -q 'errors#VIOLATIONS' "$t/b"
  ok $? "a body off the schema (enum) is flagged: 500, sl-violations, #VIOLATIONS"
  s=$(get r3); ! cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 500 ] &&
    grep -qi '^sl-violations:.*additionalProperties' "$t/h"
  ok $? "an undeclared property is flagged (status $s)"
  s=$(get r4); ! cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 500 ]
  ok $? "an undeclared media type is flagged (status $s)"
  s=$(get r500); ! cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 500 ] &&
    grep -qi '^sl-violations:.*"severity":"Warning"' "$t/h" && grep -q boom "$t/b"
  ok $? "an undeclared status passes through with a Warning in sl-violations"
  s=$(curl -s -D "$t/h" -o "$t/b" -w '%{http_code}' "http://127.0.0.1:$port/v1/runs/r1")
  ! cmd_check_response "$t/h" "$t/b" >/dev/null && [ "$s" = 401 ] &&
    grep -q 'errors#UNAUTHORIZED' "$t/b"
  ok $? "a request without the bearer token is answered 401 by prism itself"
  kill "$ppid_" "$upid" 2>/dev/null
  wait 2>/dev/null
  upid="" ppid_=""
  echo "1..$n"
  [ $failed = 0 ]
}

case ${1:-} in
  lint) [ $# = 2 ] || { echo "usage: $0 lint OPENAPI" >&2; exit 64; }; cmd_lint "$2" ;;
  proxy)
    if [ $# -lt 4 ] || [ $# -gt 5 ]; then
      echo "usage: $0 proxy OPENAPI UPSTREAM PORT [LOG]" >&2
      exit 64
    fi
    shift; cmd_proxy "$@" ;;
  port) [ $# = 2 ] || { echo "usage: $0 port LOG" >&2; exit 64; }; cmd_port "$2" ;;
  check-response)
    [ $# -ge 2 ] || { echo "usage: $0 check-response HEADERS [BODY]" >&2; exit 64; }
    shift; cmd_check_response "$@" ;;
  selftest) cmd_selftest ;;
  *) echo "usage: $0 lint|proxy|port|check-response|selftest ..." >&2; exit 64 ;;
esac
