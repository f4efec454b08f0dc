# Start a throwaway PostgreSQL server for the registry tests and export its URL.
# Sourced by .ci/run (as root on a fresh Debian machine); also usable by hand:
#   . .ci/services/postgres.sh && python -m pytest tests/registry
# Sets FLEXHEG_TEST_POSTGRES_URL. The server listens on 127.0.0.1 only and its data lives in a
# temporary folder; stop it with: pg_ctl -D "$FLEXHEG_PG_DATA" stop (as the postgres user).

flexheg_pg_bin() {
    # Debian installs the server binaries outside PATH, under /usr/lib/postgresql/<major>/bin.
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
        return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] && echo "$dir"
}

flexheg_pg_start() {
    local bin
    bin=$(flexheg_pg_bin || true)
    if [ -z "$bin" ]; then
        echo "postgres.sh: installing PostgreSQL from Debian's packages"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq postgresql >/dev/null
        bin=$(flexheg_pg_bin || true)
    fi
    if [ -z "$bin" ]; then
        echo "postgres.sh: pg_ctl not found after installing postgresql" >&2
        return 1
    fi
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    fi

    local data port
    data=$(mktemp -d /tmp/flexheg-pg.XXXXXX)
    chown postgres: "$data"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if [ "$(id -u)" -eq 0 ]; then
        flexheg_as_postgres() { su postgres -s /bin/sh -c "$*"; }
    else
        flexheg_as_postgres() { sh -c "$*"; }
    fi
    flexheg_as_postgres "'$bin/initdb' -D '$data/db' -U postgres -A trust -E UTF8 --no-sync" >/dev/null
    flexheg_as_postgres "'$bin/pg_ctl' -D '$data/db' -l '$data/server.log' -w -t 60 \
        -o \"-c listen_addresses=127.0.0.1 -p $port -k '$data' -c fsync=off -c max_connections=200\" start" >/dev/null
    flexheg_as_postgres "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres flexheg_test"

    export FLEXHEG_PG_DATA="$data/db"
    export FLEXHEG_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/flexheg_test"
    echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

flexheg_pg_start
