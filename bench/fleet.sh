#!/usr/bin/env bash
# Fleet-sized reads of one collector build on SQLite or PostgreSQL
# (docs/benchmarks.md, "Fleet-sized reads at 100,000 hosts"): the build
# serves a fresh database on 127.0.0.1, `collector/examples/bench --url`
# enrols simulated Macs through its API (each enrolled, each sending two
# chained events; every tenth with an open finding), times every reader
# page at each size, then has the first 1,000 Macs send the bench's mix
# of findings, steps and health until FLEET_EVENTS are stored, waits for
# grouping and times every page again. The database is deleted after.
#
#   bench/fleet.sh BIN sqlite|postgres [SIZES] [FLEET_EVENTS] [QUERIES]
#   (defaults 100000 2000000 20; postgres needs LENSCAP_TEST_POSTGRES_URL
#   pointing at a server where the user may create databases)
#   FLEET_KEEP=1 keeps the database (its URL and a reader token are
#   printed), for bench/fleet-copy-ab.sh to time two builds on copies of it.
set -euo pipefail
bin=$1; db=$2; sizes=${3:-100000}; events=${4:-2000000}; queries=${5:-20}
bench=${BENCH:-target/release/examples/bench}
w=$(mktemp -d /tmp/lenscap-fleet.XXXXXX)
case $db in
    sqlite) url="sqlite:$w/c.db" ;;
    postgres)
        base=${LENSCAP_TEST_POSTGRES_URL:?set LENSCAP_TEST_POSTGRES_URL}
        name="lc_fleet_$$"
        psql "$base" -qc "CREATE DATABASE $name"
        url="${base%/*}/$name" ;;
    *) echo "sqlite or postgres, not $db" >&2; exit 2 ;;
esac
cleanup() {
    [ -n "${pid:-}" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; }
    if [ -n "${FLEET_KEEP:-}" ]; then
        echo "== kept: FLEET_URL=$url FLEET_READER=$reader"
        return
    fi
    [ "$db" = postgres ] && psql "$base" -qc "DROP DATABASE IF EXISTS $name"
    rm -rf "$w"
}
trap cleanup EXIT
enroll=$("$bin" token create --role enroll --db "$url")
reader=$("$bin" token create --role reader --db "$url")
# Every simulated Mac connects from 127.0.0.1: no per-address cap.
"$bin" serve --listen 127.0.0.1:0 --db "$url" --max-connections-per-ip 0 2>"$w/log" &
pid=$!
for _ in $(seq 300); do
    port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$w/log" | grep -o '[0-9]*$' || true)
    [ -n "$port" ] && break
    sleep 0.1
done
echo "== $bin on $db ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
"$bench" --url "http://127.0.0.1:$port" --enroll-token "$enroll" --reader-token "$reader" \
    --fleet "$sizes" --fleet-events "$events" --queries "$queries" --clients 4
echo "== done (load $(cut -d' ' -f1-3 /proc/loadavg)); database size:"
case $db in
    sqlite) du -sh "$w" ;;
    postgres) psql "$base" -tAc "SELECT pg_size_pretty(pg_database_size('$name'))" ;;
esac
