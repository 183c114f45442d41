#!/bin/sh
# Escape attempts from `durin sandbox`, the sandbox every tool call gets.
# Each names its expected outcome; the probe (tests/helpers/escape-probe)
# exits 0 when an attempt is blocked, 1 when it escaped.
. "$(dirname "$0")/lib-test.sh"

P="$ESCAPE_PROBE"
W="$TRASH/ws"
mkdir -p "$W" "$TRASH/other"
echo secret >"$TRASH/host-secret"
echo theirs >"$TRASH/other/file"
# As root the sandbox runs as host id 100000: it must reach and write its
# workspace (the trash directory is 0700).
if [ "$(id -u)" = 0 ]; then chown 100000:100000 "$W"; chmod 711 "$TRASH"; fi
cp "$P" "$W/probe"
sb() { "$DURIN" sandbox --workspace "$W" "$@"; }
blocked() { sb -- ./probe "$@"; }

if ! sb -- true 2>"$TRASH/why"; then
  test_skip_all "this host cannot build the sandbox: $(cat "$TRASH/why")"
fi

test_expect_success 'runs as an unprivileged id, in its own namespaces' '
  sb -- sh -c "id -u; hostname; cat /proc/self/status" >out &&
  test "$(sed -n 1p out)" = 1000 && test "$(sed -n 2p out)" = sandbox &&
  grep -q "^CapEff:.*0000000000000000" out &&
  grep -q "^NoNewPrivs:.*1" out && grep -q "^Seccomp:.*2" out &&
  test "$(sb -- cat /proc/self/uid_map | tr -s " " | sed "s/^ //")" != "1000 0 1"
'

test_expect_success 'the workspace is writable, the rest read-only' '
  sb -- sh -c "echo ok > made && cat made" | grep -qx ok &&
  test -f ws/made &&
  test_must_fail sb -- sh -c "echo x > /usr/evil" &&
  test_must_fail sb -- sh -c "echo x > /etc/evil" &&
  test_must_fail sb -- sh -c "echo x > /evil"
'

test_expect_success 'host secrets and other runs are not there' '
  test_must_fail sb -- cat "$TRASH/host-secret" &&
  test_must_fail sb -- cat "$TRASH/other/file" &&
  test_must_fail sb -- cat /etc/shadow &&
  test_must_fail sb -- ls /root &&
  test_must_fail sb -- ls /home
'

test_expect_success 'the environment is the allowlist' '
  SECRET_TOKEN=leak sb -- env >env.out &&
  ! grep -q SECRET_TOKEN env.out && grep -q "^PATH=" env.out &&
  sb --setenv A=b -- env | grep -qx A=b
'

test_expect_success 'no inherited descriptors' '
  exec 7<"$TRASH/host-secret" && blocked fd 7; r=$?; exec 7<&-; test $r = 0
'

test_expect_success 'only its own processes; host pids cannot be signalled or traced' '
  test "$(sb -- sh -c "ls /proc | grep -c \"^[0-9]\"")" -le 4 &&
  blocked kill $$ && blocked ptrace $$ && blocked ptrace 1 &&
  test_must_fail sb -- ls /proc/1/root/ &&
  test_must_fail sb -- sh -c "cat /proc/1/exe > /dev/null"
'

for a in tiocsti tiocsti-high keyctl userns clone-userns mount remount-ro-bind \
  chroot bpf userfaultfd io_uring perf packet alg vsock raw netfilter \
  settime sethostname; do
  test_expect_success "blocked: $a" "blocked $a"
done

# listen KIND: starts the probe as a host listener of KIND; sets $target
# to its port (or abstract name) once it listens.
listen() {
  rm -f "$TRASH/$1.target"
  "$P" listen "$1" "durin-t0400-$$" >"$TRASH/$1.target" &
  bg_pids="$bg_pids $!"
  wait_for 5 "test -s \"$TRASH/$1.target\"" && target=$(cat "$TRASH/$1.target")
}

# reach KIND: the host reaches its own listener (the probe "escapes", exit
# 1), so the sandbox failing to is the sandbox's doing, not an empty host.
reach() { test_must_fail_with 1 "$P" "$1" "$target"; }

test_expect_success 'no network: a TCP listener on the host loopback is out of reach' '
  listen tcp && reach tcp && blocked tcp "$target"
'

test_expect_success 'no network: a UDP listener on the host loopback gets nothing' '
  listen udp && reach udp && blocked udp "$target"
'

test_expect_success 'no network: DNS does not resolve' '
  test_must_fail sb -- getent hosts example.com
'

test_expect_success 'host abstract sockets are out of reach' '
  listen abstract && reach abstract && blocked abstract "$target"
'

# keyring-host gives the sandbox's caller a session keyring holding a key
# only a possessor can see, owned by the sandbox's host uid so /proc/keys
# inside could list it: it is listed there only if the keyring is shared.
if [ "$(id -u)" = 0 ]; then sb_uid=100000; else sb_uid=$(id -u); fi
if ! "$P" keyring-host $sb_uid true 2>"$TRASH/why"; then
  # e.g. a container whose seccomp profile refuses keyctl to everyone
  test_skip 'the sandbox keyring is its own' "no keyrings here: $(cat "$TRASH/why")"
else
  test_expect_success 'the sandbox keyring is its own' '
    "$P" keyring-host $sb_uid cat /proc/keys >host-keys &&
    grep_q " durin-probe-key: " host-keys &&
    "$P" keyring-host $sb_uid "$DURIN" sandbox --workspace "$W" -- cat /proc/keys >keys &&
    ! grep_q " durin-probe-key: " keys
  '
fi

test_expect_success 'a fork bomb hits the pids limit and dies with the call' '
  start=$(date +%s)
  sb --pids 50 --timeout 5 --status -- sh -c ":(){ :|:& };: ; sleep 1; exit 0" >/dev/null 2>status
  r=$?
  test $r != 125 && test $(( $(date +%s) - start )) -lt 10 &&
  grep -q "\"status\":\"\(exited\|signaled\|timeout\)\"" status
'

test_expect_success 'memory is capped: the hog is killed' '
  test_must_fail_with 137 sb --mem 64 -- sh -c "x=\$(head -c 150000000 /dev/zero | tr \"\\\\0\" a); echo \${#x}"
'

test_expect_success 'file size and descriptors are capped' '
  test_must_fail_with 153 sb --fsize 1 -- sh -c "head -c 3000000 /dev/zero > big" &&
  test_must_fail sb --nofile 10 -- sh -c "exec 11</dev/null"
'

test_expect_success 'the timeout kills the whole tree; nothing outlives the call' '
  start=$(date +%s)
  sb --timeout 1 -- sh -c "sleep 4242 & sleep 4242 & echo \$\$ > pid; wait"; r=$?
  test $r = 124 && test $(( $(date +%s) - start )) -lt 5 &&
  wait_for 2 "test \$(count_cmdline \"sleep 4242\") = 0"
'

test_expect_success 'no leaks between calls through /tmp or /dev/shm' '
  sb -- sh -c "echo a > /tmp/x; echo b > /dev/shm/y" &&
  test_must_fail sb -- cat /tmp/x && test_must_fail sb -- cat /dev/shm/y
'

test_expect_success 'device nodes: only the harmless ones' '
  test "$(sb -- ls /dev | grep -c -E "^(sda|vda|mem|kmsg|nvme)")" = 0 &&
  test_must_fail sb -- sh -c "cat /dev/mem"
'

test_expect_success 'setuid binaries do not raise privileges' '
  test "$(sb -- sh -c "su -c id root 2>/dev/null; id -u" | tail -1)" = 1000
'

test_expect_success 'host sysctls cannot be written' '
  core=$(cat /proc/sys/kernel/core_pattern) swap=$(cat /proc/sys/vm/swappiness) &&
  test_must_fail sb -- sh -c "echo \"|/tmp/x\" > /proc/sys/kernel/core_pattern" &&
  test_must_fail sb -- sh -c "echo 1 > /proc/sys/vm/swappiness" &&
  test_must_fail sb -- sh -c "echo 3 > /proc/sys/vm/drop_caches" &&
  test "$(cat /proc/sys/kernel/core_pattern)" = "$core" &&
  test "$(cat /proc/sys/vm/swappiness)" = "$swap"
'

test_expect_success 'no cgroup tree, so no release_agent to point at the host' '
  test_must_fail sb -- sh -c "ls /sys/fs/cgroup" &&
  test_must_fail sb -- sh -c "echo /x > /sys/fs/cgroup/memory/release_agent" &&
  test "$(sb -- cat /proc/self/cgroup | cut -d: -f3 | sort -u)" = /
'

test_expect_success 'disk: /tmp and /dev/shm are capped, files by --fsize' '
  test_must_fail sb -- sh -c "head -c 300000000 /dev/zero > /tmp/big" &&
  test_must_fail sb -- sh -c "head -c 300000000 /dev/zero > /dev/shm/big" &&
  test_must_fail_with 153 sb --fsize 2 -- sh -c "head -c 3000000 /dev/zero > big" &&
  test "$(stat -c %s "$W/big")" -le 2097152
'

test_expect_success 'no hardlinks to files outside the workspace' '
  test_must_fail sb -- ln /etc/passwd hl &&
  test_must_fail sb -- ln /usr/bin/env hl2 &&
  test ! -e "$W/hl" && test ! -e "$W/hl2"
'

test_expect_success 'bad options get a clear error' '
  test_must_fail_with 64 "$DURIN" sandbox --net host -- true &&
  test_must_fail_with 64 "$DURIN" sandbox --mem lots -- true &&
  test_must_fail_with 64 "$DURIN" sandbox --workspace /nonexistent -- true
'

test_done
