# Sourced by the dashboard's browser tests after lib-test.sh: skips when
# the browser or the npm packages are missing, and runs the journeys of
# tests/js/dashboard/ (headless Chromium driven by playwright-core)
# against $API_DIRECT, the serve itself ($API, prism, buffers answers:
# no SSE, no pages).
DASH_JS="$SRCDIR/tests/js/dashboard"
DURIN_CHROMIUM=${DURIN_CHROMIUM:-/usr/bin/chromium}
export DURIN_CHROMIUM
[ -x "$DURIN_CHROMIUM" ] ||
  test_skip_all "no Chromium at $DURIN_CHROMIUM (make test installs the chromium package)"
[ -d "$SRCDIR/tests/js/node_modules/playwright-core" ] &&
  [ -d "$SRCDIR/tests/js/node_modules/@axe-core/playwright" ] ||
  test_skip_all "playwright-core is not installed (make npm-deps)"
command -v node >/dev/null || test_skip_all "no node (make npm-deps installs it)"
command -v curl >/dev/null && command -v jq >/dev/null ||
  test_skip_all "curl and jq are needed (make test installs them)"

# Screenshots: $DURIN_ARTEFACTS/dashboard, else the build directory's
# artefacts/dashboard ($DURIN_BUILD from meson, else where durin is).
DASH_ARTEFACTS=${DURIN_ARTEFACTS:-${DURIN_BUILD:-$(dirname "$DURIN")}/artefacts}/dashboard
export DASH_ARTEFACTS
mkdir -p "$DASH_ARTEFACTS" "$TRASH/sync"
export DASH_SYNC="$TRASH/sync"

# dash SCRIPT [VAR=VALUE...]: one journey in the foreground; its TAP-ish
# lines go to the test's output; fails as the script does.
dash() {
  _s=$1
  shift
  env DASH_URL="$API_DIRECT" "$@" node "$DASH_JS/$_s" </dev/null
}

# dash_bg OUT SCRIPT [VAR=VALUE...]: the same in the background (for
# journeys that wait on the shell with sync()); sets dash_pid. Its output
# is in OUT; `dash_wait` waits for it and shows it.
dash_bg() {
  _o=$1 _s=$2
  shift 2
  env DASH_URL="$API_DIRECT" "$@" node "$DASH_JS/$_s" </dev/null >"$_o" 2>&1 &
  dash_pid=$!
  dash_out=$_o
  bg_pids="$bg_pids $dash_pid"
}
dash_wait() {
  wait "$dash_pid"
  _rc=$?
  cat "$dash_out"
  return $_rc
}

# at NAME [SECS]: the journey in the background has reached sync("NAME");
# go NAME lets it on. at fails early when the journey has ended.
at() {
  _w=0
  while [ ! -e "$DASH_SYNC/$1.wait" ]; do
    if ! kill -0 "$dash_pid" 2>/dev/null || [ $_w -ge $((${2:-60} * 10)) ]; then
      echo "the journey did not reach \"$1\":"; cat "$dash_out"; return 1
    fi
    sleep 0.1; _w=$((_w + 1))
  done
}
go() { touch "$DASH_SYNC/$1.go"; }

# start_serve_on PORT [ARGS...]: start_serve on a given port (a restart
# that clients must find where they left it).
start_serve_on() {
  _port=$1
  shift
  start_serve "$@" --listen "127.0.0.1:$_port"
}
