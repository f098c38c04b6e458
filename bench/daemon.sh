#!/usr/bin/env bash
# Daemon benchmarks (docs/benchmarks.md, "## Daemon"), on a release build:
#   1. a rogue helper's listen() → its death, p50/p95 (SweepSeconds 1)
#   2. a catalog-matched LaunchAgent plist written → moved into quarantine
#   3. the daemon idle with ~300 extra processes: RSS and CPU
#
#   bench/daemon.sh [RUNS] [IDLE_SECS] [EXTRA_PROCS]     (defaults 25 300 300)
#
# Run as root (the daemon kills, chowns and moves files; every file stays in
# a temporary directory). The harness is tests/tests/daemon/bench.rs:
# ignored tests of lenscap-e2e, run one at a time so they do not disturb
# each other. Prints the machine and the BENCH lines to paste.
set -euo pipefail
cd "$(dirname "$0")/.."
export DAEMON_BENCH_RUNS=${1:-25}
export DAEMON_BENCH_IDLE_SECS=${2:-300}
export DAEMON_BENCH_PROCS=${3:-300}

echo "machine: $(uname -srm); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(ls /proc | grep -c '^[0-9]') processes"
cargo build --release -q -p lenscap --bin lenscap
cargo test --release -q -p lenscap-e2e --test daemon --no-run
for bench in bench_listen_to_death bench_plist_to_quarantine bench_idle_footprint; do
    cargo test --release -q -p lenscap-e2e --test daemon -- \
        --ignored --exact "bench::$bench" --nocapture --test-threads 1 2>&1 |
        grep -E '^(BENCH|NOTE|thread|test result)' || true
done
