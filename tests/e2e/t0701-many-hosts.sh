#!/bin/sh
# Many hosts on one PostgreSQL: three worker "hosts" and a database host,
# each a network namespace of this test's own, joined by veth links. 300
# runs go to the workers, and while they run: one worker is SIGKILLed,
# another is cut off the network for longer than its lease and then
# reconnected, and PostgreSQL restarts once. Every run ends succeeded, no
# tool call ran again after its outcome was recorded, and the cut-off
# worker lets go of the runs it lost.
. "$(dirname "$0")/lib-test.sh"

[ "$(id -u)" = 0 ] || test_skip_all "network namespaces need root"
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 ||
  test_skip_all "no PostgreSQL server installed"
"$DURIN" sandbox -- true 2>/dev/null || test_skip_all "no sandbox on this host"
command -v ip >/dev/null || test_skip_all "no ip(8)"

N=300
STEPS=5
TAG=d$$
NS_DB=${TAG}db
CL=$(mktemp -d)
W1= W2= W3=
netns_down() {
  for i in 1 2 3; do ip netns del ${TAG}w$i 2>/dev/null; done
  ip netns del $NS_DB 2>/dev/null
}
finish() {
  for p in $W1 $W2 $W3; do kill -9 $p 2>/dev/null; done
  ip netns exec $NS_DB "$SRCDIR/tests/helpers/pg-cluster.sh" stop "$CL" 2>/dev/null
  rm -rf "$CL"
  netns_down
  test_cleanup
}
trap finish EXIT

# The database host has one link per worker host: 10.77.I.1 <-> 10.77.I.2.
ip netns add $NS_DB || test_skip_all "cannot create network namespaces"
ip -n $NS_DB link set lo up
for i in 1 2 3; do
  ip netns add ${TAG}w$i &&
    ip link add ${TAG}a$i netns $NS_DB type veth peer name ${TAG}b$i netns ${TAG}w$i &&
    ip -n $NS_DB addr add 10.77.$i.1/24 dev ${TAG}a$i &&
    ip -n $NS_DB link set ${TAG}a$i up &&
    ip -n ${TAG}w$i addr add 10.77.$i.2/24 dev ${TAG}b$i &&
    ip -n ${TAG}w$i link set ${TAG}b$i up &&
    ip -n ${TAG}w$i link set lo up || test_skip_all "cannot link network namespaces"
done

export PG_LISTEN="127.0.0.1,10.77.1.1,10.77.2.1,10.77.3.1" PG_ALLOW=10.77.0.0/16
url=$(ip netns exec $NS_DB "$SRCDIR/tests/helpers/pg-cluster.sh" start "$CL") ||
  test_skip_all "cannot start PostgreSQL in a namespace"
port=${url##*:}
on_db() { ip netns exec $NS_DB "$@"; }
sql() { on_db psql -X -A -t -q "postgres://durin@127.0.0.1:$port/postgres" -c "$1"; }
export DURIN_DATA_DIR="$TRASH/runs"

make_project
mkdir -p "$TRASH/log"
cat >"$TRASH/s.json" <<JSON
{"goal": "g", "workspace": "project", "sandbox": {"rw": ["$TRASH/log"]},
 "tools": [{"name": "bash", "effect": "idempotent"}, "finish"],
 "model": {"provider": "script", "turns": [
   {"repeat": $STEPS, "tool_calls": [{"name": "bash", "arguments": {"command": "echo \$DURIN_IDEMPOTENCY_KEY \$(date +%s%3N) >> $TRASH/log/calls; sleep 1"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON

# worker I: a durin worker on host I, reaching the database as 10.77.I.1.
worker() {
  ip netns exec ${TAG}w$1 env DURIN_STORE="postgres://durin@10.77.$1.1:$port/postgres?connect_timeout=2&tcp_user_timeout=4000" \
    "$DURIN" worker --poll 100ms --lease-ttl 3s --max-runs 120 >"$TRASH/w$1.log" 2>&1 &
}
ended() { sql "select count(*) from runs where status in ('succeeded', 'failed', 'cancelled', 'budget_exceeded', 'needs_human')"; }
held_by() { sql "select count(*) from runs where lease_owner like '%:$1:%' or lease_owner like '%:$1'"; }

test_expect_success "submit $N runs" '
  for i in $(seq $N); do
    on_db env DURIN_STORE="postgres://durin@127.0.0.1:$port/postgres" "$DURIN" submit s.json >/dev/null || return 1
  done
  test "$(sql "select count(*) from runs")" = $N
'

test_expect_success 'three hosts run them through a kill, a partition and a database restart' '
  worker 1; W1=$!
  worker 2; W2=$!
  worker 3; W3=$!
  wait_for 30 "test \$(sql \"select count(*) from ledger where done = 1\") -ge 60" || return 1
  kill -9 $W1 && echo "killed worker 1" &&
  ip -n ${TAG}w2 link set ${TAG}b2 down && echo "cut worker 2 off" &&
  sleep 2 &&
  on_db "$SRCDIR/tests/helpers/pg-cluster.sh" restart "$CL" && echo "restarted PostgreSQL" &&
  sleep 5 &&
  ip -n ${TAG}w2 link set ${TAG}b2 up && echo "reconnected worker 2" || return 1
  wait_for 240 "test \$(ended) = $N"; r=$?
  sql "select status, count(*) from runs group by status"
  test $r = 0 &&
  test "$(sql "select count(*) from runs where status = '"'"'succeeded'"'"'")" = $N
'

# Back on the network, the cut-off worker learns it lost its runs either
# from its heartbeat or from a write the fence refuses (whichever comes
# first); either way nothing it writes for them lands (t0302 checks the
# refused write itself on both stores).
test_expect_success 'the cut-off worker learned it lost its runs and let go' '
  grep -q "lease lost" w2.log &&
  cat w2.log w3.log | grep -q "re-queued after their lease expired"
'

test_expect_success 'no tool call ran again after its outcome was recorded' '
  sql "select idem_key, outcome_ms from ledger where done = 1" | tr "|" " " >outcomes &&
  test "$(wc -l <outcomes)" = $((N * STEPS)) &&
  awk "NR == FNR { done[\$1] = \$2; next } (\$1 in done) && \$2 > done[\$1] { bad++ } END { exit bad > 0 }" outcomes log/calls &&
  awk "{ n[\$1]++ } END { for (k in n) if (n[k] > 1) r++; print r + 0, \"call(s) run again after a kill or cut (no outcome recorded)\" }" log/calls
'

test_done
