# Sourced by scripts/test, scripts/bench-stores and scripts/chaos: starts
# redis-server and a PostgreSQL cluster on free loopback ports, in temporary
# directories, and stops them when the sourcing script exits; installs them
# from Debian's packages when missing. Exports TSL_REDIS_URL, TSL_REDIS_SERVER,
# TSL_REDIS_CLUSTER_NODES (three primaries of a Redis Cluster, comma-separated)
# and TSL_POSTGRES_URL. TSL_SERVERS (default "redis redis-cluster postgres")
# names the servers to start; redis_args and pg_options are their command
# lines, for a script that restarts one.

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
cluster_pids=()
pg_dir=""
cleanup() {
    local pid
    for pid in $redis_pid "${cluster_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$pg_dir" ]; then
        as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    rm -rf "$work_dir"
}
trap cleanup EXIT

tsl_servers=" ${TSL_SERVERS:-redis redis-cluster postgres} "

# Waits until something listens on the loopback port $1.
await_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return
        fi
        sleep 0.05
    done
}

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
await_port "$redis_port"
export TSL_REDIS_URL="redis://127.0.0.1:$redis_port"
TSL_REDIS_SERVER=$(command -v redis-server)
export TSL_REDIS_SERVER
fi

# A Redis Cluster of three primaries for `RedisStore::open_cluster`, each
# with its own directory (a node keeps its cluster state in nodes.conf).
if [[ "$tsl_servers" == *" redis-cluster "* ]]; then
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
fi
cluster_nodes=()
for node in 1 2 3; do
    port=$(free_port)
    bus_port=$(free_port)
    mkdir -p "$work_dir/cluster-$node"
    redis-server --port "$port" --cluster-port "$bus_port" --bind 127.0.0.1 \
        --cluster-enabled yes --cluster-config-file nodes.conf --save "" \
        --appendonly no --dir "$work_dir/cluster-$node" \
        --logfile "$work_dir/cluster-$node/redis.log" &
    cluster_pids+=($!)
    await_port "$port"
    cluster_nodes+=("127.0.0.1:$port")
done
redis-cli --cluster create "${cluster_nodes[@]}" --cluster-yes >"$work_dir/cluster-create.log"
for node in "${cluster_nodes[@]}"; do
    for _ in $(seq 200); do
        if redis-cli -h 127.0.0.1 -p "${node#*:}" cluster info | grep -q 'cluster_state:ok'; then
            break
        fi
        sleep 0.05
    done
done
TSL_REDIS_CLUSTER_NODES=$(printf 'redis://%s,' "${cluster_nodes[@]}")
export TSL_REDIS_CLUSTER_NODES="${TSL_REDIS_CLUSTER_NODES%,}"
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

