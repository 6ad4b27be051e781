# Sourced by scripts/test, scripts/bench-stores and scripts/chaos: starts
# redis-server and a PostgreSQL cluster on free loopback ports, in temporary
# directories, and stops them when the sourcing script exits; installs them
# from Debian's packages when missing. Exports TSL_REDIS_URL, TSL_REDIS_SERVER
# and TSL_POSTGRES_URL. TSL_SERVERS (default "redis postgres") names the
# servers to start; redis_args and pg_options are their command lines, for a
# script that restarts one.

# shellcheck source=scripts/install.sh
. "$(dirname "${BASH_SOURCE[0]}")/install.sh"

# A loopback port nothing listens on, from the ephemeral range.
free_port() {
    local port
    while :; do
        port=$(( 20000 + RANDOM % 30000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# The directory of PostgreSQL's initdb and pg_ctl: Debian keeps them off
# PATH, under /usr/lib/postgresql/<version>/bin.
postgres_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
    fi
}

work_dir=$(mktemp -d "${TMPDIR:-/tmp}/tower-session-lifetime-test.XXXXXX")
redis_pid=""
pg_dir=""
cleanup() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    if [ -n "$pg_dir" ]; then
        as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    rm -rf "$work_dir"
}
trap cleanup EXIT

tsl_servers=" ${TSL_SERVERS:-redis postgres} "

# Redis (or Valkey) for `RedisStore`.
if [[ "$tsl_servers" == *" redis "* ]]; then
if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
fi
# tests/redis_replication.rs pauses a replica with the kill program (not
# the shell's builtin): procps has it.
if ! type -P kill >/dev/null 2>&1; then
    apt_install procps
fi
redis_port=$(free_port)
redis_args=(--port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no
    --dir "$work_dir" --logfile "$work_dir/redis.log")
redis-server "${redis_args[@]}" &
redis_pid=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then
        break
    fi
    sleep 0.05
done
export TSL_REDIS_URL="redis://127.0.0.1:$redis_port"
TSL_REDIS_SERVER=$(command -v redis-server)
export TSL_REDIS_SERVER
fi

# PostgreSQL for `PostgresStore`: a cluster of its own. PostgreSQL refuses
# to run as root, so as root it runs as the `postgres` user the Debian
# package creates.
if [[ "$tsl_servers" == *" postgres "* ]]; then
pg_bin=$(postgres_bin)
if [ -z "$pg_bin" ]; then
    apt_install postgresql
    pg_bin=$(postgres_bin)
fi
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/tower-session-lifetime-pg.XXXXXX")
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$pg_dir"
fi
pg_port=$(free_port)
as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U tsl -A trust -E UTF8 --no-sync >"$pg_dir/initdb.log"
pg_options="-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "$pg_options" start >/dev/null
export TSL_POSTGRES_URL="postgres://tsl@127.0.0.1:$pg_port/postgres"
fi

