# Starting a private Redis and PostgreSQL on loopback, for script/server and script/bench.
# Source it; started processes are recorded in `pids` and stopped by `stop_services`.
# shellcheck shell=bash

pids=()

stop_services() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

wait_for() { # what, log, command...
  local what=$1 log=$2
  shift 2
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "$what did not start; see $log" >&2
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

redis_answers() { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'PING\r\n' >&3 && head -c 7 <&3 | grep -q PONG; }

# start_redis PORT DIR [extra redis-server args...]: exports TUTORQ__REDIS__URL.
start_redis() {
  local port=$1 dir=$2
  shift 2
  port_free "$port" || { echo "port $port is taken" >&2; return 1; }
  local bin
  bin=$(command -v redis-server || echo /usr/bin/redis-server)
  mkdir -p "$dir"
  "$bin" --port "$port" --bind 127.0.0.1 --dir "$dir" --logfile "$dir/redis.log" "$@" &
  pids+=($!)
  wait_for "Redis" "$dir/redis.log" redis_answers "$port"
  export TUTORQ__REDIS__URL="redis://127.0.0.1:$port/0"
}

# start_postgres PORT DIR DATABASE: exports TUTORQ__DATABASE__URL. As root the cluster runs as
# the `postgres` account (PostgreSQL refuses root).
start_postgres() {
  local port=$1 dir=$2 database=$3
  port_free "$port" || { echo "port $port is taken" >&2; return 1; }
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  bin=${bin:-$(dirname "$(command -v postgres)")}
  local as_postgres=()
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown -R postgres:postgres "$dir"
    as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log"
  fi
  "${as_postgres[@]}" "$bin/postgres" -D "$dir/data" -p "$port" \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories="$dir" >"$dir/postgres.log" 2>&1 &
  pids+=($!)
  wait_for "PostgreSQL" "$dir/postgres.log" "$bin/pg_isready" -h 127.0.0.1 -p "$port" -U postgres
  if ! "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1; then
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$database"
  fi
  export TUTORQ__DATABASE__URL="postgres://postgres@127.0.0.1:$port/$database"
}
