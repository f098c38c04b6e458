#!/usr/bin/env bash
# Two collector builds timed on copies of one fleet database
# (docs/benchmarks.md, "Fleet-sized reads at 100,000 hosts"): keep the
# database of a `FLEET_KEEP=1 bench/fleet.sh` run of the older build, copy
# it (PostgreSQL: CREATE DATABASE b TEMPLATE a; SQLite: cp), then this
# serves the original with BIN_A and the copy with BIN_B (which migrates
# it first; the time to its first answer is printed) and times every page
# of each in turn, ROUNDS times, A before B each round, so both see the
# same machine load.
#
#   bench/fleet-copy-ab.sh BIN_A URL_A BIN_B URL_B READER_TOKEN [SIZE] [ROUNDS] [QUERIES]
set -euo pipefail
bin_a=$1; url_a=$2; bin_b=$3; url_b=$4; reader=$5
size=${6:-100000}; rounds=${7:-2}; queries=${8:-20}
bench=${BENCH:-target/release/examples/bench}
w=$(mktemp -d /tmp/lenscap-fleet-ab.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
    rm -rf "$w"
}
trap cleanup EXIT
serve() { # BIN URL NAME: start, wait for the listening line, print the port
    local started=$(date +%s.%N)
    "$1" serve --listen 127.0.0.1:0 --db "$2" --max-connections-per-ip 0 2>"$w/$3.log" &
    pids+=($!)
    for _ in $(seq 6000); do
        port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$w/$3.log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    echo "== $3 ($1) listening after $(echo "$(date +%s.%N) - $started" | bc) s" >&2
}
serve "$bin_a" "$url_a" A; port_a=$port
serve "$bin_b" "$url_b" B; port_b=$port
for r in $(seq "$rounds"); do
    for side in A B; do
        port=$port_a; [ $side = B ] && port=$port_b
        echo "== round $r, $side (load $(cut -d' ' -f1-3 /proc/loadavg))"
        "$bench" --url "http://127.0.0.1:$port" --reader-token "$reader" \
            --fleet "$size" --fleet-measure-only --queries "$queries"
    done
done
