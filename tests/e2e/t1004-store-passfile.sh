#!/bin/sh
# The PostgreSQL password comes from libpq's passfile or service file,
# never from a URL or a variable: a URL holding one, or PGPASSWORD, is
# refused with where to put it (and the message does not repeat it); a
# passfile and a service file both work against a server that asks for a
# password (scram-sha-256).
. "$(dirname "$0")/lib-test.sh"

own_pg_cluster
make_project
PW=pw-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d " \n")
port=${url##*:}

sql "CREATE ROLE agent LOGIN PASSWORD '$PW'" &&
sql "CREATE DATABASE agentdb OWNER agent" || exit 1
hba="$CL/data/pg_hba.conf"
{ echo "host all agent 127.0.0.1/32 scram-sha-256"; cat "$hba"; } >"$hba.new" &&
  cat "$hba.new" >"$hba" && rm -f "$hba.new" && cluster restart || exit 1
unset PGPASSWORD PGPASSFILE PGSERVICEFILE PGSERVICE
export HOME="$TRASH/home"
mkdir -p "$HOME"

cat >"$TRASH/s.json" <<'JSON'
{"goal": "say hi", "workspace": "project",
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "hi"}}]}]}}
JSON

test_expect_success 'the server asks for the password: none, no store' '
  DURIN_STORE="postgres://agent@127.0.0.1:$port/agentdb" test_must_fail durin ls 2>e &&
  grep -q "password" e
'

test_expect_success 'a password in the URL is refused, and not repeated' '
  DURIN_STORE="postgres://agent:$PW@127.0.0.1:$port/agentdb" test_must_fail durin ls 2>e &&
  grep -q "the store URL holds a password" e &&
  grep -q "passfile" e &&
  ! grep -q "$PW" e &&
  DURIN_STORE="postgres://agent@127.0.0.1:$port/agentdb?password=$PW" test_must_fail durin ls 2>e &&
  grep -q "the store URL holds a password" e &&
  ! grep -q "$PW" e
'

test_expect_success 'PGPASSWORD is refused' '
  PGPASSWORD="$PW" DURIN_STORE="postgres://agent@127.0.0.1:$port/agentdb" test_must_fail durin ls 2>e &&
  grep -q "PGPASSWORD is set" e &&
  ! grep -q "$PW" e
'

test_expect_success 'the passfile works: a run on the store' '
  echo "127.0.0.1:$port:agentdb:agent:$PW" >"$TRASH/pgpass" &&
  chmod 600 "$TRASH/pgpass" &&
  PGPASSFILE="$TRASH/pgpass" DURIN_STORE="postgres://agent@127.0.0.1:$port/agentdb" durin run s.json >out &&
  grep -q succeeded out
'

test_expect_success '~/.pgpass works too' '
  cp "$TRASH/pgpass" "$HOME/.pgpass" &&
  DURIN_STORE="postgres://agent@127.0.0.1:$port/agentdb" durin ls >ls.txt &&
  grep -q succeeded ls.txt
'

test_expect_success 'a service file works: DURIN_STORE names the service' '
  rm -f "$HOME/.pgpass" &&
  printf "[durin]\nhost=127.0.0.1\nport=%s\nuser=agent\ndbname=agentdb\npassword=%s\n" "$port" "$PW" >"$TRASH/svc.conf" &&
  PGSERVICEFILE="$TRASH/svc.conf" DURIN_STORE="postgresql:///?service=durin" durin ls >ls.txt &&
  grep -q succeeded ls.txt
'

test_done
