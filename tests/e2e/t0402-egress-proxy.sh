#!/bin/sh
# Egress: with --net proxy (spec: "network": "proxy") a sandboxed command
# reaches the allowlisted hosts over HTTP(S) through the call's proxy, and
# nothing else: other hosts and raw IPs get 403, and direct TCP, UDP and
# DNS stay unreachable.
. "$(dirname "$0")/lib-test.sh"

if ! "$DURIN" sandbox -- true 2>"$TRASH/why"; then
  test_skip_all "this host cannot build the sandbox: $(cat "$TRASH/why")"
fi

W="$TRASH/ws"
mkdir -p "$W"
FAKE_KEY_VALUE=k
echo '[{"raw": "hello-plain", "status": 200}, {"raw": "hello-tunnel", "status": 200},
       {"raw": "hello-run", "status": 200}, {"raw": "never", "status": 200},
       {"raw": "never", "status": 200}, {"raw": "never", "status": 200}]' >"$TRASH/replies.json"
start_fake "$TRASH/replies.json"
BODY='{"model":"m","messages":[{"role":"user","content":"hi"}]}'

# Scripts run inside, with bash's /dev/tcp: one plain-HTTP request through
# the proxy to URL's host ($1), one through a CONNECT tunnel to $1.
cat >"$W/plain.sh" <<EOF
exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9
printf 'POST http://%s/v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer k\r\nContent-Length: ${#BODY}\r\nConnection: close\r\n\r\n%s' "\$1" "\$1" '$BODY' >&3
cat <&3
EOF
cat >"$W/tunnel.sh" <<EOF
exec 3<>/dev/tcp/127.0.0.1/3128 || exit 9
printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "\$1" "\$1" >&3
read -r status <&3; echo "proxy said: \$status"; read -r blank <&3
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Length: ${#BODY}\r\nConnection: close\r\n\r\n%s' '$BODY' >&3
cat <&3
EOF
cat >"$W/direct.sh" <<EOF
exec 3<>/dev/tcp/127.0.0.1/\$1
EOF
px() { "$DURIN" sandbox --workspace "$W" --net proxy "$@"; }

test_expect_success 'plain HTTP to an allowed host goes through' '
  px --allow-host localhost:$PORT -- bash plain.sh localhost:$PORT >out &&
  grep -q "^HTTP/1.1 200" out && grep -q hello-plain out
'

test_expect_success 'CONNECT to an allowed host is tunnelled' '
  px --allow-host localhost:$PORT -- bash tunnel.sh localhost:$PORT >out &&
  grep -q "proxy said: HTTP/1.1 200" out && grep -q hello-tunnel out
'

test_expect_success 'a host not on the list gets 403, and the output says why' '
  px --allow-host example.com -- bash plain.sh localhost:$PORT >out 2>err &&
  grep -q "^HTTP/1.1 403" out && grep -q "refused: not on the allowlist" err &&
  px --allow-host "*.localhost" -- bash tunnel.sh localhost:$PORT >out &&
  grep -q "proxy said: HTTP/1.1 403" out && ! grep -q never out
'

test_expect_success 'raw IP addresses are refused even when listed' '
  px --allow-host 127.0.0.1:$PORT -- bash plain.sh 127.0.0.1:$PORT >out 2>err &&
  grep -q "^HTTP/1.1 403" out && grep -q "raw IP" err &&
  px --allow-host "[::1]:$PORT" -- bash tunnel.sh "[::1]:$PORT" >out &&
  grep -q "proxy said: HTTP/1.1 403" out
'

test_expect_success 'with the proxy on, direct TCP, UDP and DNS are still out' '
  test_must_fail px --allow-host localhost:$PORT -- bash direct.sh $PORT &&
  test_must_fail px --allow-host localhost:$PORT -- getent hosts example.com &&
  test_must_fail px --allow-host localhost:$PORT -- bash -c "echo x > /dev/udp/10.0.0.1/53"
'

test_expect_success 'without --net proxy there is no proxy to talk to' '
  test_must_fail "$DURIN" sandbox --workspace "$W" -- bash plain.sh localhost:$PORT
'

test_expect_success 'a run gets the proxy from its spec' '
  make_project && cp "$W/plain.sh" project/ &&
  cat >s.json <<JSON &&
{"goal": "fetch", "workspace": "project",
 "sandbox": {"network": "proxy", "allow_hosts": ["localhost:$PORT"]},
 "model": {"provider": "script", "turns": [
   {"tool_calls": [{"name": "bash", "arguments": {"command": "echo \$HTTPS_PROXY; bash plain.sh localhost:$PORT"}}]},
   {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}]}}
JSON
  durin run s.json >out.txt &&
  id=$(run_id_of out.txt) &&
  sql "select json_extract(data, '"'"'\$.output'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' order by seq limit 1" >r &&
  grep -q "http://127.0.0.1:3128" r && grep -q hello-run r
'

test_expect_success 'allow_hosts without the proxy, or a bad mode, is a spec error' '
  cat >bad.json <<JSON &&
{"goal": "g", "workspace": "project", "sandbox": {"allow_hosts": ["a.com"]},
 "model": {"provider": "script", "turns": []}}
JSON
  test_must_fail_with 65 durin run bad.json 2>err && grep -q "needs" err &&
  sed "s/\"allow_hosts\": \[\"a.com\"\]/\"network\": \"host\"/" bad.json >bad2.json &&
  test_must_fail_with 65 durin run bad2.json 2>err && grep -q "sandbox.network" err
'

test_done
