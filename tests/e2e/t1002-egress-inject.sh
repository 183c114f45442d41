#!/bin/sh
# Use without exposure: a spec grants a secret to a host, and the call's
# egress proxy adds it as a header to the sandbox's HTTPS requests there.
# A local HTTPS server (its own test CA, which the worker's proxy trusts
# through DURIN_EGRESS_CA_FILE) requires the token; `curl` and `git push`
# inside the sandbox work unchanged, and the token is in no variable, file
# or argument there. A host without a grant stays an end-to-end tunnel;
# an upstream the proxy cannot verify gets 502. An env grant reaches
# bash's environment, flagged in show and the log. Bad grants are refused
# at submit, naming what is wrong.
. "$(dirname "$0")/lib-test.sh"

"$DURIN" sandbox -- true 2>"$TRASH/why" ||
  test_skip_all "this host cannot build the sandbox: $(cat "$TRASH/why")"
for t in python3 openssl git curl; do
  command -v $t >/dev/null || test_skip_all "no $t on this host"
done
[ -x /usr/lib/git-core/git-http-backend ] || test_skip_all "no git-http-backend"
# The proxy refuses raw IPs and the sandbox's NO_PROXY covers localhost:
# the servers need a name of their own that resolves to loopback.
H=$(hostname)
case "$(getent ahostsv4 "$H" | awk 'NR == 1 { print $1 }')" in
127.*) ;;
*) test_skip_all "this host's name '$H' does not resolve to a loopback address" ;;
esac

make_project
unset DURIN_MASTER_KEY DURIN_MASTER_KEY_FILE CREDENTIALS_DIRECTORY XDG_CONFIG_HOME
export HOME="$TRASH/home"
export DURIN_MASTER_KEY_FILE="$TRASH/master.key"
TOKEN=ghs_Inj3ctedT0kenValue0123456789abcdef
ENVV=envOnlyV4lue_0123456789

# A test CA and a certificate for $H signed by it; another self-signed one
# the proxy does not trust.
cert() { # NAME SIGNER(empty: self-signed)
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$H" 2>/dev/null &&
    printf "subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" "$H" >"$1.ext" &&
    if [ -n "$2" ]; then
      openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
        -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
    else
      openssl x509 -req -in "$1.csr" -signkey "$1.key" -out "$1.pem" -days 2 \
        -extfile "$1.ext" 2>/dev/null
    fi
}
serve() { # NAME CERT [--open]
  rm -f "$TRASH/$1.port"
  python3 "$SRCDIR/tests/helpers/https-server.py" --cert "$TRASH/$2.pem" \
    --key "$TRASH/$2.key" --token "$TOKEN" --root "$TRASH/repos" \
    --port-file "$TRASH/$1.port" ${3:-} 2>>"$TRASH/$1.log" &
  bg_pids="$bg_pids $!"
  wait_for 10 "test -s '$TRASH/$1.port'"
}

test_expect_success 'set up: a test CA, three local HTTPS servers, a bare repo, the vault' '
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout testca.key -out testca.pem -days 2 -subj "/CN=durin test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null &&
  cert srv testca && cert rogue "" &&
  mkdir repos && git init -q --bare repos/repo.git &&
  git -C repos/repo.git config http.receivepack true &&
  serve granted srv && serve open srv --open && serve rogue rogue &&
  PA=$(cat granted.port) && PB=$(cat open.port) && PC=$(cat rogue.port) &&
  curl -sS --cacert testca.pem -H "Authorization: Bearer $TOKEN" \
    "https://$H:$PA/whoami" | grep -q auth-ok &&
  curl -sS --cacert testca.pem "https://$H:$PA/whoami" | grep -q "no or wrong token" &&
  cp testca.pem project/ &&
  durin secret keygen -o "$DURIN_MASTER_KEY_FILE" >/dev/null 2>&1 &&
  printf "%s" "$TOKEN" | durin secret set GH_TOKEN 2>/dev/null &&
  printf "%s" "$ENVV" | durin secret set ENV_KEY 2>/dev/null
'
export DURIN_EGRESS_CA_FILE="$TRASH/testca.pem"

# The commands the script model runs, one per turn. The token is spelled
# in two pieces, so no process's arguments ever hold it whole.
leak_check='T=ghs_Inj3ctedT0ken; T=${T}Value0123456789abcdef
[[ "$(env)" == *"$T"* ]] && echo "LEAK in env"
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do
  c=$(tr "\0" " " <"$f" 2>/dev/null); [[ "$c" == *"$T"* ]] && echo "LEAK in $f"
done
for f in $(find "$PWD" /tmp /etc /dev/shm -xdev -type f 2>/dev/null); do
  c=$(tr "\0" " " <"$f" 2>/dev/null); [[ "$c" == *"$T"* ]] && echo "LEAK in $f"
done
echo leak-check-done; ls /etc/durin'
spec() { # FILE SECRETS-JSON TURNS-JSON
  cat >"$1" <<JSON
{"goal": "g", "workspace": "project", "tools": ["bash", "finish"],
 "sandbox": {"network": "proxy", "allow_hosts": ["$H:$PA", "$H:$PB", "$H:$PC"]},
 "secrets": $2,
 "model": {"provider": "script", "turns": $3}}
JSON
}
bash_turn() { jq -n --arg c "$1" '{"tool_calls": [{"name": "bash", "arguments": {"command": $c}}]}'; }

test_expect_success 'a run with a host grant and an env grant' '
  grants=$(jq -n --arg a "$H:$PA" --arg c "$H:$PC" "[
    {secret: \"GH_TOKEN\", host: \$a, header: \"Authorization\", format: \"Bearer {}\"},
    {secret: \"GH_TOKEN\", host: \$c, header: \"Authorization\", format: \"Bearer {}\"},
    {secret: \"ENV_KEY\", env: \"MY_TOOL_KEY\", tool: \"bash\"}]") &&
  turns=$(jq -s . <<EOF
$(bash_turn "echo A1 \$(curl -sS https://$H:$PA/whoami); echo A2 \$(curl -sS -H \"Authorization: Bearer forged\" https://$H:$PA/whoami); echo A3 \$(curl -sS https://$H:$PA/x https://$H:$PA/whoami)")
$(bash_turn "cd /tmp && git init -q w && cd w && git config user.email a@b && git config user.name a && head -c 2000000 /dev/urandom >big && echo hi >f && git add . && git commit -qm one && git push https://$H:$PA/repo.git HEAD:refs/heads/main 2>&1 | tail -1 && echo B1 \$(git ls-remote https://$H:$PA/repo.git | wc -l)")
$(bash_turn "$leak_check")
$(bash_turn "for p in $PA $PB; do echo | openssl s_client -proxy 127.0.0.1:3128 -connect $H:\$p -servername $H 2>/dev/null | grep -m1 issuer= | sed \"s/^/D\$p /\"; done; echo D2 \$(curl -sS --cacert testca.pem https://$H:$PB/whoami)")
$(bash_turn "curl -sS -o body -w \"E1 %{http_code}\n\" https://$H:$PC/whoami; echo E2 \$(cat body)")
$(bash_turn "echo F1 \$MY_TOOL_KEY; echo F2 \$(curl -sS https://$H:$PA/echo-token)")
$(bash_turn "echo G1 \$(curl -sS -o /dev/null -w %{http_code} -X TRACE https://$H:$PA/whoami); echo G2 \$(curl -sS -o /dev/null -w %{http_code} -H \"X-Bad : 1\" https://$H:$PA/whoami); echo G3 \$(curl -sS -o /dev/null -w %{http_code} -H \"Transfer-Encoding: xchunked\" --data-binary hi https://$H:$PA/whoami)")
{"tool_calls": [{"name": "finish", "arguments": {"summary": "ok"}}]}
EOF
) &&
  spec s.json "$grants" "$turns" &&
  durin run s.json >w.log 2>&1 &&
  id=$(run_id_of w.log) && test -n "$id" &&
  test "$(status_of $id)" = succeeded &&
  sql "select json_extract(data, '"'"'\$.output'"'"') from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"' order by seq" >out.txt
'

test_expect_success 'curl reaches the granted host with the token added, once' '
  grep -q "^A1 auth-ok headers=1" out.txt &&
  grep -q "^A2 auth-ok headers=1" out.txt &&
  grep -q "^A3 hello from the local server auth-ok headers=1" out.txt
'

test_expect_success 'TRACE (which would echo the token back), a name with a space before its colon and a TE that is not chunked are refused' '
  grep -q "^G1 405$" out.txt &&
  grep -q "^G2 400$" out.txt &&
  grep -q "^G3 400$" out.txt
'

test_expect_success 'git push over HTTPS works unchanged' '
  grep -q "\[new branch\]" out.txt && grep -q "^B1 1" out.txt &&
  git -C repos/repo.git rev-parse --verify -q refs/heads/main >/dev/null &&
  test "$(git -C repos/repo.git cat-file -s main:big)" = 2000000
'

test_expect_success 'the token is in no variable, file or argument inside' '
  grep -q "^leak-check-done" out.txt && ! grep -q LEAK out.txt &&
  grep -q "ca-bundle.pem" out.txt
'

test_expect_success 'a host without a grant is an end-to-end tunnel' '
  grep "^D$PA " out.txt | grep -q "durin egress CA" &&
  grep "^D$PB " out.txt | grep -q "durin test CA" &&
  grep -q "^D2 auth-ok headers=0" out.txt
'

test_expect_success 'an upstream the proxy cannot verify gets 502, saying why' '
  grep -q "^E1 502" out.txt &&
  grep "^E2 " out.txt | grep -q "cannot verify" &&
  grep -q "cannot verify the host upstream: certificate verify failed" out.txt
'

test_expect_success 'the env grant reaches bash; echoed values are redacted' '
  grep -q "^F1 \[secret:ENV_KEY\]" out.txt &&
  grep -q "^F2 token=\[secret:GH_TOKEN\]" out.txt &&
  ! grep -q -F "$TOKEN" out.txt && ! grep -q -F "$ENVV" out.txt
'

test_expect_success 'show and the log flag the grants, never a value' '
  durin show $id >show.txt &&
  grep -q "GH_TOKEN: header Authorization added by the proxy for $H:$PA" show.txt &&
  grep -q "ENV_KEY: in variable MY_TOOL_KEY of bash.s commands (env grant" show.txt &&
  durin show --json $id | jq -e ".secrets | length == 3" >/dev/null &&
  durin logs $id >logs.txt &&
  test "$(grep -c "bash ok \[env grant: ENV_KEY in MY_TOOL_KEY\]" logs.txt)" = 7 &&
  sql "select data from events where run_id = '"'"'$id'"'"' and type = '"'"'tool_result'"'"'" >ev.txt &&
  test "$(jq -r ".secrets_env[]? | .secret + \"=\" + .env" ev.txt | grep -c "^ENV_KEY=MY_TOOL_KEY\$")" = 7 &&
  ! grep -q -F "$TOKEN" show.txt ev.txt && ! grep -q -F "$ENVV" show.txt ev.txt
'

test_expect_success 'a grant naming a missing secret is refused at submit, by name' '
  spec m.json "[{\"secret\": \"NO_SUCH\", \"host\": \"$H:$PA\", \"header\": \"Authorization\"}]" "[]" &&
  test_must_fail_with 65 durin run m.json 2>err.txt &&
  grep -q "secrets\[0\].secret: no secret .NO_SUCH." err.txt &&
  grep -q "durin secret set NO_SUCH" err.txt
'

test_expect_success 'a grant for a host the allowlist does not let through is refused' '
  spec h.json "[{\"secret\": \"GH_TOKEN\", \"host\": \"api.github.com\", \"header\": \"Authorization\"}]" "[]" &&
  test_must_fail_with 65 durin run h.json 2>err.txt &&
  grep -q "secrets\[0\].host.: .api.github.com. is not allowed by sandbox.allow_hosts" err.txt &&
  spec n.json "[{\"secret\": \"GH_TOKEN\", \"host\": \"$H:$PA\"}]" "[]" &&
  test_must_fail_with 65 durin run n.json 2>err.txt &&
  grep -q "secrets\[0\].header. is required" err.txt
'

test_expect_success 'POST /v1/runs: a grant of a missing secret is 422 naming it' '
  OP=$(make_token ops operator) && test -n "$OP" &&
  start_serve &&
  test "$(api "$OP" POST /v1/runs -d "{\"spec\": {\"goal\": \"g\",
    \"tools\": [\"bash\", \"finish\"],
    \"secrets\": [{\"secret\": \"NO_SUCH\", \"env\": \"K\", \"tool\": \"bash\"}],
    \"model\": {\"provider\": \"script\", \"turns\": []}}}")" = 422 &&
  test "$(body_field .error.code)" = bad_spec &&
  body_field .error.message | grep -q "secrets\[0\].secret: no secret .NO_SUCH." &&
  stop_serve
'

test_done
