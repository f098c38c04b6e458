#!/usr/bin/env bash
# Fleet-sized reads of two collector builds in one run (docs/benchmarks.md,
# "Fleet-sized reads"): each build serves its own fresh SQLite database on
# 127.0.0.1 and `collector/examples/bench --url` enrols simulated Macs
# through its API (each enrolled, each sending two chained events; every
# tenth with an open finding) and times what readers fetch at each fleet
# size. The builds run one after the other on the same machine.
#
#   bench/fleet-ab.sh BIN_BEFORE BIN_AFTER [SIZES] [QUERIES]   (defaults 5000,20000 50)
#
# e.g. with the build of main copied aside:
#   git archive main | tar -x -C /tmp/before && \
#     (cd /tmp/before && CARGO_TARGET_DIR=$PWD/target cargo build --release -p lenscap-collector) && \
#     cp target/release/lenscap-collector /tmp/collector-before
#   cargo build --release -p lenscap-collector --example bench
#   bench/fleet-ab.sh /tmp/collector-before target/release/lenscap-collector
set -euo pipefail
before=$1; after=$2; sizes=${3:-5000,20000}; queries=${4:-50}
bench=${BENCH:-target/release/examples/bench}
run() {
    local label=$1 bin=$2 w port pid enroll reader
    w=$(mktemp -d /tmp/lenscap-fleet.XXXXXX)
    enroll=$("$bin" token create --role enroll --db "sqlite:$w/c.db")
    reader=$("$bin" token create --role reader --db "sqlite:$w/c.db")
    # Every simulated Mac connects from 127.0.0.1: no per-address cap.
    "$bin" serve --listen 127.0.0.1:0 --db "sqlite:$w/c.db" --max-connections-per-ip 0 2>"$w/log" &
    pid=$!
    for _ in $(seq 100); do
        port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$w/log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && break
        sleep 0.1
    done
    echo "== $label: $bin"
    "$bench" --url "http://127.0.0.1:$port" --enroll-token "$enroll" --reader-token "$reader" \
        --fleet "$sizes" --queries "$queries" --clients 4
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$w"
}
run before "$before"
run after "$after"
