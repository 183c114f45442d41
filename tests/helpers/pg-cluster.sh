#!/bin/sh
# A private PostgreSQL cluster for tests, from Debian's postgresql package:
#   pg-cluster.sh start DIR [PORT]   initdb in DIR, start on 127.0.0.1,
#                                    print the URL (postgres://durin@...)
#   pg-cluster.sh stop DIR           stop it (DIR is the caller's to remove)
#   pg-cluster.sh restart DIR        stop and start again, same port
# The server runs as the postgres user when we are root (initdb refuses
# root), and listens on loopback only, unless PG_LISTEN names addresses
# (inside a network namespace of the caller's) and PG_ALLOW a network
# allowed to connect; nothing outside DIR is touched.
set -eu
cmd=$1 dir=$2
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || { echo "pg-cluster: no PostgreSQL server installed (apt-get install postgresql)" >&2; exit 2; }
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + $$ % 20000))
}
start() {
  port=$(cat "$dir/port")
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
    -o "-c listen_addresses=${PG_LISTEN:-127.0.0.1} -p $port -k $dir/sock -c max_connections=300 -c fsync=on" start >/dev/null
}
case $cmd in
start)
  mkdir -p "$dir/sock"
  [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U durin --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  [ -z "${PG_ALLOW:-}" ] ||
    echo "host all all $PG_ALLOW trust" >>"$dir/data/pg_hba.conf"
  echo "${3:-$(free_port)}" >"$dir/port"
  start
  echo "postgres://durin@127.0.0.1:$(cat "$dir/port")"
  ;;
stop)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  ;;
restart)
  as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  start
  ;;
*)
  echo "usage: pg-cluster.sh start|stop|restart DIR [PORT]" >&2
  exit 64
  ;;
esac
